//! A Prometheus `/metrics` endpoint (`--metrics-addr`), one per consumer process.
//!
//! Counters of this process (batches and documents committed, rejects, duplicates
//! skipped, dead letters), the batch write latency histogram, and the run's batches
//! still waiting in the stream. Prometheus sums the processes. Served by
//! [`common::exposition`].

use std::fmt::Write as _;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

/// Serves scrapes until `stop` is cancelled.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    common::exposition::serve(listener, || render(&shared), stop).await;
}

/// The exposition text.
pub(crate) fn render(shared: &Shared) -> String {
    let totals = shared.stats.totals();
    let run = shared.run.as_str();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{run=\"{run}\"}} {value}"
        );
    };
    metric(
        "mongo2pg_batches_committed_total",
        "counter",
        "Batches committed by this process.",
        totals.batches,
    );
    metric(
        "mongo2pg_documents_committed_total",
        "counter",
        "Rows written by this process.",
        totals.rows,
    );
    metric(
        "mongo2pg_duplicates_skipped_total",
        "counter",
        "Redelivered batches found in the ledger and skipped.",
        totals.duplicates,
    );
    metric(
        "mongo2pg_dead_letters_total",
        "counter",
        "Messages dead-lettered by this process.",
        totals.dead_letters,
    );
    metric(
        "mongo2pg_stream_pending_batches",
        "gauge",
        "Batches of the run waiting in the stream, not yet delivered.",
        shared.stats.pending(),
    );
    metric(
        "mongo2pg_changes_applied_total",
        "counter",
        "Change events of the change stream landed by this process.",
        shared.stats.changes_applied(),
    );
    let lag = "mongo2pg_change_apply_lag_seconds";
    let _ = writeln!(
        out,
        "# HELP {lag} Seconds from the newest change's cluster time in MongoDB to its commit here.\n# TYPE {lag} gauge\n{lag}{{run=\"{run}\"}} {}",
        shared.stats.apply_lag_seconds()
    );
    let rejects = "mongo2pg_rejects_total";
    common::exposition::header(
        &mut out,
        rejects,
        "counter",
        "Documents sent to the rejects table by this process, by reason (the reject's own words are in _migrate_rejects).",
    );
    for (kind, count) in shared.stats.rejects_by_kind() {
        let _ = writeln!(
            out,
            "{rejects}{{run=\"{run}\",reason=\"{}\"}} {count}",
            kind.label()
        );
    }
    let finish = "mongo2pg_finish_items";
    common::exposition::header(
        &mut out,
        finish,
        "gauge",
        "Indexes and foreign keys of mongo2pg finish, by kind and state (waiting, building, built, failed, ...), as last read from _migrate_finish.",
    );
    for (kind, state, count) in shared.stats.finish() {
        let _ = writeln!(
            out,
            "{finish}{{run=\"{run}\",kind=\"{}\",state=\"{}\"}} {count}",
            common::exposition::label(&kind),
            common::exposition::label(&state)
        );
    }
    shared.stats.write_latency.render(
        &mut out,
        "mongo2pg_batch_write_seconds",
        "Time to land one batch: ledger row, COPY, rejects, commit.",
        run,
    );
    out
}
