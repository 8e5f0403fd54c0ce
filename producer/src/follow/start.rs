//! The run's start position in the change stream, taken once.

use common::run_state::{RunState, StartPosition};
use mongodb::options::FullDocumentType;
use source::change::{pipeline, token_time};
use source::mongo_detail;
use source::{Databases, Source};

use crate::error::StartError;

/// Which collections a followed run's change stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The collections named (`--collection`).
    Named(Vec<String>),
    /// The whole database: collections created after the run started are followed
    /// too, when its `--include`/`--exclude` choose them.
    Database,
}

impl Scope {
    fn collections(&self) -> Option<&[String]> {
        match self {
            Scope::Named(names) => Some(names),
            Scope::Database => None,
        }
    }

    /// The scope of a run of `collections` (of the whole database when `whole`): a
    /// run of the whole database that started on its collections' names (before
    /// collections created later were followed) keeps following those.
    pub fn of(
        start: Option<&StartPosition>,
        databases: &Databases,
        collections: &[String],
        whole: bool,
    ) -> Scope {
        let named = Scope::Named(collections.to_vec());
        match start {
            _ if !whole => named,
            Some(start) if follows(start, databases, &named) => named,
            _ => Scope::Database,
        }
    }
}

/// Whether the run that started at `start` follows exactly `scope` of `databases`.
pub fn follows(start: &StartPosition, databases: &Databases, scope: &Scope) -> bool {
    start.pipeline == pipeline_json(databases, scope)
}

fn pipeline_json(databases: &Databases, scope: &Scope) -> serde_json::Value {
    let pipeline = pipeline(databases, scope.collections());
    bson::Bson::Array(pipeline.into_iter().map(bson::Bson::Document).collect())
        .into_canonical_extjson()
}

/// Records the run's start position unless one is recorded; returns the one that holds.
///
/// The stream is opened with `fullDocument: updateLookup` and the pipeline it will be
/// read with, so the position is one that stream can resume from.
pub async fn record_start(
    source: &Source,
    state: &RunState,
    run: &str,
    scope: &Scope,
) -> Result<StartPosition, StartError> {
    let pipeline_json = pipeline_json(source.databases(), scope);
    if let Some(start) = state.start().await? {
        if start.pipeline != pipeline_json {
            return Err(StartError::OtherPipeline {
                run: run.to_string(),
            });
        }
        return Ok(start);
    }
    let opened = source
        .watch()
        .pipeline(pipeline(source.databases(), scope.collections()))
        .full_document(FullDocumentType::UpdateLookup)
        // An empty first batch: its post-batch token is the position, even while
        // writes arrive (a first batch holding events would give no token).
        .batch_size(0)
        .await
        .map_err(|e| StartError::Open {
            database: source.shown(),
            detail: mongo_detail(&e),
        })?;
    let token = opened.resume_token().ok_or(StartError::NoToken)?;
    let token = bson::serialize_to_document(&token).map_err(|_| StartError::NoToken)?;
    let cluster_time = token_time(&token).unwrap_or_default();
    let start = StartPosition {
        resume_token: bson::Bson::Document(token).into_canonical_extjson(),
        cluster_time,
        pipeline: pipeline_json,
    };
    let held = state.record_start(&start).await?;
    if held == start {
        tracing::info!(
            run,
            cluster_time = cluster_time.time,
            "start position recorded: every change from here on is followed"
        );
    }
    common::crash::point("start-recorded");
    Ok(held)
}
