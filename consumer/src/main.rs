use std::process::ExitCode;

use anyhow::Context;
use consumer::config::{Cli, Command};

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse();
    let telemetry = common::telemetry::init("consumer", cli.log.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                let result = execute(cli.command).await;
                let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
                result
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::cli::report(&err),
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(config) => {
            let shutdown = common::shutdown::on_signal();
            let report = consumer::run(config, shutdown).await?;
            let t = report.totals;
            println!(
                "consumer: {} rows in {} batches, {} rejects, {} duplicates skipped, {} dead letters, {:.2} s",
                t.rows,
                t.batches,
                t.rejects,
                t.duplicates,
                t.dead_letters,
                report.elapsed.as_secs_f64()
            );
        }
    }
    Ok(())
}
