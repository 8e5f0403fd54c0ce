//! Change events (`producer run --follow`): what makes a change batch land through
//! [`crate::landing::land`] like any other, with its `Claim::Changes`.
//!
//! Change batches land in any order, on any number of consumers, and a batch may
//! arrive twice (a redelivery, or a producer that restarted and cut its batches
//! otherwise). What keeps the target equal to MongoDB is one rule: **a change lands
//! only over an older version of its document**. The versions table
//! ([`VERSIONS_TABLE`]) holds, per target table and `_id`, the newest version landed
//! and whether it was a delete (a tombstone). Before the transaction, [`map`] keeps, per
//! `_id`, the newest change of the batch and maps it (a delete has no row). The
//! transaction, [`land`]'s:
//!
//! 1. claims the batch in the ledger (`kind = 'changes'`); a batch already there is a
//!    duplicate;
//! 2. **arbitrates** ([`settle`]): `INSERT … ON CONFLICT DO UPDATE … WHERE version < excluded.version
//!    RETURNING` into the versions table, in `_id` order. The row lock this takes is
//!    held to commit, so two transactions touching one `_id` go one after the other,
//!    and the second sees the first's version. What the statement returns are the
//!    changes that win; the others are older than what landed and are dropped;
//! 3. deletes the winners' rows, child rows and rejects, then copies the rows of the
//!    winners that are not deletes (refused rows become rejects with their operation);
//!    where the table allows it ([`crate::upsert`]), the winners that have a row
//!    replace the old one in place by one upsert instead, and only the others' rows
//!    are deleted;
//! 4. counts, commits.
//!
//! Snapshot rows are older than any change (the stream starts before the snapshot is
//! read), and the consumers land changes only once the snapshot has landed, so in the
//! ordinary flow a snapshot row never meets a change and has no entry in the versions
//! table. A snapshot batch landing late (requeued from the dead letters, or a replayed
//! reject) once changes have landed in its table goes through the same rule as version
//! zero, older than every change: a document that a change deleted
//! or landed is left to the change, and one no change touched yet is claimed, so that
//! a change racing it still wins ([`crate::versions`]).

use std::borrow::Cow;
use std::collections::HashMap;

use bson::{RawBsonRef, RawDocument};
use common::batch::{Change, ChangeOp};
use common::naming::{bookkeeping_table, VERSIONS_TABLE};
use tracing::Instrument;

use crate::cell::Cell;
use crate::delete::{delete_documents, delete_rejects};
use crate::mapped::{Mapped, Slot};
use crate::mapping::{RejectKind, RowError, TablePlan};
use crate::pg::{Doing, PgError};
use crate::reject::{Origin, Reject};
use crate::session::Tx;
use crate::upsert::{self, Write};

/// One change event of a batch: what happened and the document after it (`{_id}`
/// alone for a delete).
#[derive(Debug, Clone)]
pub struct ChangeDoc<'a> {
    /// The operation and its version.
    pub change: Change,
    /// The document after the change.
    pub bytes: Cow<'a, [u8]>,
}

/// The newest change of one document in a batch, ready to be arbitrated.
#[derive(Debug, Clone)]
pub struct Keyed {
    /// The `_id` as the bytes of `{_id: …}`: exact, whatever its BSON type.
    key: Vec<u8>,
    change: Change,
    /// The `_id` as text, as the rejects table keeps it.
    id_text: Option<String>,
    /// The key column's value, when the `_id` converts to it.
    key_cell: Option<Cell>,
    /// Its row or reject in the batch's [`Mapped`]; `None` for a delete.
    slot: Option<Slot>,
}

/// The newest change per `_id` of a batch, in `_id` order, each mapped (a delete has
/// no row); documents without a readable `_id` are rejects, first in the batch.
pub fn map<'a>(plan: &TablePlan, docs: &[ChangeDoc<'a>]) -> (Mapped<'a>, Vec<Keyed>) {
    let mut batch = Mapped::default();
    let mut newest: HashMap<Vec<u8>, (Keyed, &ChangeDoc<'a>)> = HashMap::new();
    for doc in docs {
        match keyed(plan, doc) {
            Ok(keyed) => {
                let newer = newest
                    .get(&keyed.key)
                    .is_none_or(|(held, _)| held.change.version < keyed.change.version);
                if newer {
                    newest.insert(keyed.key.clone(), (keyed, doc));
                }
            }
            Err(error) => {
                let mut reject = Reject::new(plan, &doc.bytes, error);
                reject.operation = Some(doc.change.op.as_str());
                batch.rejects.push(reject);
            }
        }
    }
    let mut changes: Vec<(Keyed, &ChangeDoc<'a>)> = newest.into_values().collect();
    // One order for every writer: two transactions lock their common `_id`s in the
    // same order and cannot deadlock on them.
    changes.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let keyed = changes
        .into_iter()
        .map(|(mut keyed, doc)| {
            if doc.change.op != ChangeOp::Delete {
                keyed.slot = Some(batch.push(plan, doc.bytes.clone(), Some(doc.change.op)));
            }
            keyed
        })
        .collect();
    (batch, keyed)
}

/// What of a batch lands once it is claimed.
#[derive(Debug)]
pub(crate) struct Settled<'a> {
    /// The part of the batch that lands; `None`: all of it.
    pub(crate) kept: Option<Mapped<'a>>,
    /// How many of its documents were behind what had landed, left out.
    pub(crate) behind: usize,
    /// How its rows are written.
    pub(crate) write: Write,
}

/// Inside the transaction, after the claim: arbitrates the changes, deletes what the
/// target holds of the winners (all of it, or with [`Write::Upsert`] only the rows of
/// winners that have no row now, the deletes and the rejects), and returns the part of
/// `batch` that lands (the winners' rows and rejects, and the unreadable documents;
/// `None` when every change won, the common case) with how many of the batch's `events`
/// were older than what had landed or than a later change of the same batch.
/// `careful`: the batch is being landed again after PostgreSQL refused a row, and is
/// written by delete and COPY whatever the table.
pub(crate) async fn settle<'a>(
    tx: &Tx<'_>,
    plan: &TablePlan,
    origin: &Origin<'_>,
    events: usize,
    changes: &[Keyed],
    batch: &Mapped<'a>,
    careful: bool,
) -> Result<Settled<'a>, PgError> {
    let winners = arbitrate(tx, plan, changes)
        .instrument(tracing::info_span!("arbitrate", changes = changes.len()))
        .await?;
    let upsert = !careful
        && upsert::plan_fits(plan)
        && winners.iter().any(|w| matches!(w.slot, Some(Slot::Row(_))))
        && winners.iter().all(|w| w.key_cell.is_some())
        && upsert::table_fits(tx, plan).await?;
    let write = if upsert { Write::Upsert } else { Write::Copy };
    remove(tx, plan, origin, &winners, write).await?;
    let mapped_rejects = changes
        .iter()
        .filter(|c| matches!(c.slot, Some(Slot::Reject(_))))
        .count();
    let unreadable = batch.rejects.len() - mapped_rejects;
    let behind = events - unreadable - winners.len();
    if winners.len() == changes.len() {
        return Ok(Settled {
            kept: None,
            behind,
            write,
        });
    }
    let mut kept = Mapped {
        rejects: batch.rejects[..unreadable].to_vec(),
        ..Mapped::default()
    };
    for winner in &winners {
        match winner.slot {
            Some(Slot::Row(i)) => {
                kept.rows.push(batch.rows[i].clone());
                kept.sources.push(batch.sources[i].clone());
                kept.operations.push(batch.operations[i]);
            }
            Some(Slot::Reject(i)) => kept.rejects.push(batch.rejects[i].clone()),
            None => {}
        }
    }
    Ok(Settled {
        kept: Some(kept),
        behind,
        write,
    })
}

/// The `_id` of a change's document, in the forms the transaction needs.
fn keyed(plan: &TablePlan, doc: &ChangeDoc<'_>) -> Result<Keyed, RowError> {
    let unreadable = |reason: String| RowError {
        field: "_id".to_string(),
        expected: None,
        found: "unreadable".to_string(),
        reason,
        excerpt: None,
        kind: RejectKind::Unreadable,
    };
    let raw = RawDocument::from_bytes(&doc.bytes).map_err(|e| unreadable(e.to_string()))?;
    let id: RawBsonRef<'_> = raw
        .get("_id")
        .map_err(|e| unreadable(e.to_string()))?
        .ok_or_else(|| unreadable("the document has no _id".to_string()))?;
    let mut key = bson::RawDocumentBuf::new();
    key.append(bson::cstr!("_id"), id);
    let id_text = match Cell::id_text(Some(id)) {
        Ok(Cell::Text(text)) => Some(text),
        _ => None,
    };
    Ok(Keyed {
        key: key.into_bytes(),
        change: doc.change,
        id_text,
        key_cell: plan.key_cell(id),
        slot: None,
    })
}

/// The changes newer than what the target holds of their document, their versions
/// recorded; the others are left out.
async fn arbitrate<'c>(
    tx: &Tx<'_>,
    plan: &TablePlan,
    changes: &'c [Keyed],
) -> Result<Vec<&'c Keyed>, PgError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&[u8]> = changes.iter().map(|c| c.key.as_slice()).collect();
    let versions: Vec<Vec<u8>> = changes
        .iter()
        .map(|c| c.change.version.to_bytes().to_vec())
        .collect();
    let deleted: Vec<bool> = changes
        .iter()
        .map(|c| c.change.op == ChangeOp::Delete)
        .collect();
    let won = tx
        .query(
            &format!(
                "INSERT INTO {v} AS held (target_table, doc_key, version, deleted)
                 SELECT $1, k, ver, d FROM unnest($2::bytea[], $3::bytea[], $4::bool[]) AS u(k, ver, d)
                 ORDER BY k
                 ON CONFLICT (target_table, doc_key) DO UPDATE
                   SET version = excluded.version, deleted = excluded.deleted
                   WHERE held.version < excluded.version
                 RETURNING doc_key",
                v = bookkeeping_table(VERSIONS_TABLE)
            ),
            &[&plan.table, &keys, &versions, &deleted],
        )
        .await
        .doing("comparing the changes with the versions landed")?;
    let mut won_keys = Vec::with_capacity(won.len());
    for row in won {
        let key: Vec<u8> = row.try_get(0).doing("reading the versions that won")?;
        won_keys.push(key);
    }
    won_keys.sort();
    Ok(changes
        .iter()
        .filter(|c| won_keys.binary_search(&c.key).is_ok())
        .collect())
}

/// Deletes what the target holds of the winners: rows and child rows (with
/// [`Write::Upsert`], only of the winners that will have no row), rejects.
async fn remove(
    tx: &Tx<'_>,
    plan: &TablePlan,
    origin: &Origin<'_>,
    winners: &[&Keyed],
    write: Write,
) -> Result<(), PgError> {
    if winners.is_empty() {
        return Ok(());
    }
    let keys: Vec<&Cell> = winners
        .iter()
        .filter(|c| write == Write::Copy || !matches!(c.slot, Some(Slot::Row(_))))
        .filter_map(|c| c.key_cell.as_ref())
        .collect();
    let ids: Vec<&str> = winners
        .iter()
        .filter_map(|c| c.id_text.as_deref())
        .collect();
    if keys.is_empty() {
        // Every winner replaces its row in place: only rejects to delete.
        return delete_rejects(tx, origin.collection, &ids).await;
    }
    delete_documents(tx, plan, origin.collection, &keys, &ids).await
}
