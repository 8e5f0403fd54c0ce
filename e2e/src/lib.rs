//! The harness of the end-to-end tests: real MongoDB, NATS JetStream and PostgreSQL,
//! and the built `producer`, `consumer` and `mongo2pg` binaries run as processes.
//!
//! Each test makes a [`TestEnv`]: its own MongoDB database, PostgreSQL database and
//! stream (with its buckets), all removed when the env is dropped, so tests run in any
//! order and in parallel on the shared services. The services' addresses come from
//! `MONGODB_URI`, `NATS_URL` and `DATABASE_URL` (as `scripts/services.sh env` prints
//! them), defaulting to the standard local ports.
//!
//! The binaries log at `warn`; `E2E_RUST_LOG` (a `RUST_LOG` filter) shows more of
//! them in a failing test's output.
//!
//! The binaries are found next to the test executable (`target/<profile>/`): build them
//! first with `cargo build --bins`, as `scripts/test.sh` does.
//!
//! # Layout
//! - [`arbitrary`]: generated documents of every BSON type, for property tests.
//! - [`env`]: a test's own databases and stream, and the binaries run against them.
//! - [`private`]: private NATS and PostgreSQL servers for tests that stop them.
//! - [`compare`]: what landed against the source, by content.
//! - [`docs`]: the book's command-line reference and link checks.
//! - [`fixture`]: hard documents: unicode, odd keys, deep nesting, 16 MiB, extremes.
//! - [`otlp`]: an OTLP trace receiver.
//! - [`scrape`]: a consumer's Prometheus metrics, as a scraper reads them.
//! - [`proxy`]: a TCP proxy that drops traffic for a while.

pub mod arbitrary;
pub mod certs;
pub mod compare;
pub mod docs;
pub mod env;
pub mod fixture;
pub mod otlp;
pub mod private;
pub mod proxy;
pub mod scrape;

pub use env::*;
