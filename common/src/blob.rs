//! The object store of a run's large documents: a document too large for a message is
//! stored here by the producer and read back by the consumer that lands its batch.
//! One module for both sides, so the names, the bounded reads and the deletion of a
//! change's own copy are written once.

use std::time::Duration;

use async_nats::jetstream::object_store::ObjectStore;
use tokio::io::AsyncReadExt;

use crate::batch::{Doc, Version};

/// How long one read of a large document from the object store may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Reads of a large document before its batch is retried as a whole.
const FETCH_TRIES: u32 = 3;

/// Why a large document could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Storing failed; the producer retries the batch or stops with this.
    #[error("storing {name} ({len} bytes) in the object store: {detail}")]
    Store {
        /// The object's name.
        name: String,
        /// The document's size.
        len: usize,
        /// What NATS said.
        detail: String,
    },
    /// Every read failed: the batch is retried as a whole (another delivery), then
    /// dead-lettered after `--max-deliver`.
    #[error("reading {name} from the object store: {tries} reads failed, the last: {last}")]
    Fetch {
        /// The object's name.
        name: String,
        /// How many reads were tried.
        tries: u32,
        /// What the last one said.
        last: String,
    },
}

/// The name of a document in the object store: the run's prefix, then the content
/// hash. Within a run a document stored twice (a rerun) is one object; across runs
/// nothing is shared, so `mongo2pg cleanup` can delete a run's blobs by their prefix
/// without asking which other run still needs them.
pub fn snapshot_name(run: &str, bytes: &[u8]) -> String {
    format!(
        "{}{}",
        crate::naming::blob_prefix(run),
        blake3::hash(bytes).to_hex()
    )
}

/// The name of a change's large document in the object store: one object per event
/// (by its version), so the consumer that commits the change deletes it without asking
/// which other batch shares it, and a document updated often does not keep every
/// version of itself until cleanup. An event published again (after a restart) has the
/// same version, so the same name.
pub fn change_name(run: &str, version: Version) -> String {
    format!(
        "{}{CHANGE_BLOB}{}-{}-{}",
        crate::naming::blob_prefix(run),
        version.time,
        version.increment,
        version.ordinal
    )
}

/// What follows the run's prefix in the name of a change's large document.
const CHANGE_BLOB: &str = "change-";

/// Whether a blob is a change's own (see [`change_name`]); the snapshot's are
/// named by content and may be shared within the run.
pub fn is_change(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(_, rest)| rest.starts_with(CHANGE_BLOB))
}

/// Stores a large document under `name` and returns what a batch carries of it.
pub async fn store(
    blobs: &ObjectStore,
    name: String,
    bytes: &[u8],
) -> Result<Doc<'static>, BlobError> {
    let len = bytes.len();
    let mut reader = bytes;
    blobs
        .put(name.as_str(), &mut reader)
        .await
        .map_err(|e| BlobError::Store {
            name: name.clone(),
            len,
            detail: e.to_string(),
        })?;
    tracing::debug!(len, blob = %name, "large document stored in the object store");
    Ok(Doc::Blob {
        name,
        len: len as u64,
    })
}

/// Reads a large document: each try bounded in time (a read that never returned would
/// hold its batch for the whole `--batch-timeout`), tried again a few times before the
/// caller retries its batch as a whole.
pub async fn fetch(blobs: &ObjectStore, name: &str) -> Result<Vec<u8>, BlobError> {
    let mut failure = String::new();
    for attempt in 1..=FETCH_TRIES {
        let read = async {
            let mut object = blobs.get(name).await?;
            let mut bytes = Vec::new();
            object.read_to_end(&mut bytes).await?;
            Ok::<_, async_nats::Error>(bytes)
        };
        match tokio::time::timeout(FETCH_TIMEOUT, read).await {
            Ok(Ok(bytes)) => return Ok(bytes),
            Ok(Err(err)) => failure = err.to_string(),
            Err(_) => failure = format!("no answer within {FETCH_TIMEOUT:?}"),
        }
        tracing::warn!(blob = name, attempt, error = %failure,
            "reading a large document failed; reading it again");
        tokio::time::sleep(Duration::from_millis(500) * attempt).await;
    }
    Err(BlobError::Fetch {
        name: name.to_string(),
        tries: FETCH_TRIES,
        last: failure,
    })
}

/// Deletes the copies of a landed change batch's large documents: each is its event's
/// own (see [`change_name`]). A failure costs space until `mongo2pg cleanup`, not
/// data: logged.
pub async fn forget_changes(blobs: &ObjectStore, docs: &[Doc<'_>]) {
    for doc in docs {
        let Doc::Blob { name, .. } = doc else {
            continue;
        };
        if !is_change(name) {
            continue;
        }
        if let Err(err) = blobs.delete(name.as_str()).await {
            tracing::warn!(blob = %name, error = %err,
                "a landed change's large document could not be deleted; mongo2pg cleanup removes it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_blobs_are_named_by_event_and_told_apart() {
        let version = Version {
            time: 7,
            increment: 2,
            ordinal: 1,
        };
        let name = change_name("run-1", version);
        assert_eq!(name, "run-1/change-7-2-1");
        assert!(is_change(&name));
        assert!(!is_change(&snapshot_name("run-1", b"big")));
        // A run named like the marker is still told apart by what follows its prefix.
        assert!(!is_change(&snapshot_name("change-", b"big")));
    }
}
