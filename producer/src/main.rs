use std::process::ExitCode;

use producer::config::{Cli, Command};

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse();
    common::cli::run_main("producer", cli.log.log_format, || execute(cli.command))
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    let result = execute_command(command).await;
    // Whatever the outcome, before the runtime ends (see `source::shutdown`).
    producer::source::shutdown().await;
    result
}

async fn execute_command(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(config) => {
            let shutdown = common::shutdown::on_signal();
            let summary = producer::run(config, shutdown).await?;
            common::cli::print_out(&summary);
        }
        Command::Seed(config) => {
            let seeded = producer::seed::seed(&config).await?;
            common::cli::print_out(format_args!(
                "seeded {} documents into {}.{} in {:.2} s\n",
                seeded.documents,
                config.mongo.mongodb_database,
                config.collection,
                seeded.elapsed.as_secs_f64()
            ));
        }
        Command::Status(config) => {
            let status = producer::status::status(&config).await?;
            common::cli::print_out(&status);
            return Ok(ExitCode::from(status.verdict().exit_code()));
        }
        Command::Cleanup(config) => {
            let cleaned = producer::cleanup::cleanup(&config).await?;
            common::cli::print_out(&cleaned);
        }
        Command::Cutover(config) => match producer::cutover::cutover(&config).await {
            Ok(cutover) => common::cli::print_out(&cutover),
            Err(
                err @ (producer::error::ProducerError::NotCaughtUp { .. }
                | producer::error::ProducerError::NotLanded { .. }
                | producer::error::ProducerError::NotInRun { .. }),
            ) => {
                common::cli::report(&err.into());
                return Ok(ExitCode::from(4));
            }
            Err(err) => return Err(err.into()),
        },
        Command::Infer(config) => {
            let inferred = producer::infer::infer(&config).await?;
            common::cli::print_out(&inferred.text);
        }
        Command::Verify(config) => {
            let report = producer::verify::verify(&config).await?;
            common::cli::print_out(&report);
            if report.differences > 0 {
                return Ok(ExitCode::from(4));
            }
            // As `status`: accounted for, not landed.
            if report.rejected > 0 {
                return Ok(ExitCode::from(5));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
