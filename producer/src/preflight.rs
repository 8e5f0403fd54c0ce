//! What a run checks before it publishes anything: that it resumes from the source it
//! read before, that following is neither added to a run published without it nor
//! left out for collections of a followed run, and the mapping it filters with. Each
//! refusal is a [`ProducerError`] saying what to do instead.

use common::naming::RunName;
use common::run_state::{RunSource, RunState};

use crate::error::ProducerError;
use tokio_util::sync::CancellationToken;

use crate::{follow, retry};

/// Refuses to resume a run that read another database: its batches would mix two
/// sources under one run. The same database reached by another address (a replica set
/// member, another name for the host) is only worth a warning.
pub(crate) async fn check_source(
    state: &RunState,
    run: &RunName,
    source: &RunSource,
    restart: bool,
    stop: &CancellationToken,
) -> Result<(), ProducerError> {
    // The first reads of a run ride out NATS answering late, as every later one does
    // (a JetStream cluster just started, or electing a leader).
    let manifest =
        retry::with_retries("reading the run's manifest", stop, || state.manifest()).await?;
    let Some(was) = manifest.and_then(|manifest| manifest.source) else {
        return Ok(());
    };
    if was.database != source.database && !restart {
        return Err(ProducerError::OtherSource {
            run: run.to_string(),
            was_database: was.database,
            was_uri: was.uri,
            database: source.database.clone(),
            uri: source.uri.clone(),
        });
    }
    if was != *source {
        tracing::warn!(run = %run, was = %format!("{} at {}", was.database, was.uri),
            now = %format!("{} at {}", source.database, source.uri),
            "the run was published before from another address or database");
    }
    Ok(())
}

/// Refuses what would follow a run partly or not at all while its changes land as if
/// followed:
/// - `--follow` on a run published before without it: its start position would be
///   taken after (part of) its snapshot, and the changes in between would be lost;
/// - collections other than those a followed run follows, with or without
///   `--follow`: they would be snapshotted and never followed.
pub(crate) async fn check_follow(
    state: &RunState,
    run: &RunName,
    mongo: &source::Source,
    collections: &[String],
    follow: bool,
    whole: bool,
    stop: &CancellationToken,
) -> Result<follow::Scope, ProducerError> {
    // The manifest first: a producer racing this one records its start position before
    // its manifest, so a manifest seen here means any start position is seen too.
    let published_before =
        retry::with_retries("reading the run's manifest", stop, || state.manifest())
            .await?
            .is_some();
    let start =
        retry::with_retries("reading the run's start position", stop, || state.start()).await?;
    let scope = follow::Scope::of(start.as_ref(), mongo.databases(), collections, whole);
    match start {
        None if follow && published_before => Err(ProducerError::FollowAddedLater {
            run: run.to_string(),
        }),
        Some(start) if !follow && !follow::follows(&start, mongo.databases(), &scope) => {
            Err(ProducerError::OtherCollectionsOfFollowedRun {
                run: run.to_string(),
            })
        }
        _ => Ok(scope),
    }
}

pub(crate) async fn forget(state: &RunState, collections: &[String]) -> Result<(), ProducerError> {
    for name in collections {
        if let Some(checkpoint) = state.checkpoint(name).await? {
            tracing::warn!(
                collection = %name,
                batches = checkpoint.batches,
                documents = checkpoint.documents,
                "--restart: discarding the checkpoint; the collection is published again from its first document"
            );
        }
    }
    state.forget(collections).await?;
    Ok(())
}

/// The run's mapping, for its filters: `--mapping`, which becomes the run's mapping
/// (refused when a consumer recorded another), or the run's recorded mapping (none: no
/// filter).
pub(crate) async fn mapping(
    state: &RunState,
    run: &RunName,
    mapping: Option<&std::path::Path>,
) -> Result<landing::mapping::MappingFile, ProducerError> {
    Ok(match mapping {
        Some(path) => {
            let (file, ours) = landing::mapping::MappingFile::load_recorded(Some(path))?;
            let held = state.record_mapping(&ours).await?;
            if held.hash != ours.hash {
                return Err(ProducerError::OtherMapping {
                    run: run.to_string(),
                    held: held.describe(),
                    ours: ours.describe(),
                });
            }
            file
        }
        None => match state.mapping().await? {
            Some(held) => landing::mapping::MappingFile::parse(&held)?,
            None => landing::mapping::MappingFile::default(),
        },
    })
}
