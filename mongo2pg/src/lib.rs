//! `mongo2pg`: the commands a person runs around a migration. The daemons move the
//! data (`producer`, `consumer`); these look at it, finish it and repair it.
//!
//! # Layout
//! - [`config`]: the command line.
//! - [`status`]: where a run stands, and its verdict as an exit code.
//! - [`cutover`]: waiting until the target holds every change committed until now.
//! - [`verify`]: does the target hold what the mapping makes of every document?
//! - [`finish`]: after the load, MongoDB's indexes and the references' foreign keys.
//! - [`infer`]: a mapping file and CREATE TABLE statements from a sample.
//! - [`replay`]: landing a run's rejects after the mapping is fixed.
//! - [`requeue`]: sending a run's dead letters back to the stream.
//! - [`cleanup`]: removing a finished run's messages, consumer, state and blobs.
//! - [`seed`]: generated users for demos and benchmarks.
//! - [`error`]: what the commands share of their failures, and the exit codes.
//!
//! Reading MongoDB is the `source` library, the PostgreSQL side `landing`, NATS and
//! the run's state `common`.
#![warn(unreachable_pub, missing_docs)]

pub mod cleanup;
pub mod config;
pub mod cutover;
pub mod error;
pub mod finish;
pub mod infer;
pub mod replay;
pub mod requeue;
pub mod seed;
pub mod status;
pub mod verify;
