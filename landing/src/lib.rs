//! The PostgreSQL side of a migration, shared by the consumer (which lands batches),
//! `mongo2pg replay` (which lands rejects again) and `mongo2pg verify --repair`
//! and `infer`.
//!
//! # Layout
//! Vocabulary, no I/O:
//! - [`column_type`]: the column types a mapping may name.
//! - [`cell`]: a BSON value converted for a column, exactly or refused, and its
//!   binary COPY bytes.
//! - [`numeric`]: PostgreSQL's binary `numeric` format.
//! - [`extjson`]: raw BSON to Extended JSON text, in one pass.
//! - [`finish_state`]: where `mongo2pg finish` stands, counted for the consumers' gauge.
//! - [`identifier`]: quoting, and deterministic names for long or colliding fields.
//! - [`mapping`]: the mapping file, a collection's [`TablePlan`](mapping::TablePlan),
//!   and how one document becomes its rows (or a [`RowError`](mapping::RowError)).
//! - [`mapped`]: a batch of documents mapped to rows and rejects, the one loop that
//!   does it.
//!
//! Talking to PostgreSQL:
//! - [`pg`]: connecting, and which errors are worth retrying.
//! - [`session`]: a connection the landing writes through, its statements prepared
//!   once.
//! - [`tls`]: libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, with rustls.
//! - [`schema`]: the bookkeeping tables and the target tables.
//! - [`table_check`]: a table that exists already, checked against the plan.
//! - [`keys`]: primary keys built once the snapshot has landed (`--key-after-load`).
//! - [`added_columns`]: columns added for new fields while several writers run.
//! - [`plans`]: the plans a connection lands with, kept current with added columns.
//! - [`copy`]: binary COPY of rows, with refused rows isolated.
//! - [`ledger`]: whether a run reached the database at all.
//! - [`reject`]: documents that could not become rows, kept with their reason.
//! - [`landing`](mod@landing): the one transaction that lands a batch: its claim
//!   (ledger row of a batch or a change batch, rejects taken back, or rows replaced),
//!   COPY, rejects, commit.
//! - [`changes`]: change events in that transaction: the newest change per `_id`, and
//!   each landing only over an older version of its document.
//! - [`delete`]: deleting what the target holds of documents being replaced.
//! - `upsert`: the changes that won replacing their rows in place, where the table
//!   allows it (one `INSERT … ON CONFLICT DO UPDATE` instead of a delete and a COPY).
//! - [`versions`]: the versions table for the other writers: snapshot documents landing
//!   late claim their key at version zero, so none lands over a change.
//!
//! Data path: raw BSON → [`Mapped::map`](mapped::Mapped::map) (rows and rejects) →
//! [`land`](landing::land): BEGIN, claim, binary COPY (refused rows isolated under
//! savepoints), rejects, COMMIT.
#![warn(unreachable_pub, missing_docs)]

pub mod added_columns;
pub mod cell;
pub mod changes;
pub mod column_type;
pub mod copy;
mod delete;
pub mod extjson;
pub mod finish_state;
pub mod identifier;
pub mod keys;
pub mod landing;
pub mod ledger;
pub mod mapped;
pub mod mapping;
pub mod numeric;
pub mod pg;
pub mod plans;
pub mod reject;
pub mod schema;
pub mod session;
pub mod table_check;
pub mod tls;
pub mod transform;
mod upsert;
pub mod versions;
