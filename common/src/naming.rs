//! Every name the pipeline puts on a server, in one place: stream, subjects, durable
//! consumer, key-value and object-store buckets, and the bookkeeping tables.
//!
//! Everything hangs off one stream name (`--stream`), so separate deployments (and
//! parallel test runs) on one NATS server never see each other's messages.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The lease name of a run's follower: of several producers of a run (`--readers`
/// across processes), the one holding it streams the changes (`$` is in no collection
/// name). `status` and `cleanup` read it to say who follows.
pub const FOLLOWER: &str = "$follow";

/// One row per committed batch: what lands each batch exactly once.
pub const LEDGER_TABLE: &str = "_migrate_ledger";
/// One row per document that could not become a row, with its reason.
pub const REJECTS_TABLE: &str = "_migrate_rejects";
/// One row per message that can never land, with its reason and bytes.
pub const DEAD_LETTERS_TABLE: &str = "_migrate_dead_letters";
/// A dead letter's `withheld` when its message could not be read in a run with
/// transforms: no payload is kept, since what it holds cannot be told.
pub const WITHHELD_ALL: &str = "*";
/// The newest version landed of each document a change touched, deleted or not.
pub const VERSIONS_TABLE: &str = "_migrate_versions";
/// The registry of columns added for fields that appeared after the mapping was written.
pub const ADDED_COLUMNS_TABLE: &str = "_migrate_added_columns";
/// One row per target table whose primary key is built after the load (`consumer run
/// --key-after-load`): pending until the run's snapshot has landed, then built, with the
/// documents found landed twice.
pub const KEYS_TABLE: &str = "_migrate_keys";
/// One row per index and foreign key `mongo2pg finish` handled for a run, with its
/// state: what `status` shows of the phase after the load.
pub const FINISH_TABLE: &str = "_migrate_finish";

/// Where this process finds the bookkeeping tables: `--bookkeeping-schema`, or none
/// (the search path's first schema).
static BOOKKEEPING_SCHEMA: OnceLock<Option<String>> = OnceLock::new();

/// Sets the bookkeeping tables' schema for this process, once, at startup, from
/// `--bookkeeping-schema` (see [`crate::config::PostgresArgs`]); a later call changes
/// nothing. A process-wide setting rather than a value handed down: every statement
/// on the ledger, rejects, dead letters, versions and added columns reads it, in
/// three crates, and a process works for one target database.
pub fn set_bookkeeping_schema(schema: Option<String>) {
    let _ = BOOKKEEPING_SCHEMA.set(schema.filter(|s| !s.is_empty()));
}

/// The bookkeeping tables' schema, if one was set.
pub fn bookkeeping_schema() -> Option<&'static str> {
    BOOKKEEPING_SCHEMA.get().and_then(Option::as_deref)
}

/// A bookkeeping table (one of the `*_TABLE` names) as SQL names it: quoted, and in
/// the bookkeeping schema when one is set.
pub fn bookkeeping_table(table: &str) -> String {
    match bookkeeping_schema() {
        Some(schema) => format!("{}.{}", quote(schema), quote(table)),
        None => quote(table),
    }
}

/// Quotes an identifier for SQL: always, so any collection or field name is safe.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A run's name: one migration, resumable under this name. It becomes a subject token
/// and a key-value key, hence the narrow alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunName(String);

impl FromStr for RunName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(RunName(s.to_string()))
        } else {
            Err(format!(
                "run name {s:?} must be 1 to 64 letters, digits, '-' or '_'"
            ))
        }
    }
}

impl RunName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stream name JetStream would refuse, said before anything is created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stream name {0:?} must be 1 to 32 letters, digits, '-' or '_'; fix --stream or NATS_STREAM"
)]
pub struct InvalidStreamName(pub String);

/// The names derived from one stream name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    stream: String,
}

impl Names {
    /// # Errors
    /// When `stream` is not a valid JetStream stream name.
    pub fn new(stream: &str) -> Result<Self, InvalidStreamName> {
        let ok = !stream.is_empty()
            && stream.len() <= 32
            && stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Names {
                stream: stream.to_string(),
            })
        } else {
            Err(InvalidStreamName(stream.to_string()))
        }
    }

    /// The work-queue stream that carries the batches.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Every batch subject of the stream.
    pub fn batch_subjects(&self) -> String {
        format!("{}.batch.>", self.stream)
    }

    /// The subject of one run's batches of one collection.
    pub fn batch_subject(&self, run: &RunName, collection: &str) -> String {
        format!("{}.batch.{run}.{}", self.stream, token(collection))
    }

    /// The subjects of one run: what its durable consumer filters on.
    pub fn run_subjects(&self, run: &RunName) -> String {
        format!("{}.batch.{run}.>", self.stream)
    }

    /// Every change subject of the stream.
    pub fn change_subjects(&self) -> String {
        format!("{}.change.>", self.stream)
    }

    /// The subject of one run's change batches of one collection.
    pub fn change_subject(&self, run: &RunName, collection: &str) -> String {
        format!("{}.change.{run}.{}", self.stream, token(collection))
    }

    /// The change subjects of one run: what its change consumer filters on.
    pub fn run_change_subjects(&self, run: &RunName) -> String {
        format!("{}.change.{run}.>", self.stream)
    }

    /// The durable pull consumer of a run's change batches, bound by the consumer
    /// processes once the run's snapshot has landed.
    pub fn change_consumer(&self, run: &RunName) -> String {
        format!("changes-{run}")
    }

    /// Key of a run's start position in the change stream, written once.
    pub fn start_key(&self, run: &RunName) -> String {
        format!("{run}.start")
    }

    /// Key of the producer's checkpoint in the change stream.
    pub fn stream_checkpoint_key(&self, run: &RunName) -> String {
        format!("{run}.stream")
    }

    /// The durable pull consumer every consumer process of a run binds.
    pub fn durable_consumer(&self, run: &RunName) -> String {
        format!("writers-{run}")
    }

    /// The stream where poison messages are kept, byte for byte, for inspection.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DLQ", self.stream)
    }

    /// The subject a run's dead-letter copies are published on.
    pub fn dead_letter_subject(&self, run: &RunName) -> String {
        format!("{}.dlq.{run}", self.stream)
    }

    /// Key-value bucket of run manifests and producer checkpoints.
    pub fn state_bucket(&self) -> String {
        format!("{}_state", self.stream)
    }

    /// Object-store bucket of documents too large for one message.
    pub fn blob_bucket(&self) -> String {
        format!("{}_blobs", self.stream)
    }

    /// The subjects of a run's keys in the state bucket's stream (`KV_<bucket>`): every
    /// key of a run starts with `<run>.`, so one filter purges them all.
    pub fn state_subjects(&self, run: &RunName) -> String {
        format!("$KV.{}.{run}.>", self.state_bucket())
    }

    /// The stream behind the state bucket.
    pub fn state_stream(&self) -> String {
        format!("KV_{}", self.state_bucket())
    }

    /// The stream behind the blob bucket.
    pub fn blob_stream(&self) -> String {
        format!("OBJ_{}", self.blob_bucket())
    }

    /// Key of a run's manifest (collections and their published totals).
    pub fn manifest_key(&self, run: &RunName) -> String {
        format!("{run}.manifest")
    }

    /// Key of the mapping a run's consumers land with.
    pub fn mapping_key(&self, run: &RunName) -> String {
        format!("{run}.mapping")
    }

    /// Key of a collection's range plan (`--readers`), written once per run.
    pub fn plan_key(&self, run: &RunName, collection: &str) -> String {
        format!("{run}.plan.{}", token(collection))
    }

    /// Key of the lease on one range of a collection, held by the producer reading it.
    pub fn lease_key(&self, run: &RunName, collection: &str, index: usize) -> String {
        format!("{run}.lease.{}.{index}", token(collection))
    }

    /// Key of the producer's checkpoint for one collection of a run.
    pub fn checkpoint_key(&self, run: &RunName, collection: &str) -> String {
        format!("{run}.checkpoint.{}", token(collection))
    }
}

/// The name one `_id` range of a collection is checkpointed under: the collection and
/// the range's index, joined by `$`, which no collection name holds.
pub fn range_part(collection: &str, index: usize) -> String {
    format!("{collection}${index}")
}

/// What every object-store name of a run starts with. Run names hold no '/', so one
/// run's prefix is never the start of another's.
pub fn blob_prefix(run: &str) -> String {
    format!("{run}/")
}

/// Escapes a collection name into one subject token that is also a valid key-value key:
/// letters, digits, '-' and '_' stay, every other byte becomes `=XX`. Distinct names
/// stay distinct.
pub fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_safe_and_distinct() {
        assert_eq!(token("users"), "users");
        assert_eq!(token("a.b c"), "a=2Eb=20c");
        assert_ne!(token("a.b"), token("a=2Eb"));
        assert_eq!(token("é"), "=C3=A9");
    }

    #[test]
    fn run_and_stream_names_are_validated() {
        assert!("nightly-2026_11".parse::<RunName>().is_ok());
        assert!("".parse::<RunName>().is_err());
        assert!("a.b".parse::<RunName>().is_err());
        assert!("a>".parse::<RunName>().is_err());
        assert!(Names::new("MIGRATE").is_ok());
        assert!(Names::new("MI GRATE").is_err());
    }

    #[test]
    fn subjects_nest_under_the_stream() {
        let names = Names::new("M").expect("valid");
        let run: RunName = "r1".parse().expect("valid");
        assert_eq!(names.batch_subject(&run, "a.b"), "M.batch.r1.a=2Eb");
        assert_eq!(names.run_subjects(&run), "M.batch.r1.>");
        assert_eq!(names.checkpoint_key(&run, "a.b"), "r1.checkpoint.a=2Eb");
        assert_eq!(names.change_subject(&run, "a.b"), "M.change.r1.a=2Eb");
        assert_eq!(names.run_change_subjects(&run), "M.change.r1.>");
    }
}
