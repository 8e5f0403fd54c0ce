//! The consumer: lands a run's batches in PostgreSQL, exactly once.
//!
//! The PostgreSQL side (mapping, tables, the landing transaction) is the `landing`
//! library; this crate is the NATS daemon around it. Replaying rejects and requeueing
//! dead letters are `mongo2pg` commands.
//!
//! # Layout
//! - [`config`]: command line and environment.
//! - [`pool`]: a process: binds the durable consumer, owns the writers and watchers.
//! - [`shared`]: what the writers of a process share.
//! - [`writer`]: one writer: pull, decode, map, land, acknowledge.
//! - [`outcome`]: what became of a message and the acknowledgement it gets.
//! - [`dead_letter`]: keeping messages that can never land.
//! - [`done`]: knowing when a run is finished, and stopping then (`--exit-when-done`).
//! - `keys`: building the primary keys that wait for the snapshot (`--key-after-load`).
//! - [`stats`]: counters for logs, reports and metrics.
//! - [`metrics`]: the Prometheus `/metrics` endpoint.
//! - [`error`]: what stops a consumer.
//!
//! Data path: pull (NATS) → `Envelope::decode` (borrowed) → `Mapped::map` (rows and
//! rejects) → `landing::land` with the batch's ledger claim: BEGIN, ledger row, binary
//! COPY (refused rows isolated into rejects), rejects, COMMIT → ack.
#![warn(unreachable_pub, missing_docs)]

pub mod config;
pub mod error;
pub mod pool;

mod dead_letter;
mod done;
mod keys;
mod metrics;
mod outcome;
mod shared;
mod stats;
mod writer;

pub use pool::run;
