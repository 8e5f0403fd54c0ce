//! Saving a collection's checkpoint without holding up publishing.
//!
//! The publisher hands over the position of each acknowledged batch; this task writes
//! the newest one to the key-value bucket, as fast as the round trips allow. When it
//! falls behind, intermediate positions are skipped: the newest acknowledged one is
//! all a resumed run needs. Awaiting every save before the next publish cost the
//! producer about half its time. A crash can lose the last few positions, so a rerun
//! resumes a little earlier and publishes those batches again: the stream's duplicate
//! window and the consumers' ledger drop them.

use common::run_state::{Checkpoint, RunState};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ProducerError;
use crate::retry;

/// The task and the channel that feeds it. Owned by the publisher; [`finish`] waits
/// for the last position to be saved.
///
/// [`finish`]: Checkpointer::finish
pub(crate) struct Checkpointer {
    latest: watch::Sender<Option<Checkpoint>>,
    task: JoinHandle<Result<(), ProducerError>>,
}

impl Checkpointer {
    pub(crate) fn start(state: RunState, collection: String, stop: CancellationToken) -> Self {
        let (latest, mut rx) = watch::channel(None::<Checkpoint>);
        let task = tokio::spawn(async move {
            // Ends when the sender is dropped, after saving any position not yet saved.
            while rx.changed().await.is_ok() {
                let Some(checkpoint) = rx.borrow_and_update().clone() else {
                    continue;
                };
                retry::with_retries("saving the checkpoint", &stop, || {
                    state.save_checkpoint(&collection, &checkpoint)
                })
                .await?;
            }
            Ok(())
        });
        Checkpointer { latest, task }
    }

    /// Records the position reached once a batch is acknowledged.
    pub(crate) fn save(&self, checkpoint: Checkpoint) {
        self.latest.send_replace(Some(checkpoint));
    }

    /// Waits until the newest position is saved.
    pub(crate) async fn finish(self) -> Result<(), ProducerError> {
        drop(self.latest);
        self.task.await.map_err(ProducerError::Checkpointer)?
    }
}
