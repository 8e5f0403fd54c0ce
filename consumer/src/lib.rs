//! The consumer: lands a run's batches in PostgreSQL, exactly once.
//!
//! # Layout
//! - [`config`]: command line and environment.
//! - [`pool`]: a process: binds the durable consumer, owns the writers and watchers.
//! - [`writer`]: one writer: pull, decode, map, land, acknowledge.
//! - [`mapping`]: the mapping file and how a document becomes a row.
//! - [`drift`]: columns added for fields that appear after the mapping was written.
//! - [`plans`]: the plans a connection lands with, kept current with added columns.
//! - [`cell`]: BSON value to PostgreSQL binary value, exactly or refused.
//! - [`fingerprint`]: canonical values and row hashes, to compare source and target.
//! - [`identifier`]: deterministic PostgreSQL names for long or colliding field names.
//! - [`numeric`]: PostgreSQL's binary `numeric` format.
//! - [`extjson`]: raw BSON to canonical Extended JSON text, in one pass.
//! - [`ledger`]: the transaction that lands a batch with its ledger row and rejects.
//! - [`reject`]: documents that could not become rows, kept with their reason.
//! - [`replay`]: `consumer replay`, landing a run's rejects after the mapping is fixed.
//! - [`schema`]: bookkeeping and target tables.
//! - [`outcome`]: what became of a message and the acknowledgement it gets.
//! - [`dead_letter`]: keeping messages that can never land.
//! - [`done`]: knowing when a run is finished.
//! - [`stats`]: counters for logs, reports and metrics.
//! - [`metrics`]: the Prometheus `/metrics` endpoint.
//! - [`error`]: what stops a consumer, and which PostgreSQL errors are retried.
//!
//! Data path: pull (NATS) → `Envelope::decode` (borrowed) → `TablePlan::row` per
//! document (or a reject) → `ledger::land`: BEGIN, ledger row, binary COPY (refused
//! rows isolated into rejects), rejects, COMMIT → ack.

pub mod cell;
pub mod config;
pub mod dead_letter;
pub mod done;
pub mod drift;
pub mod error;
pub mod extjson;
pub mod fingerprint;
pub mod identifier;
pub mod ledger;
pub mod mapping;
pub mod metrics;
pub mod numeric;
pub mod outcome;
pub mod plans;
pub mod pool;
pub mod reject;
pub mod replay;
pub mod schema;
pub mod stats;
pub mod writer;

pub use pool::run;
