//! `mongo2pg status`: where a run stands, for people and for scripts.
//!
//! Per collection: documents in the source, published (the producer's totals),
//! committed and rejected (the consumers' ledger), dead-lettered batches; and for the
//! run, batches still pending in the stream. The verdict is the exit code:
//! 0 complete, 3 incomplete (still running, or stopped before the end), 4 inconsistent
//! (counts that cannot all be right: investigate before trusting the target), 5 landed
//! with rejects (every document accounted for, some waiting in `_migrate_rejects`).
//!
//! A run that follows the change stream also shows its phase, lag and oplog headroom
//! ([`live`]); its source keeps changing, so its snapshot is not compared with the
//! source's count, and a lost history is inconsistent.
//!
//! `--watch` reads it again and again on a terminal ([`watch`]).

pub mod finish;
pub mod live;
mod servers;
pub mod watch;

pub use servers::{not_landed, read, status, Servers};

use std::collections::BTreeMap;

use crate::error::ExitStatus;

/// One collection's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionStatus {
    /// Documents in MongoDB: its metadata count, or counted with `--exact`.
    pub source: u64,
    /// Documents the producer published.
    pub published: u64,
    /// Whether the producer published the whole collection.
    pub published_complete: bool,
    /// Rows committed, by the consumers' ledger.
    pub committed: u64,
    /// Documents in `_migrate_rejects`, by the ledger.
    pub rejected: u64,
    /// Batches in `_migrate_dead_letters`.
    pub dead_letter_batches: u64,
    /// Documents a batch found landed already by another batch of the run (published
    /// again in other batches, after a rerun with another `--batch-size`): skipped,
    /// and counted once in `committed`.
    pub already: u64,
    /// For a collection read in `_id` ranges (`--readers`): where its ranges stand.
    pub ranges: Option<RangeStatus>,
    /// The table whose primary key waits for the snapshot to land
    /// (`consumer run --key-after-load`): the run is not complete until it is built.
    pub key_pending: Option<String>,
}

/// The ranges of a collection read in `_id` ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeStatus {
    /// Ranges published completely.
    pub done: usize,
    /// Ranges being read: their index and the producer holding the lease.
    pub in_progress: Vec<(usize, String)>,
    /// Ranges no producer holds a live lease on, not complete.
    pub waiting: usize,
}

/// Where a run stands.
#[derive(Debug, Clone, Default)]
pub struct RunStatus {
    /// The run.
    pub run: String,
    /// Whether the producer published every collection (the manifest is complete).
    pub producer_finished: bool,
    /// Per collection.
    pub collections: BTreeMap<String, CollectionStatus>,
    /// Batches in the stream not yet delivered, and delivered but not acknowledged;
    /// `None` when no consumer has bound the run yet.
    pub pending: Option<(u64, u64)>,
    /// Dead letters whose envelope could not even be read (no collection known).
    pub unattributed_dead_letters: u64,
    /// Whether `source` was counted (`--exact`) rather than read from MongoDB's
    /// collection metadata, an estimate that can be off (after an unclean shutdown,
    /// on sharded clusters) and that a verdict cannot rest on.
    pub source_counted: bool,
    /// For a run following the change stream.
    pub live: Option<live::LiveStatus>,
    /// The run's documents waiting in `_migrate_rejects` now (those `mongo2pg replay`
    /// landed have left it).
    pub waiting_rejects: u64,
    /// What `mongo2pg finish` recorded for the run, once it ran.
    pub finish: Option<finish::FinishPhase>,
    /// How the run chose its collections (`--include`/`--exclude`), and those it
    /// left out with why.
    pub selection: Option<(String, BTreeMap<String, String>)>,
    /// Collections dropped (or renamed away) in MongoDB while the run followed them,
    /// with how and when: not
    /// counted, their tables keep their rows.
    pub dropped: BTreeMap<String, String>,
    /// The producer's `--max-read-rate`, in words.
    pub read_limit: Option<String>,
}

/// What `status` concludes, and its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every source document is committed (0).
    Complete,
    /// Every document is accounted for, but some wait in `_migrate_rejects`: not what
    /// a team switches its application on.
    Rejected,
    /// Still running, or stopped before the end (3).
    Incomplete,
    /// Counts that cannot all be right: investigate before trusting the target (4).
    Inconsistent,
    /// Every document landed, but `finish` left an index failed or a foreign key with
    /// orphans (4).
    Unfinished,
}

impl Verdict {
    /// The verdict as the command's exit status.
    pub fn exit_code(self) -> ExitStatus {
        match self {
            Verdict::Complete => ExitStatus::SUCCESS,
            Verdict::Incomplete => ExitStatus::INCOMPLETE,
            Verdict::Rejected => ExitStatus::REJECTED,
            Verdict::Inconsistent | Verdict::Unfinished => ExitStatus::DIFFERENT,
        }
    }
}

impl RunStatus {
    /// The verdict the numbers give.
    pub fn verdict(&self) -> Verdict {
        match self.landing_verdict() {
            Verdict::Complete if self.waiting_rejects > 0 => Verdict::Rejected,
            Verdict::Complete if self.finish.as_ref().is_some_and(|f| f.needs_attention()) => {
                Verdict::Unfinished
            }
            verdict => verdict,
        }
    }

    /// The verdict on what was published and landed, rejects counted as landed.
    fn landing_verdict(&self) -> Verdict {
        let mut verdict = Verdict::Complete;
        if self.collections.is_empty() {
            return Verdict::Incomplete;
        }
        if let Some(live) = &self.live {
            return self.live_verdict(live);
        }
        for c in self.collections.values() {
            let landed = c.committed + c.rejected;
            if landed > c.published {
                return Verdict::Inconsistent;
            }
            if c.published_complete && c.published != c.source && self.live.is_none() {
                if self.source_counted {
                    return Verdict::Inconsistent;
                }
                // Perhaps only the estimate is off: count to know.
                verdict = Verdict::Incomplete;
            }
            // Documents found landed already (published again in other batches) are
            // landed: without them a run over a filled table stayed incomplete forever.
            if !c.published_complete
                || landed + c.already < c.published
                || c.dead_letter_batches > 0
                || c.key_pending.is_some()
            {
                verdict = Verdict::Incomplete;
            }
        }
        if self
            .live
            .as_ref()
            .is_some_and(live::LiveStatus::history_lost)
        {
            return Verdict::Inconsistent;
        }
        if !self.producer_finished
            || self
                .pending
                .is_some_and(|(waiting, unacked)| waiting + unacked > 0)
        {
            verdict = Verdict::Incomplete;
        }
        verdict
    }
}

impl RunStatus {
    /// The verdict on a followed run's snapshot. Its source changes all along, and a
    /// snapshot resumed after a crash may publish changed documents again (landed
    /// once, the second time counted as already landed): the counts cannot be held
    /// against each other. Exactness there rests on `cutover` and the version rule.
    fn live_verdict(&self, live: &live::LiveStatus) -> Verdict {
        if live.history_lost() {
            return Verdict::Inconsistent;
        }
        let unfinished = self.collections.values().any(|c| {
            !c.published_complete
                || c.committed + c.rejected + c.already < c.published
                || c.dead_letter_batches > 0
                || c.key_pending.is_some()
        });
        let pending = self
            .pending
            .is_some_and(|(waiting, unacked)| waiting + unacked > 0);
        // Streaming with nobody following, and not cut over: changes wait in the oplog
        // where no count of ours sees them.
        let unfollowed = live.phase == live::Phase::Streaming
            && live.follower.is_none()
            && live.cut_over.is_none();
        let lacking = !live.not_in_run.is_empty();
        if unfinished || pending || unfollowed || lacking || !self.producer_finished {
            Verdict::Incomplete
        } else {
            Verdict::Complete
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let producer = match (self.producer_finished, self.live.is_some()) {
            (true, false) => "producer finished",
            (false, false) => "producer not finished",
            (true, true) => "snapshot published",
            (false, true) => "snapshot not yet published",
        };
        writeln!(f, "run {}: {producer}", self.run)?;
        if let Some(limit) = &self.read_limit {
            writeln!(
                f,
                "snapshot reads limited to {limit} per producer (--max-read-rate)"
            )?;
        }
        if !self.dropped.is_empty() {
            let dropped: Vec<String> = self
                .dropped
                .iter()
                .map(|(name, when)| format!("{name} ({when})"))
                .collect();
            writeln!(
                f,
                "gone from MongoDB while followed (not counted; their tables keep their rows): {}",
                dropped.join(", ")
            )?;
        }
        if let Some((patterns, left_out)) = &self.selection {
            writeln!(
                f,
                "chosen by {patterns}: {} collections; left out: {}",
                self.collections.len(),
                if left_out.is_empty() {
                    "none".to_string()
                } else {
                    left_out
                        .iter()
                        .map(|(name, why)| format!("{name} ({why})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )?;
        }
        writeln!(
            f,
            "{:<24} {:>12} {:>12} {:>12} {:>10} {:>14}",
            "collection", "source", "published", "committed", "rejected", "dead batches"
        )?;
        for (name, c) in &self.collections {
            writeln!(
                f,
                "{:<24} {:>12} {:>11}{} {:>12} {:>10} {:>14}",
                name,
                c.source,
                c.published,
                if c.published_complete { " " } else { "+" },
                c.committed,
                c.rejected,
                c.dead_letter_batches
            )?;
        }
        for (name, c) in &self.collections {
            if let Some(r) = &c.ranges {
                let holders: Vec<String> = r
                    .in_progress
                    .iter()
                    .map(|(index, holder)| format!("{index} by {holder}"))
                    .collect();
                writeln!(
                    f,
                    "{name} ranges: {} done, {} in progress{}, {} waiting",
                    r.done,
                    r.in_progress.len(),
                    if holders.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", holders.join(", "))
                    },
                    r.waiting
                )?;
            }
        }
        match self.pending {
            Some((waiting, unacked)) => writeln!(
                f,
                "pending in the stream: {waiting} batches waiting, {unacked} being written"
            )?,
            None => writeln!(
                f,
                "pending in the stream: no consumer has started on this run yet"
            )?,
        }
        writeln!(
            f,
            "source: {}",
            if self.source_counted {
                "documents counted (--exact)"
            } else {
                "MongoDB's metadata count, an estimate; --exact counts the documents (a scan)"
            }
        )?;
        for c in self.collections.values() {
            if let Some(table) = &c.key_pending {
                writeln!(
                    f,
                    "primary key of {table}: built once the snapshot has landed (--key-after-load); not yet"
                )?;
            }
        }
        let already: u64 = self.collections.values().map(|c| c.already).sum();
        if already > 0 {
            writeln!(
                f,
                "skipped as already landed: {already} documents published again in other batches (a rerun with another --batch-size), each committed once"
            )?;
        }
        if self.unattributed_dead_letters > 0 {
            writeln!(
                f,
                "unreadable messages dead-lettered: {}",
                self.unattributed_dead_letters
            )?;
        }
        if let Some(live) = &self.live {
            write!(f, "{live}")?;
        }
        if let Some(finish) = &self.finish {
            write!(f, "{finish}")?;
        }
        let verdict = match self.verdict() {
            Verdict::Complete if self.live.as_ref().is_some_and(|l| l.cut_over.is_some()) => {
                "complete: cut over"
            }
            Verdict::Complete if self.live.is_some() => {
                "complete: the snapshot is landed; changes are followed until `mongo2pg cutover`"
            }
            Verdict::Complete => "complete: every source document is committed",
            Verdict::Rejected => {
                return writeln!(
                    f,
                    "status: landed with rejects: {} documents wait in _migrate_rejects with their reason; fix the mapping (or the table) and `mongo2pg replay --run {}` lands them",
                    self.waiting_rejects, self.run
                )
            }
            Verdict::Incomplete => "incomplete",
            Verdict::Inconsistent => "INCONSISTENT: the counts disagree",
            Verdict::Unfinished => "landed, but finish left something to fix (above): fix it and run `mongo2pg finish` again",
        };
        writeln!(f, "status: {verdict}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: CollectionStatus, finished: bool, pending: Option<(u64, u64)>) -> RunStatus {
        RunStatus {
            run: "r".into(),
            producer_finished: finished,
            collections: BTreeMap::from([("c".to_string(), c)]),
            pending,
            unattributed_dead_letters: 0,
            source_counted: true,
            live: None,
            waiting_rejects: 0,
            finish: None,
            selection: None,
            dropped: BTreeMap::new(),
            read_limit: None,
        }
    }

    #[test]
    fn a_key_waiting_for_the_load_leaves_the_run_incomplete() {
        let landed = CollectionStatus {
            source: 10,
            published: 10,
            published_complete: true,
            committed: 10,
            ..Default::default()
        };
        assert_eq!(
            run(landed.clone(), true, Some((0, 0))).verdict(),
            Verdict::Complete
        );
        let waiting = CollectionStatus {
            key_pending: Some("users".into()),
            ..landed
        };
        let status = run(waiting, true, Some((0, 0)));
        assert_eq!(status.verdict(), Verdict::Incomplete);
        assert!(status
            .to_string()
            .contains("primary key of users: built once the snapshot has landed"));
    }

    #[test]
    fn verdicts() {
        let done = CollectionStatus {
            source: 10,
            published: 10,
            published_complete: true,
            committed: 8,
            rejected: 2,
            dead_letter_batches: 0,
            already: 0,
            ranges: None,
            key_pending: None,
        };
        assert_eq!(
            run(done.clone(), true, Some((0, 0))).verdict(),
            Verdict::Complete
        );
        assert_eq!(
            run(done.clone(), true, Some((1, 0))).verdict(),
            Verdict::Incomplete
        );
        // Rejects still waiting (not replayed yet) are not a run to switch over to.
        let waiting = RunStatus {
            waiting_rejects: 2,
            ..run(done.clone(), true, Some((0, 0)))
        };
        assert_eq!(waiting.verdict(), Verdict::Rejected);
        assert_eq!(waiting.verdict().exit_code(), ExitStatus::REJECTED);
        assert!(waiting
            .to_string()
            .contains("landed with rejects: 2 documents"));
        assert_eq!(
            run(done.clone(), false, Some((0, 0))).verdict(),
            Verdict::Incomplete
        );
        let short = CollectionStatus {
            committed: 7,
            ..done.clone()
        };
        assert_eq!(
            run(short, true, Some((0, 0))).verdict(),
            Verdict::Incomplete
        );
        let dead = CollectionStatus {
            committed: 7,
            dead_letter_batches: 1,
            ..done.clone()
        };
        assert_eq!(run(dead, true, Some((0, 0))).verdict(), Verdict::Incomplete);
        let too_many = CollectionStatus {
            committed: 9,
            ..done.clone()
        };
        assert_eq!(
            run(too_many, true, Some((0, 0))).verdict(),
            Verdict::Inconsistent
        );
        let source_moved = CollectionStatus { source: 11, ..done };
        assert_eq!(
            run(source_moved.clone(), true, Some((0, 0))).verdict(),
            Verdict::Inconsistent
        );
        // MongoDB's estimate may be what is off: count before calling it inconsistent.
        let estimated = RunStatus {
            source_counted: false,
            ..run(source_moved, true, Some((0, 0)))
        };
        assert_eq!(estimated.verdict(), Verdict::Incomplete);
    }
}
