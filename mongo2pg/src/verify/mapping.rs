//! Which mapping `verify` holds the target against: the run's, recorded on NATS by its
//! first consumer, so a verification can never pass by checking another mapping than
//! the one the documents were landed with.

use common::broker::{Broker, BrokerError};
use common::run_state::{RunMapping, RunState};
use landing::mapping::MappingFile;

use super::VerifyError;
use crate::config::VerifyConfig;

/// The mapping to verify against, and how the report names it:
/// - `--mapping` given: that file, refused when the run recorded another one;
/// - otherwise the run's recorded mapping;
/// - otherwise (a run cleaned up from NATS, or from before mappings were recorded)
///   the default tables, and the report says the run recorded none.
pub(super) async fn for_run(config: &VerifyConfig) -> Result<(MappingFile, String), VerifyError> {
    let given = match config.mapping.as_deref() {
        Some(path) => Some(MappingFile::load_recorded(Some(path))?),
        None => None,
    };
    let run = config.run.run.as_str();
    let recorded = match recorded(config).await {
        Ok(recorded) => recorded,
        // The file given is used as it is; nothing to hold it against.
        Err(err) if given.is_some() => {
            tracing::warn!(error = %err, "the run's recorded mapping cannot be read; verifying with --mapping as given");
            None
        }
        Err(err) => return Err(err),
    };
    match (given, recorded) {
        (Some((_, ours)), Some(held)) if ours.hash != held.hash => Err(VerifyError::OtherMapping {
            run: run.to_string(),
            held: held.describe(),
            ours: ours.describe(),
        }),
        (Some((file, ours)), _) => Ok((file, ours.describe())),
        (None, Some(held)) => Ok((MappingFile::parse(&held)?, held.describe())),
        (None, None) => Ok((
            MappingFile::default(),
            format!("no mapping (default tables): run {run} has none recorded"),
        )),
    }
}

/// The run's recorded mapping; `None` when its stream or state is not on NATS.
async fn recorded(config: &VerifyConfig) -> Result<Option<RunMapping>, VerifyError> {
    let broker = match Broker::open(&config.nats, config.nats.stream.clone()).await {
        Ok(broker) => broker,
        Err(BrokerError::Missing { .. }) => return Ok(None),
        Err(err) => return Err(VerifyError::Broker(err)),
    };
    let state = RunState::new(
        broker.state.clone(),
        broker.names.clone(),
        config.run.run.clone(),
    );
    Ok(state.mapping().await?)
}
