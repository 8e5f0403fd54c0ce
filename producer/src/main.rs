use std::process::ExitCode;

use producer::config::{Cli, Command};

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse();
    common::cli::run_main("producer", cli.log.log_format, || execute(cli.command))
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    let result = execute_command(command).await;
    // Whatever the outcome, before the runtime ends (see `source::shutdown`).
    source::shutdown().await;
    result
}

async fn execute_command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(config) => {
            let shutdown = common::shutdown::on_signal();
            let summary = producer::run(config, shutdown).await?;
            common::cli::print_out(&summary);
        }
    }
    Ok(ExitCode::SUCCESS)
}
