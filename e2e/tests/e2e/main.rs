//! The end-to-end suite, one test binary: the built `producer`, `consumer` and
//! `mongo2pg` binaries against real MongoDB, NATS JetStream and PostgreSQL (see the
//! `e2e` library for the harness). Modules by subject:
//!
//! - [`pipeline`]: the snapshot path, end to end and at its edges.
//! - [`faults`]: processes killed, servers restarted or stalled, bad bytes.
//! - [`live`]: following the change stream, cutover, failover.
//! - [`parallel`]: `_id` ranges read by several readers and producers.
//! - [`mapping`]: BSON types, typed tables, drift, existing tables, generated documents.
//! - [`secured`]: TLS, authentication, secrets that never show.
//! - [`operations`]: status, cleanup, requeue, errors and mistakes, telemetry, memory.
//! - [`deploy`]: Compose, Kubernetes and the Dockerfile.
//! - [`docs`]: the README and the book.
//! - [`bench_smoke`]: the benchmarks run small.

mod bench_smoke;
mod deploy;
mod docs;
mod faults;
mod live;
mod mapping;
mod operations;
mod parallel;
mod pipeline;
mod secured;
