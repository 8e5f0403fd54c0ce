//! What every task of a run works with, handed around as one value.

use std::collections::BTreeMap;
use std::sync::Arc;

use bson::Document;
use common::broker::Broker;
use common::run_state::{ClusterTime, RunState};
use source::Source;
use tokio_util::sync::CancellationToken;

use crate::config::RunConfig;
use crate::metrics::Metrics;
use crate::throttle::Throttle;

/// The source, the broker, the run's state, its configuration and its stop signal.
/// Cheap to clone (handles); a task that may be stopped alone (a range whose lease is
/// lost) gets a clone with its own `shutdown`.
#[derive(Clone)]
pub(crate) struct RunContext {
    /// The databases read.
    pub source: Source,
    /// NATS: the stream, the buckets and the object store.
    pub broker: Broker,
    /// The run's manifest, checkpoints and leases.
    pub state: RunState,
    /// The command line.
    pub config: RunConfig,
    /// Cancelled on SIGINT/SIGTERM, or when this task must stop.
    pub shutdown: CancellationToken,
    /// Per collection, the mapping's filter: only the documents it matches move.
    pub filters: Arc<BTreeMap<String, Document>>,
    /// What this process published, for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `--max-read-rate`, shared by the process's readers.
    pub throttle: Arc<Throttle>,
    /// A followed run's start position: the snapshot is read as of it at least, on
    /// whichever member serves the reads.
    pub as_of: Option<ClusterTime>,
}
