//! What one `producer run` published, as the process prints it when it ends.

use std::time::Duration;

use crate::follow;
use crate::part::CollectionSummary;
use crate::throttle;

/// What one `producer run` published.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run's name.
    pub run: String,
    /// Per collection, in the order they were named.
    pub collections: Vec<CollectionSummary>,
    /// What `--follow` published of the change stream.
    pub followed: Option<follow::Followed>,
    /// From start to the last acknowledgement (or to the stop, when following).
    pub elapsed: Duration,
    /// Under `--max-read-rate`, the rate the snapshot was read at.
    pub read_rate: Option<throttle::Achieved>,
}

impl Summary {
    /// Documents published, over every collection.
    pub fn documents(&self) -> u64 {
        self.collections.iter().map(|c| c.documents).sum()
    }

    /// Batches published, over every collection.
    pub fn batches(&self) -> u64 {
        self.collections.iter().map(|c| c.batches).sum()
    }

    /// Bytes of documents published, over every collection.
    pub fn bytes(&self) -> u64 {
        self.collections.iter().map(|c| c.bytes).sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        let rate = self.documents() as f64 / seconds.max(1e-9);
        writeln!(
            f,
            "published {} collections: {} documents in {} batches, {:.1} MB, {:.2} s, {:.0} docs/s",
            self.collections.len(),
            self.documents(),
            self.batches(),
            self.bytes() as f64 / 1e6,
            seconds,
            rate
        )?;
        for c in &self.collections {
            write!(
                f,
                "  {}: {} documents, {} batches{}",
                c.name,
                c.documents,
                c.batches,
                if c.resumed { " (resumed)" } else { "" }
            )?;
            if c.duplicates > 0 {
                // The stream remembers batch ids for its dedupe window: a batch sent
                // again within it is acknowledged and dropped, not queued again.
                write!(
                    f,
                    "; {} of them discarded by the stream as duplicates of batches it received within the last {} minutes",
                    c.duplicates,
                    common::broker::DUPLICATE_WINDOW.as_secs() / 60
                )?;
            }
            writeln!(f)?;
        }
        if let Some(read) = &self.read_rate {
            writeln!(f, "{read}")?;
        }
        if let Some(followed) = &self.followed {
            writeln!(
                f,
                "followed the change stream: {} changes in {} batches this time ({} without a document: a later change says what became of it); run the same command to follow on",
                followed.events, followed.batches, followed.skipped
            )?;
        }
        writeln!(
            f,
            "once `mongo2pg status --run {run}` says complete, `mongo2pg cleanup --run {run}` removes the run from NATS",
            run = self.run
        )
    }
}
