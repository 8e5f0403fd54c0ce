use std::process::ExitCode;

use consumer::config::{Cli, Command};

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse();
    common::cli::run_main("consumer", cli.log.log_format, || execute(cli.command))
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(config) => {
            config.postgres.use_bookkeeping_schema();
            let shutdown = common::shutdown::on_signal();
            let report = consumer::run(config, shutdown).await?;
            let t = report.totals;
            common::cli::print_out(format_args!(
                "consumer: {} rows in {} batches, {} rejects, {} duplicates skipped, {} dead letters, {:.2} s\n",
                t.rows,
                t.batches,
                t.rejects,
                t.duplicates,
                t.dead_letters,
                report.elapsed.as_secs_f64()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
