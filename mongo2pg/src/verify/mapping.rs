//! Which mapping `verify` holds the target against: the run's, recorded on NATS by its
//! first consumer, so a verification can never pass by checking another mapping than
//! the one the documents were landed with; and the run's collections, so that a run
//! of some collections (named, or chosen by patterns) is held against those.

use common::broker::{Broker, BrokerError};
use common::run_state::{RunMapping, RunState};
use landing::mapping::MappingFile;

use super::VerifyError;
use crate::config::VerifyConfig;

/// The mapping to verify against, how the report names it, and the run's collections
/// still in MongoDB (`None` when its manifest is not on NATS). The mapping is:
/// - `--mapping` given: that file, refused when the run recorded another one;
/// - otherwise the run's recorded mapping;
/// - otherwise (a run cleaned up from NATS, or from before mappings were recorded)
///   the default tables, and the report says the run recorded none.
pub(super) async fn for_run(
    config: &VerifyConfig,
) -> Result<(MappingFile, String, Option<Vec<String>>), VerifyError> {
    let given = match config.mapping.as_deref() {
        Some(path) => Some(MappingFile::load_recorded(Some(path))?),
        None => None,
    };
    let run = config.run.run.as_str();
    let (recorded, collections) = match recorded(config).await {
        Ok(recorded) => recorded,
        // The file given is used as it is; nothing to hold it against.
        Err(err) if given.is_some() => {
            tracing::warn!(error = %err, "the run's recorded mapping cannot be read; verifying with --mapping as given");
            (None, None)
        }
        Err(err) => return Err(err),
    };
    let (mapping, named) = match (given, recorded) {
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
    }?;
    Ok((mapping, named, collections))
}

/// The run's recorded mapping and collections; `None` when its stream or state is not
/// on NATS.
async fn recorded(
    config: &VerifyConfig,
) -> Result<(Option<RunMapping>, Option<Vec<String>>), VerifyError> {
    let broker = match Broker::open(&config.nats, config.nats.stream.clone()).await {
        Ok(broker) => broker,
        Err(BrokerError::Missing { .. }) => return Ok((None, None)),
        Err(err) => return Err(VerifyError::Broker(err)),
    };
    let state = RunState::new(
        broker.state.clone(),
        broker.names.clone(),
        config.run.run.clone(),
    );
    let collections = state.manifest().await?.map(|m| m.present());
    Ok((state.mapping().await?, collections))
}
