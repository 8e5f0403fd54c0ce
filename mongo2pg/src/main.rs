use std::process::ExitCode;

use mongo2pg::config::{Cli, Command};
use mongo2pg::error::ExitStatus;

fn main() -> ExitCode {
    let cli: Cli = common::cli::parse();
    common::cli::run_main("mongo2pg", cli.log.log_format, || execute(cli.command))
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    let result = execute_command(command).await;
    // Whatever the outcome, before the runtime ends (see `source::shutdown`).
    source::shutdown().await;
    result
}

/// Runs the command and prints its report; a verdict that is not a success is an exit
/// status (see each command's help), with its reason on stderr.
async fn execute_command(command: Command) -> anyhow::Result<ExitCode> {
    if let Some(postgres) = command.postgres() {
        postgres.use_bookkeeping_schema();
    }
    let status = match command {
        Command::Status(config) if config.watch.is_some() => {
            let every = config.watch.unwrap_or_default();
            let stop = common::shutdown::on_signal();
            match mongo2pg::status::watch::watch(&config, every, stop).await {
                Some(verdict) => verdict.exit_code(),
                None => ExitStatus::INCOMPLETE,
            }
        }
        Command::Status(config) => {
            let status = mongo2pg::status::status(&config).await?;
            common::cli::print_out(&status);
            status.verdict().exit_code()
        }
        Command::Cutover(config) => match mongo2pg::cutover::cutover(&config).await {
            Ok(cutover) => {
                common::cli::print_out(&cutover);
                cutover.exit_status()
            }
            Err(err) => match err.verdict() {
                Some(status) => {
                    common::cli::report(&err.into());
                    status
                }
                None => return Err(err.into()),
            },
        },
        Command::Verify(config) => {
            let report = mongo2pg::verify::verify(&config).await?;
            common::cli::print_out(&report);
            report.exit_status()
        }
        Command::Infer(config) => {
            let inferred = mongo2pg::infer::infer(&config).await?;
            common::cli::print_out(&inferred.text);
            ExitStatus::SUCCESS
        }
        Command::Finish(config) => {
            let finished = mongo2pg::finish::finish(&config).await?;
            common::cli::print_out(&finished);
            finished.exit_status()
        }
        Command::Schema(config) => {
            let file = landing::mapping::MappingFile::load(&config.mapping)
                .map_err(mongo2pg::error::OperatorError::from)?;
            common::cli::print_out(mongo2pg::infer::schema_sql(&file));
            ExitStatus::SUCCESS
        }
        Command::Replay(config) => {
            let replayed = mongo2pg::replay::replay(&config).await?;
            common::cli::print_out(format_args!("{replayed}\n"));
            replayed.exit_status()
        }
        Command::Requeue(config) => {
            let requeued = mongo2pg::requeue::requeue(&config).await?;
            common::cli::print_out(format_args!("{requeued}\n"));
            ExitStatus::SUCCESS
        }
        Command::Cleanup(config) => {
            let cleaned = mongo2pg::cleanup::cleanup(&config).await?;
            common::cli::print_out(&cleaned);
            ExitStatus::SUCCESS
        }
        Command::Seed(config) => {
            let seeded = mongo2pg::seed::seed(&config).await?;
            common::cli::print_out(format_args!(
                "seeded {} documents into {}.{} in {:.2} s\n",
                seeded.documents,
                config.mongo.mongodb_database,
                config.collection,
                seeded.elapsed.as_secs_f64()
            ));
            ExitStatus::SUCCESS
        }
    };
    Ok(ExitCode::from(status.0))
}
