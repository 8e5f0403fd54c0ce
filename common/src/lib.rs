//! What the producer and the consumers share.
//!
//! # Layout
//! - [`batch`]: the msgpack envelope of one page of documents, its deterministic id,
//!   and splitting pages into batches that fit a NATS message.
//! - [`compression`]: LZ4 for a batch's trip through NATS.
//! - [`blob`]: the object store of large documents, written and read by both sides.
//! - [`naming`]: stream, subject, consumer, bucket and table names, all in one place.
//! - [`run_state`]: the run manifest and producer checkpoints kept in the KV bucket.
//! - [`broker`]: connecting to NATS and creating the JetStream resources.
//! - [`config`]: command-line/environment arguments both binaries take.
//! - [`cli`]: one-line errors at the binaries' edge.
//! - [`certificate`]: naming an expired (or not yet valid) server certificate.
//! - [`crash`]: named crash points for the kill -9 tests.
//! - [`telemetry`]: logs and OTLP traces.
//! - [`shutdown`]: SIGINT/SIGTERM as a cancellation token.
//! - [`trace_context`]: W3C trace context carried in NATS headers.
#![warn(unreachable_pub, missing_docs)]

pub mod batch;
pub mod blob;
pub mod broker;
pub mod certificate;
pub mod cli;
pub mod compression;
pub mod config;
pub mod crash;
pub mod exposition;
pub mod naming;
pub mod run_state;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;
