//! Reading MongoDB for a migration. Everything the daemons and the operator commands
//! ask of the source lives here; nothing here talks to NATS or PostgreSQL.
//!
//! # Layout
//! - [`config`]: where MongoDB is (`--mongodb-uri`, `--mongodb-database`).
//! - [`client`]: connecting, closing at exit, choosing the collections.
//! - [`namespace`]: the databases a run reads, and the names it gives collections.
//! - [`error`]: why a read failed, and whether it passes (by the driver's codes).
//! - [`pager`]: a collection in `_id` order across BSON type brackets, resumably.
//! - [`ranges`]: planning `_id` ranges and reading one.
//! - [`reply`]: one cursor reply's documents, read in place.
//! - [`change`]: the change stream's pipeline and one raw change event.
//! - [`clock`]: the cluster time now and the oplog's window.
#![warn(unreachable_pub, missing_docs)]

pub mod change;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod namespace;
pub mod pager;
pub mod ranges;
pub mod reply;
pub mod selection;

pub use client::{collections, connect, not_in_run, shutdown};
pub use config::MongoArgs;
pub use error::{mongo_detail, ReadFailure, SourceError};
pub use namespace::{Databases, Source};
pub use selection::Selection;
