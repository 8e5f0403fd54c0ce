//! What the producer records about a run in the key-value bucket, for the consumers
//! (`--exit-when-done`), `status`, and its own resumption.
//!
//! - [`records`]: the manifest, checkpoints, plans, leases and positions as stored.
//! - this module: [`RunState`], typed access to them, with compare-and-set where
//!   several processes write one key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub mod records;

pub use records::*;

/// Why the state bucket could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// NATS failed the read or write.
    #[error("state bucket: {doing} {key:?}: {source}")]
    Nats {
        /// What was being done.
        doing: &'static str,
        /// The key.
        key: String,
        /// What NATS said.
        #[source]
        source: async_nats::Error,
    },
    /// A value does not decode.
    #[error("state bucket key {key:?} holds something unreadable: {source}; rerun the producer with --restart")]
    Corrupt {
        /// The key.
        key: String,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
}

impl StateError {
    /// Whether trying again later may succeed: NATS restarting or unreachable for a
    /// moment. An unreadable value stays unreadable.
    pub fn is_transient(&self) -> bool {
        matches!(self, StateError::Nats { .. })
    }

    fn nats(doing: &'static str, key: &str, source: impl Into<async_nats::Error>) -> Self {
        StateError::Nats {
            doing,
            key: key.to_string(),
            source: source.into(),
        }
    }
}

/// Typed access to the run manifests and checkpoints in the key-value bucket.
#[derive(Clone)]
pub struct RunState {
    kv: async_nats::jetstream::kv::Store,
    names: crate::naming::Names,
    run: crate::naming::RunName,
    /// Leases held by others, by key: the revision last seen and since when (this
    /// process's monotonic clock), to tell a lease nobody renews any more.
    watched: Arc<Mutex<HashMap<String, (u64, Instant)>>>,
}

impl RunState {
    /// The state of `run` in the bucket `kv`.
    pub fn new(
        kv: async_nats::jetstream::kv::Store,
        names: crate::naming::Names,
        run: crate::naming::RunName,
    ) -> Self {
        RunState {
            kv,
            names,
            run,
            watched: Arc::default(),
        }
    }

    /// Whether the lease at `key` has stayed at `revision` for `ttl` of this process's
    /// own clock: its holder stopped renewing it. A lease's expiry time, written by its
    /// holder's clock, is never compared with this host's (a standby whose clock ran
    /// 120 s ahead took a healthy follower's lease at once).
    fn unrenewed_for(&self, key: &str, revision: u64, ttl: Duration) -> bool {
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match watched.get(key) {
            Some((seen, since)) if *seen == revision => now.duration_since(*since) >= ttl,
            _ => {
                watched.insert(key.to_string(), (revision, now));
                false
            }
        }
    }

    /// The run's manifest, if a producer has started it.
    pub async fn manifest(&self) -> Result<Option<RunManifest>, StateError> {
        let key = self.names.manifest_key(&self.run);
        match self.kv.get(key.as_str()).await {
            Ok(Some(bytes)) => RunManifest::from_bytes(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { key, source }),
            Ok(None) => Ok(None),
            Err(err) => Err(StateError::nats("reading", &key, err)),
        }
    }

    /// Changes the manifest with compare-and-set, so producers racing on one run (started
    /// twice by mistake) never overwrite each other's totals.
    pub async fn update_manifest(
        &self,
        change: impl Fn(&mut RunManifest),
    ) -> Result<RunManifest, StateError> {
        let key = self.names.manifest_key(&self.run);
        loop {
            let entry = self
                .kv
                .entry(key.as_str())
                .await
                .map_err(|e| StateError::nats("reading", &key, e))?;
            let (mut manifest, revision) = match entry {
                Some(entry) if entry.operation == async_nats::jetstream::kv::Operation::Put => {
                    let manifest = RunManifest::from_bytes(&entry.value).map_err(|source| {
                        StateError::Corrupt {
                            key: key.clone(),
                            source,
                        }
                    })?;
                    (manifest, Some(entry.revision))
                }
                Some(entry) => (RunManifest::default(), Some(entry.revision)),
                None => (RunManifest::default(), None),
            };
            change(&mut manifest);
            use async_nats::jetstream::kv::{CreateErrorKind, UpdateErrorKind};
            let written = match revision {
                Some(revision) => match self
                    .kv
                    .update(key.as_str(), manifest.to_bytes(), revision)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
                    Err(e) => Err(StateError::nats("updating", &key, e)),
                },
                None => match self.kv.create(key.as_str(), manifest.to_bytes()).await {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(StateError::nats("creating", &key, e)),
                },
            };
            match written {
                Ok(true) => return Ok(manifest),
                // Someone else wrote in between: read again and apply the change again.
                Ok(false) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// The checkpoint of a collection (or of one of its ranges); `None` before its
    /// first acknowledged batch.
    pub async fn checkpoint(&self, collection: &str) -> Result<Option<Checkpoint>, StateError> {
        let key = self.names.checkpoint_key(&self.run, collection);
        match self.kv.get(key.as_str()).await {
            Ok(Some(bytes)) => Checkpoint::from_bytes(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { key, source }),
            Ok(None) => Ok(None),
            Err(err) => Err(StateError::nats("reading", &key, err)),
        }
    }

    /// Saves the checkpoint of a collection (or of one of its ranges).
    pub async fn save_checkpoint(
        &self,
        collection: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), StateError> {
        let key = self.names.checkpoint_key(&self.run, collection);
        self.kv
            .put(key.as_str(), checkpoint.to_bytes())
            .await
            .map(|_| ())
            .map_err(|e| StateError::nats("writing", &key, e))
    }

    /// The run's start position in the change stream, if one was recorded.
    pub async fn start(&self) -> Result<Option<StartPosition>, StateError> {
        self.read_json(self.names.start_key(&self.run)).await
    }

    /// Records `start` unless a start position is recorded already; returns the one
    /// that holds. Two producers racing get the same answer.
    pub async fn record_start(&self, start: &StartPosition) -> Result<StartPosition, StateError> {
        let key = self.names.start_key(&self.run);
        match self.kv.create(key.as_str(), start.to_bytes()).await {
            Ok(_) => Ok(start.clone()),
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                match self.start().await? {
                    Some(existing) => Ok(existing),
                    None => Err(StateError::nats("reading", &key, e)),
                }
            }
            Err(e) => Err(StateError::nats("creating", &key, e)),
        }
    }

    /// The mapping the run's consumers land with, if one was recorded.
    pub async fn mapping(&self) -> Result<Option<RunMapping>, StateError> {
        self.read_json(self.names.mapping_key(&self.run)).await
    }

    /// Records `mapping` as the run's unless one is; returns the one that holds.
    pub async fn record_mapping(&self, mapping: &RunMapping) -> Result<RunMapping, StateError> {
        let key = self.names.mapping_key(&self.run);
        let bytes: bytes::Bytes = serde_json::to_vec(mapping).unwrap_or_default().into();
        match self.kv.create(key.as_str(), bytes).await {
            Ok(_) => Ok(mapping.clone()),
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                match self.mapping().await? {
                    Some(existing) => Ok(existing),
                    None => Err(StateError::nats("reading", &key, e)),
                }
            }
            Err(e) => Err(StateError::nats("creating", &key, e)),
        }
    }

    /// Makes `mapping` the run's (`mongo2pg replay --mapping` with a fixed one).
    pub async fn replace_mapping(&self, mapping: &RunMapping) -> Result<(), StateError> {
        let key = self.names.mapping_key(&self.run);
        let bytes: bytes::Bytes = serde_json::to_vec(mapping).unwrap_or_default().into();
        self.kv
            .put(key.as_str(), bytes)
            .await
            .map_err(|e| StateError::nats("writing", &key, e))?;
        Ok(())
    }

    /// A collection's range plan, if one was recorded.
    pub async fn plan(&self, collection: &str) -> Result<Option<RangePlan>, StateError> {
        self.read_json(self.names.plan_key(&self.run, collection))
            .await
    }

    /// Records `plan` unless the collection has one; returns the one that holds.
    pub async fn record_plan(
        &self,
        collection: &str,
        plan: &RangePlan,
    ) -> Result<RangePlan, StateError> {
        let key = self.names.plan_key(&self.run, collection);
        let bytes: bytes::Bytes = serde_json::to_vec(plan).unwrap_or_default().into();
        match self.kv.create(key.as_str(), bytes).await {
            Ok(_) => Ok(plan.clone()),
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                match self.plan(collection).await? {
                    Some(existing) => Ok(existing),
                    None => Err(StateError::nats("reading", &key, e)),
                }
            }
            Err(e) => Err(StateError::nats("creating", &key, e)),
        }
    }

    /// Takes the lease on range `index` of `collection` for `holder`, when nobody
    /// holds it, its holder released it, `holder` holds it already, or this process
    /// has seen it unrenewed for `ttl` (see [`RunState::unrenewed_for`]). Returns the
    /// lease's revision (to renew it with), or `None` when another producer holds it.
    pub async fn claim_range(
        &self,
        collection: &str,
        index: usize,
        lease: &RangeLease,
        ttl: Duration,
    ) -> Result<Option<u64>, StateError> {
        use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
        let key = self.names.lease_key(&self.run, collection, index);
        let bytes: bytes::Bytes = serde_json::to_vec(lease).unwrap_or_default().into();
        let entry = self
            .kv
            .entry(key.as_str())
            .await
            .map_err(|e| StateError::nats("reading", &key, e))?;
        let Some(entry) = entry else {
            return match self.kv.create(key.as_str(), bytes).await {
                Ok(revision) => Ok(Some(revision)),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(StateError::nats("creating", &key, e)),
            };
        };
        if entry.operation == Operation::Put {
            let held: Option<RangeLease> = serde_json::from_slice(&entry.value).ok();
            if let Some(held) = held {
                let released = held.expires_ms == 0;
                if held.holder != lease.holder
                    && !released
                    && !self.unrenewed_for(&key, entry.revision, ttl)
                {
                    return Ok(None);
                }
            }
        }
        match self.kv.update(key.as_str(), bytes, entry.revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(StateError::nats("updating", &key, e)),
        }
    }

    /// Renews a lease taken at `revision`; `None` when it was taken over meanwhile.
    pub async fn renew_range(
        &self,
        collection: &str,
        index: usize,
        lease: &RangeLease,
        revision: u64,
    ) -> Result<Option<u64>, StateError> {
        use async_nats::jetstream::kv::UpdateErrorKind;
        let key = self.names.lease_key(&self.run, collection, index);
        let bytes: bytes::Bytes = serde_json::to_vec(lease).unwrap_or_default().into();
        match self.kv.update(key.as_str(), bytes, revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(StateError::nats("renewing", &key, e)),
        }
    }

    /// The lease on range `index` of `collection`, if any.
    pub async fn range_lease(
        &self,
        collection: &str,
        index: usize,
    ) -> Result<Option<RangeLease>, StateError> {
        self.read_json(self.names.lease_key(&self.run, collection, index))
            .await
    }

    /// The producer's checkpoint in the change stream.
    pub async fn stream_checkpoint(&self) -> Result<Option<StreamCheckpoint>, StateError> {
        self.read_json(self.names.stream_checkpoint_key(&self.run))
            .await
    }

    /// Saves where the follower stands in the change stream.
    pub async fn save_stream_checkpoint(
        &self,
        checkpoint: &StreamCheckpoint,
    ) -> Result<(), StateError> {
        let key = self.names.stream_checkpoint_key(&self.run);
        self.kv
            .put(key.as_str(), checkpoint.to_bytes())
            .await
            .map(|_| ())
            .map_err(|e| StateError::nats("writing", &key, e))
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<T>, StateError> {
        match self.kv.get(key.as_str()).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { key, source }),
            Ok(None) => Ok(None),
            Err(err) => Err(StateError::nats("reading", &key, err)),
        }
    }

    /// Forgets what was published of `collections` (`--restart`): their checkpoints,
    /// and their entries in the manifest, which is marked incomplete. The run's other
    /// collections keep their totals.
    pub async fn forget(&self, collections: &[String]) -> Result<(), StateError> {
        for collection in collections {
            let mut keys = vec![self.names.checkpoint_key(&self.run, collection)];
            // A collection read in ranges: each range's checkpoint, and the plan.
            if let Some(plan) = self.plan(collection).await? {
                keys.extend((0..plan.ranges()).map(|i| {
                    self.names
                        .checkpoint_key(&self.run, &crate::naming::range_part(collection, i))
                }));
                keys.extend(
                    (0..plan.ranges()).map(|i| self.names.lease_key(&self.run, collection, i)),
                );
                keys.push(self.names.plan_key(&self.run, collection));
            }
            for key in keys {
                self.kv
                    .purge(key.as_str())
                    .await
                    .map_err(|e| StateError::nats("purging", &key, e))?;
            }
        }
        self.update_manifest(|manifest| {
            for collection in collections {
                manifest.collections.remove(collection);
            }
            manifest.complete = false;
        })
        .await?;
        Ok(())
    }
}
