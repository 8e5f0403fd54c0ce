//! Following MongoDB's change stream after the snapshot (`producer run --follow`).
//!
//! - [`start`]: before the first snapshot batch, the stream is opened with the exact
//!   pipeline it will be read with, and its position (resume token, cluster time) is
//!   recorded once in the state bucket. A rerun never takes it again.
//! - [`stream`]: after the snapshot, every change since that position is read in
//!   order, cut into change batches per collection and published; once the stream has
//!   acknowledged them all, the checkpoint (resume token, versions) moves.
//! - [`batches`]: the change batches being filled, cut by count and bytes.
//! - [`parts`]: a flush's changes cut by `_id`, so that batches landing at once
//!   seldom wait on each other's documents.
//! - [`known`]: the collections a followed run takes, and those that join it.
//! - [`standby`]: of several producers of a run, the one holding the follower lease
//!   follows; the others stand by to take over.
//!
//! The pipeline and reading one raw event are `source::change`.
//!
//! Each change carries a [`Version`](common::batch::Version): its cluster time and its
//! position among the events of that time (a transaction's events share one). A
//! restart resumes from the checkpoint's token and continues the ordinals after the
//! checkpoint's last version, so an event published twice has the same version twice
//! and lands once (see the consumer's landing).

mod batches;
mod known;
mod parts;
mod standby;
mod start;
mod stream;

pub use start::{follows, record_start, Scope};

pub use common::naming::FOLLOWER;
pub(crate) use standby::follow_as_one;
pub use stream::Followed;
pub(crate) use stream::{follow, measure_from_start};
