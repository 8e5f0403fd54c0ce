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
    /// How many batches this process's writers have settled (committed, skipped as
    /// already landed, or dead-lettered) and had acknowledged. The tasks that wait for
    /// the snapshot's end look again when it moves rather than only on their tick: a
    /// run's last batch is followed by its keys' build and the process's exit at once,
    /// not up to a tick later.
    pub settled: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// A writer settled a batch and its acknowledgement was confirmed.
    pub(crate) fn batch_settled(&self) {
        self.settled.send_modify(|n| *n = n.wrapping_add(1));
    }
}
