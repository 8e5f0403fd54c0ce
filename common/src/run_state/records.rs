//! The records a run keeps in the key-value bucket, as they are serialized there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The collections of a run and what was published of each.
///
/// `complete` is set only once every collection's last batch is acknowledged by the
/// stream: until then the totals are a floor, and consumers waiting for the end keep
/// waiting, across a producer crash and its rerun.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    /// The run's collections and their totals.
    pub collections: BTreeMap<String, CollectionTotals>,
    /// Every collection is published completely.
    pub complete: bool,
    /// Where the run reads from, so that a run name reused on another database is
    /// refused instead of resumed (absent in manifests of older versions).
    #[serde(default)]
    pub source: Option<RunSource>,
    /// The run follows the change stream after its snapshot (`producer run --follow`).
    #[serde(default)]
    pub follow: bool,
    /// The last `mongo2pg cutover` that said go: from then on the producer may be
    /// stopped, and `status` no longer counts its absence as lag.
    #[serde(default)]
    pub cut_over: Option<CutOver>,
    /// The run was started without `--collection`: it stands for the whole database,
    /// so a collection created after its start is one it lacks.
    #[serde(default)]
    pub all_collections: bool,
    /// For a run of the whole database, the patterns choosing its collections
    /// (`--include`, `--exclude`): a collection created later counts as lacking only
    /// when they choose it.
    #[serde(default)]
    pub selection: Option<SelectionPatterns>,
    /// The database's collections the run left out, each with why.
    #[serde(default)]
    pub left_out: BTreeMap<String, String>,
    /// The collections the producer read through the mapping's filter, with the
    /// filter as relaxed Extended JSON: consumers with a filter the producer did not
    /// apply are refused.
    #[serde(default)]
    pub filters: BTreeMap<String, String>,
    /// The run follows its whole database: a collection created after it started is
    /// followed when its patterns choose it (so it is never one the run lacks).
    #[serde(default)]
    pub follows_database: bool,
    /// Collections of the run dropped in MongoDB while it followed, with when: their
    /// tables keep the rows they had.
    #[serde(default)]
    pub dropped: BTreeMap<String, String>,
    /// The last producer's `--max-read-rate`, in words (per producer process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_limit: Option<String>,
}

/// The patterns choosing a run's collections, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionPatterns {
    /// A collection is taken when one of these matches its `database.collection`
    /// name whole (every collection when there is none).
    #[serde(default)]
    pub include: Vec<String>,
    /// A collection is left out when one of these matches its name whole.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl SelectionPatterns {
    /// The patterns as the flags that give them (`--include 'a' --exclude 'b'`).
    pub fn shown(&self) -> String {
        let include = self.include.iter().map(|p| format!("--include '{p}'"));
        let exclude = self.exclude.iter().map(|p| format!("--exclude '{p}'"));
        include.chain(exclude).collect::<Vec<_>>().join(" ")
    }
}

/// When a followed run was cut over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutOver {
    /// Wall-clock time of the verdict, milliseconds since 1970.
    pub at_ms: u64,
    /// MongoDB's cluster time the verdict covers: every change up to it is landed.
    pub cluster_time: ClusterTime,
}

/// The mapping a run's consumers land with: recorded by the first consumer, so that a
/// consumer started with another one (or none) is refused instead of splitting a
/// collection over two tables, and so that `replay` and `verify` use it by themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMapping {
    /// BLAKE3 of the file's bytes, 16 hex digits; of nothing for the default tables.
    pub hash: String,
    /// Where it was read from, for messages: a path, or "no mapping (default tables)".
    pub source: String,
    /// The file's text (empty for the default tables).
    pub text: String,
    /// Whether the text is YAML (else TOML).
    pub yaml: bool,
}

impl RunMapping {
    /// The mapping of a file's `text` read from `source`.
    pub fn new(source: &str, text: &str, yaml: bool) -> Self {
        RunMapping {
            hash: blake3::hash(text.as_bytes()).to_hex()[..16].to_string(),
            source: source.to_string(),
            text: text.to_string(),
            yaml,
        }
    }

    /// No mapping file: every collection in its default table.
    pub fn default_tables() -> Self {
        RunMapping::new("no mapping (default tables)", "", false)
    }

    /// How a message names it.
    pub fn describe(&self) -> String {
        format!("{} [{}]", self.source, self.hash)
    }
}

/// A cluster time: seconds and the operation's ordinal within them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClusterTime {
    /// Seconds since the Unix epoch.
    pub time: u32,
    /// The operation's ordinal within that second.
    pub increment: u32,
}

impl ClusterTime {
    /// The cluster time just before this one: the newest an operation before it can
    /// have. A change stream's start position is one past the last operation it leaves
    /// out, a time the server may not have reached yet (and refuses to read after).
    pub fn just_before(self) -> ClusterTime {
        match self.increment {
            0 => ClusterTime {
                time: self.time.saturating_sub(1),
                increment: u32::MAX,
            },
            increment => ClusterTime {
                time: self.time,
                increment: increment - 1,
            },
        }
    }
}

/// Where a followed run's change stream starts: taken once, before the first snapshot
/// batch, and never again (a rerun resumes from it or from the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartPosition {
    /// The change stream's resume token, as Extended JSON.
    pub resume_token: serde_json::Value,
    /// The cluster time of the token: every change after it is streamed.
    pub cluster_time: ClusterTime,
    /// The pipeline the stream was opened with, as Extended JSON: a rerun must stream
    /// exactly what the start position was taken for.
    pub pipeline: serde_json::Value,
}

/// Where the producer stands in the change stream: saved once the stream has
/// acknowledged every batch before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamCheckpoint {
    /// Resume after this token.
    pub resume_token: serde_json::Value,
    /// How far MongoDB's history has been read: every change up to this cluster time is
    /// published (the token's time; it moves on while the source is idle too).
    pub read_until: ClusterTime,
    /// The version of the last event published, so that events of a transaction cut
    /// by a restart keep their ordinals.
    pub last: Option<crate::batch::Version>,
    /// Change events and batches published, over the run.
    pub events: u64,
    /// Change batches published, over the run.
    pub batches: u64,
    /// When this was saved, milliseconds since the Unix epoch.
    pub saved_at_ms: u64,
}

/// The MongoDB database a run reads, as the producer was told it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSource {
    /// The database name.
    pub database: String,
    /// The connection string without its credentials.
    pub uri: String,
}

/// What the producer published of one collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionTotals {
    /// Documents published.
    pub documents: u64,
    /// Batches published.
    pub batches: u64,
    /// Bytes of documents published.
    pub bytes: u64,
    /// Documents MongoDB estimated at the start, for progress and `status`.
    pub estimated: u64,
    /// Every batch of the collection is acknowledged by the stream.
    pub complete: bool,
}

/// Where the producer stands in one collection, saved after each acknowledged batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last `_id` published, as canonical Extended JSON (keeps its BSON type; for
    /// people and older versions: JSON reorders a subdocument's keys).
    pub last_id: Option<serde_json::Value>,
    /// The same `_id` exactly, as the hex of the BSON document `{_id: …}`; what a
    /// resumed producer reads when present.
    #[serde(default)]
    pub last_id_bson: Option<String>,
    /// Batches published so far: the next batch's sequence number.
    pub batches: u64,
    /// Documents published so far.
    pub documents: u64,
    /// Bytes of documents published so far.
    pub bytes: u64,
    /// The collection (or range) is published completely.
    pub complete: bool,
}

impl RunManifest {
    /// The run's collections still in MongoDB (not dropped while followed).
    pub fn present(&self) -> Vec<String> {
        self.collections
            .keys()
            .filter(|name| !self.dropped.contains_key(*name))
            .cloned()
            .collect()
    }

    /// As stored in the bucket (JSON).
    pub fn to_bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    /// # Errors
    /// When the stored value is not a manifest (written by another version, say).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl Checkpoint {
    /// As stored in the bucket (JSON).
    pub fn to_bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    /// # Errors
    /// When the stored value is not a checkpoint.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// How a collection is split into `_id` ranges read at once (`--readers`): the
/// boundaries between consecutive ranges, in `_id` order, each as the hex of the BSON
/// document `{_id: boundary}` (JSON would reorder the keys of a subdocument `_id`, and
/// with them its place in the order). Range `i`
/// holds the `_id`s from boundary `i - 1` (included) to boundary `i` (excluded); the
/// first starts at the collection's start, the last runs to its end. Written once per
/// run, so every producer and every rerun reads the same ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangePlan {
    /// The boundaries, hex of `{_id: boundary}`, in `_id` order.
    pub boundaries: Vec<String>,
    /// How the boundaries were found (`splitVector`, `$sample`, `arithmetic`).
    #[serde(default)]
    pub method: String,
}

impl RangePlan {
    /// How many ranges the plan has.
    pub fn ranges(&self) -> usize {
        self.boundaries.len() + 1
    }
}

/// A producer's claim on one range: held until `expires_ms` (milliseconds since the
/// Unix epoch) unless renewed. A producer killed stops renewing, and another takes the
/// range over once the lease has expired, resuming from the range's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeLease {
    /// The producer holding it (host, process and a random suffix).
    pub holder: String,
    /// Until when by the holder's clock, for display; takeover never compares clocks.
    pub expires_ms: u64,
}

impl StartPosition {
    /// As stored in the bucket (JSON).
    pub fn to_bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }
}

impl StreamCheckpoint {
    /// As stored in the bucket (JSON).
    pub fn to_bytes(&self) -> bytes::Bytes {
        serde_json::to_vec(self).unwrap_or_default().into()
    }
}
