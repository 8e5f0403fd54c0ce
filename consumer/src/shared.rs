//! What the writers of one consumer process share: where to write, the mapping, the
//! broker, the counters and the delivery settings. Built once by [`crate::pool::run`].

use std::time::Duration;

use common::broker::Broker;
use common::naming::RunName;
use landing::mapping::MappingFile;

use crate::stats::Stats;

/// What the writers of a process share.
pub(crate) struct Shared {
    pub run: RunName,
    pub database_url: String,
    pub mapping: MappingFile,
    pub broker: Broker,
    pub stats: Stats,
    pub ack_wait: Duration,
    /// The longest a writer works on one batch (`--batch-timeout`).
    pub batch_timeout: Duration,
    pub max_deliver: usize,
    pub prefetch: usize,
    /// New tables get their primary key once the snapshot has landed
    /// (`--key-after-load`).
    pub key_after_load: bool,
}
