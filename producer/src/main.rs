use std::process::ExitCode;

use anyhow::Context;
use producer::config::{Cli, Command};

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse();
    let telemetry = common::telemetry::init("producer", cli.log.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                let result = execute(cli.command).await;
                // Flush traces while the runtime still runs the exporter: a one-shot job
                // would otherwise lose its last spans.
                let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
                result
            })
        });
    match result {
        Ok(code) => code,
        Err(err) => common::cli::report(&err),
    }
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(config) => {
            let shutdown = common::shutdown::on_signal();
            let summary = producer::run(config, shutdown).await?;
            print!("{summary}");
        }
        Command::Seed(config) => {
            let seeded = producer::seed::seed(&config).await?;
            println!(
                "seeded {} documents into {}.{} in {:.2} s",
                seeded.documents,
                config.mongo.mongodb_database,
                config.collection,
                seeded.elapsed.as_secs_f64()
            );
        }
        Command::Status(config) => {
            let status = producer::status::status(&config).await?;
            print!("{status}");
            return Ok(ExitCode::from(status.verdict().exit_code()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
