//! Following MongoDB's change stream after the snapshot (`producer run --follow`).
//!
//! - [`start`]: before the first snapshot batch, the stream is opened with the exact
//!   pipeline it will be read with, and its position (resume token, cluster time) is
//!   recorded once in the state bucket. A rerun never takes it again.
//! - [`stream`]: after the snapshot, every change since that position is read in
//!   order, cut into change batches per collection and published; once the stream has
//!   acknowledged them all, the checkpoint (resume token, versions) moves.
//! - [`batches`]: the change batches being filled, cut by count and bytes.
//! - [`event`]: the pipeline, and reading one raw event.
//!
//! Each change carries a [`Version`](common::batch::Version): its cluster time and its
//! position among the events of that time (a transaction's events share one). A
//! restart resumes from the checkpoint's token and continues the ordinals after the
//! checkpoint's last version, so an event published twice has the same version twice
//! and lands once (see `landing::changes`).

mod batches;
pub mod event;
mod start;
mod stream;

pub use start::{follows, record_start, StartError};

/// The lease name of a run's follower: of several producers of a run (`--readers`
/// across processes), the one holding it streams the changes (`$` is in no collection
/// name).
pub const FOLLOWER: &str = "$follow";
pub use stream::{follow, Followed};
