//! `mongo2pg replay`: landing a run's rejects again once the mapping is fixed.
//!
//! Rejects are read in chunks by id, up to the largest id present when the replay
//! starts (so rejects it writes back are not read again). Each chunk, per collection
//! and batch, lands through the one landing transaction with a [`Claim::Rejects`]:
//! the rejects leave the table, what now maps is copied (refused rows isolated), what
//! still cannot land is written back with its new reason, and the landed count moves
//! from rejected to written on the batch's ledger row, so `mongo2pg status` still adds
//! up. A crash at any point leaves each reject either landed or still in the rejects
//! table, never both, never neither. When another replay took some of a group first,
//! the group is read again and what is left of it landed.
//!
//! A reject of a collection with transformed columns keeps those fields out (see
//! [`landing::reject`]): its document is read again from MongoDB by `_id`, as it is
//! now. One gone from MongoDB since stays a reject, and is counted as one.

use std::borrow::Cow;
use std::collections::BTreeMap;

use common::broker::Broker;
use common::naming::{bookkeeping_table, REJECTS_TABLE};
use common::run_state::{RunMapping, RunState};
use landing::landing::{land, Claim, Landed};
use landing::ledger;
use landing::mapped::Mapped;
use landing::mapping::MappingFile;
use landing::pg::{self, Doing, PgError};
use landing::plans::Plans;
use landing::reject::Origin;
use landing::schema;
use landing::session::Session;
use tokio_postgres::Client;

use crate::config::ReplayConfig;
use crate::error::OperatorError;

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Rejects that landed and left the rejects table.
    pub landed: u64,
    /// Rejects that still cannot land, with their new reason.
    pub still_rejected: u64,
}

impl Replayed {
    /// 3 when some rejects still cannot land, else 0.
    pub fn exit_status(&self) -> crate::error::ExitStatus {
        if self.still_rejected > 0 {
            crate::error::ExitStatus::INCOMPLETE
        } else {
            crate::error::ExitStatus::SUCCESS
        }
    }
}

impl std::fmt::Display for Replayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replay: {} rejects landed, {} still rejected (their reasons are updated in {REJECTS_TABLE})",
            self.landed, self.still_rejected
        )
    }
}

/// Rejects read per round trip.
const CHUNK: i64 = 1000;

/// One reject as read back.
struct Stored {
    id: i64,
    raw: Vec<u8>,
    /// Fields were left out of `raw`: the document is read from MongoDB.
    withheld: bool,
}

/// The mapping to replay with: the fixed file, which becomes the run's (consumers
/// started later must have it), or the run's recorded mapping.
async fn mapping(
    config: &ReplayConfig,
    fixed: Option<(MappingFile, RunMapping)>,
) -> Result<MappingFile, OperatorError> {
    let state = async {
        let broker = Broker::open(&config.nats, config.nats.stream.clone()).await?;
        Ok::<_, OperatorError>(RunState::new(
            broker.state.clone(),
            broker.names.clone(),
            config.run.run.clone(),
        ))
    }
    .await;
    match fixed {
        Some((file, recorded)) => {
            match state {
                Ok(state) => state.replace_mapping(&recorded).await?,
                // The run's state is gone (cleaned up): nothing to keep in step.
                Err(err) => tracing::warn!(error = %err,
                    "the run's state on NATS is not there; its recorded mapping is not updated"),
            }
            Ok(file)
        }
        None => match state?.mapping().await? {
            Some(recorded) => {
                tracing::info!(mapping = %recorded.describe(), "replaying with the run's mapping");
                Ok(MappingFile::parse(&recorded)?)
            }
            // A run from before mappings were recorded.
            None => Ok(MappingFile::default()),
        },
    }
}

/// Lands the run's rejects with the mapping of `config`.
///
/// # Errors
/// [`OperatorError`] when PostgreSQL cannot be reached or fails, or the mapping is
/// invalid. Each batch's rejects land whole or not at all.
pub async fn replay(config: &ReplayConfig) -> Result<Replayed, OperatorError> {
    // A fixed mapping is checked before anything else.
    let fixed = match config.mapping.as_deref() {
        Some(path) => Some(MappingFile::load_recorded(Some(path))?),
        None => None,
    };
    let mut client = Session::new(pg::connect(&config.postgres.database_url).await?);
    schema::ensure_bookkeeping(&mut client).await?;
    let run = config.run.run.as_str();
    let collection = config.collection.as_deref();
    let filter = "run = $1 AND ($2::text IS NULL OR collection = $2)";
    let last: i64 = client
        .query_one(
            &format!(
                "SELECT coalesce(max(id), 0) FROM {} WHERE {filter}",
                bookkeeping_table(REJECTS_TABLE)
            ),
            &[&run, &collection],
        )
        .await
        .doing("reading the rejects")?
        .try_get(0)
        .doing("reading the rejects")?;
    if last == 0 && !ledger::has_run(&client, run, collection).await? {
        return Err(OperatorError::LandedNothing {
            run: run.to_string(),
            collection: collection.map(str::to_string),
        });
    }
    let mut mapping = mapping(config, fixed).await?;
    mapping.unlock("the run's mapping")?;
    // Connected only when a reject needs it: the source may be gone by now.
    let database = tokio::sync::OnceCell::new();
    let database = Source {
        args: &config.mongo,
        database: &database,
    };
    let mut after = 0_i64;
    let mut total = Replayed::default();
    let mut plans = Plans::default();
    loop {
        let rows = client
            .query(
                &format!(
                    "SELECT id, collection, batch_id, raw_bson, withheld IS NOT NULL FROM {} WHERE {filter} AND id > $3 AND id <= $4 ORDER BY id LIMIT {CHUNK}",
                    bookkeeping_table(REJECTS_TABLE)
                ),
                &[&run, &collection, &after, &last],
            )
            .await
            .doing("reading the rejects")?;
        let Some(tail) = rows.last() else { break };
        after = tail.try_get(0).doing("reading the rejects")?;
        let mut groups: BTreeMap<(String, String), Vec<Stored>> = BTreeMap::new();
        for row in rows {
            let key = (
                row.try_get(1).doing("reading the rejects")?,
                row.try_get(2).doing("reading the rejects")?,
            );
            groups.entry(key).or_default().push(Stored {
                id: row.try_get(0).doing("reading the rejects")?,
                raw: row.try_get(3).doing("reading the rejects")?,
                withheld: row.try_get(4).doing("reading the rejects")?,
            });
        }
        for ((collection, batch_id), stored) in groups {
            let (stored, gone) = reread_withheld(&database, &collection, stored).await?;
            total.still_rejected += gone;
            let origin = Origin {
                run,
                collection: &collection,
                batch_id: &batch_id,
            };
            let done = replay_group(&mut client, &mut plans, &mapping, &origin, stored).await?;
            total.landed += done.landed;
            total.still_rejected += done.still_rejected;
        }
    }
    Ok(total)
}

/// Lands one batch's rejects; when another replay took some of them first, lands
/// what is left of them.
async fn replay_group(
    client: &mut Session,
    plans: &mut Plans,
    mapping: &MappingFile,
    origin: &Origin<'_>,
    mut stored: Vec<Stored>,
) -> Result<Replayed, OperatorError> {
    while !stored.is_empty() {
        let plan = plans
            .for_documents(
                client,
                mapping,
                origin.run,
                origin.collection,
                stored.iter().map(|s| s.raw.as_slice()),
            )
            .await?;
        let ids: Vec<i64> = stored.iter().map(|s| s.id).collect();
        let batch = Mapped::map(plan, stored.iter().map(|s| Cow::Borrowed(&s.raw[..])));
        let landed = land(client, plan, origin, Claim::Rejects { ids: &ids }, &batch)
            .await
            .map_err(|e| {
                PgError::new(
                    format!(
                        "replaying rejects of batch {}: {}",
                        origin.batch_id, e.doing
                    ),
                    e.source,
                )
            })?;
        match landed {
            // A reject whose document another batch has landed since is resolved too.
            Landed::Committed {
                rows,
                rejects,
                already,
            } => {
                return Ok(Replayed {
                    landed: rows + already,
                    still_rejected: rejects.total(),
                })
            }
            Landed::AlreadyClaimed => {
                let raw: BTreeMap<i64, Vec<u8>> =
                    stored.into_iter().map(|s| (s.id, s.raw)).collect();
                // What was read from MongoDB is kept, not the stored bytes again.
                stored = still_stored(client, &ids)
                    .await?
                    .into_iter()
                    .filter_map(|s| {
                        raw.get(&s.id).map(|raw| Stored {
                            raw: raw.clone(),
                            withheld: false,
                            ..s
                        })
                    })
                    .collect();
            }
        }
    }
    Ok(Replayed::default())
}

/// Those of `ids` still in the rejects table.
async fn still_stored(client: &Client, ids: &[i64]) -> Result<Vec<Stored>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT id, raw_bson, withheld IS NOT NULL FROM {} WHERE id = ANY($1) ORDER BY id",
                bookkeeping_table(REJECTS_TABLE)
            ),
            &[&ids],
        )
        .await
        .doing("reading the rejects")?;
    rows.iter()
        .map(|row| {
            Ok(Stored {
                id: row.try_get(0)?,
                raw: row.try_get(1)?,
                withheld: row.try_get(2)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .doing("reading the rejects")
}

/// MongoDB, connected on first use.
struct Source<'a> {
    args: &'a source::MongoArgs,
    database: &'a tokio::sync::OnceCell<source::Source>,
}

/// The group with each withheld reject's document read again from MongoDB, and how
/// many are gone from it (they stay rejects).
async fn reread_withheld(
    source: &Source<'_>,
    collection: &str,
    stored: Vec<Stored>,
) -> Result<(Vec<Stored>, u64), OperatorError> {
    if !stored.iter().any(|s| s.withheld) {
        return Ok((stored, 0));
    }
    let database = source
        .database
        .get_or_try_init(|| source::connect(source.args))
        .await?;
    let documents = database.collection::<bson::RawDocumentBuf>(collection);
    let mut kept = Vec::with_capacity(stored.len());
    let mut gone = 0;
    for mut s in stored {
        if !s.withheld {
            kept.push(s);
            continue;
        }
        let id = bson::RawDocument::from_bytes(&s.raw)
            .ok()
            .and_then(|d| d.get("_id").ok().flatten())
            .and_then(|id| bson::Bson::try_from(id).ok());
        let found = match id {
            Some(id) => documents
                .find_one(bson::doc! { "_id": id })
                .await
                .map_err(|e| source::SourceError::read(format!("reading {collection}"), &e))?,
            None => None,
        };
        match found {
            Some(document) => {
                s.raw = document.into_bytes();
                s.withheld = false;
                kept.push(s);
            }
            None => gone += 1,
        }
    }
    Ok((kept, gone))
}
