//! Landing a batch of change events (`producer run --follow`) in one transaction.
//!
//! Change batches land in any order, on any number of consumers, and a batch may
//! arrive twice (a redelivery, or a producer that restarted and cut its batches
//! otherwise). What keeps the target equal to MongoDB is one rule: **a change lands
//! only over an older version of its document**. The versions table
//! ([`VERSIONS_TABLE`]) holds, per target table and `_id`, the newest version landed
//! and whether it was a delete (a tombstone). The transaction:
//!
//! 1. claims the batch in the ledger (`kind = 'changes'`); a batch already there is a
//!    duplicate;
//! 2. keeps, per `_id`, the newest change of the batch;
//! 3. **arbitrates**: `INSERT … ON CONFLICT DO UPDATE … WHERE version < excluded.version
//!    RETURNING` into the versions table, in `_id` order. The row lock this takes is
//!    held to commit, so two transactions touching one `_id` go one after the other,
//!    and the second sees the first's version. What the statement returns are the
//!    changes that win; the others are older than what landed and are dropped;
//! 4. deletes the winners' rows, child rows and rejects, then copies the rows of the
//!    winners that are not deletes (refused rows become rejects with their operation);
//! 5. counts, commits.
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
use common::naming::{LEDGER_TABLE, VERSIONS_TABLE};
use tokio_postgres::{Client, Transaction};
use tracing::Instrument;

use crate::cell::Cell;
use crate::copy::{copy_accounted, copy_isolating, Isolated};
use crate::identifier::quote;
use crate::landing::{delete_documents, Landed};
use crate::mapping::{Row, RowError, TablePlan};
use crate::pg::{self, Doing, PgError};
use crate::reject::{self, Origin, Reject};

/// One change event of a batch: what happened and the document after it (`{_id}`
/// alone for a delete).
#[derive(Debug, Clone)]
pub struct ChangeDoc<'a> {
    pub change: Change,
    pub bytes: Cow<'a, [u8]>,
}

/// A change that can be arbitrated: its document's `_id` is readable.
struct Keyed<'b, 'a> {
    doc: &'b ChangeDoc<'a>,
    /// The `_id` as the bytes of `{_id: …}`: exact, whatever its BSON type.
    key: Vec<u8>,
    /// The `_id` as text, as the rejects table keeps it.
    id_text: Option<String>,
    /// The key column's value, when the `_id` converts to it.
    key_cell: Option<Cell>,
}

/// Lands a batch of change events once, letting each change win only over older
/// versions of its document.
///
/// # Errors
/// [`PgError`] when PostgreSQL fails the transaction; nothing of it is kept.
pub async fn apply(
    client: &mut Client,
    plan: &TablePlan,
    origin: &Origin<'_>,
    seq: u64,
    docs: &[ChangeDoc<'_>],
) -> Result<Landed, PgError> {
    let mut unreadable = Vec::new();
    let mut newest: HashMap<Vec<u8>, Keyed<'_, '_>> = HashMap::new();
    for doc in docs {
        match keyed(plan, doc) {
            Ok(keyed) => {
                let newer = newest
                    .get(&keyed.key)
                    .is_none_or(|held| held.doc.change.version < keyed.doc.change.version);
                if newer {
                    newest.insert(keyed.key.clone(), keyed);
                }
            }
            Err(error) => unreadable.push(with_operation(
                Reject::new(&doc.bytes, error),
                doc.change.op,
            )),
        }
    }
    let mut changes: Vec<Keyed<'_, '_>> = newest.into_values().collect();
    // One order for every writer: two transactions lock their common `_id`s in the
    // same order and cannot deadlock on them.
    changes.sort_by(|a, b| a.key.cmp(&b.key));

    let mut isolate = false;
    loop {
        let tx = client
            .transaction()
            .await
            .doing("beginning a transaction")?;
        if !claim(&tx, plan, origin, seq, docs.len()).await? {
            tx.rollback().await.doing("rolling back")?;
            return Ok(Landed::AlreadyClaimed);
        }
        let winners = arbitrate(&tx, plan, &changes)
            .instrument(tracing::info_span!("arbitrate", changes = changes.len()))
            .await?;
        remove(&tx, plan, origin, &winners).await?;

        let mut rows: Vec<Row> = Vec::new();
        let mut sources: Vec<&[u8]> = Vec::new();
        let mut rejects: Vec<Reject> = unreadable.clone();
        for change in winners
            .iter()
            .filter(|c| c.doc.change.op != ChangeOp::Delete)
        {
            match plan.row_from_bytes(&change.doc.bytes) {
                Ok(row) => {
                    rows.push(row);
                    sources.push(&change.doc.bytes);
                }
                Err(error) => rejects.push(with_operation(
                    Reject::new(&change.doc.bytes, error),
                    change.doc.change.op,
                )),
            }
        }
        let copied = if isolate {
            copy_isolating(&tx, plan, &rows, &sources).await
        } else {
            copy_accounted(&tx, plan, &rows, &sources)
                .instrument(tracing::info_span!("copy", table = %plan.table, rows = rows.len()))
                .await
        };
        let copied = match copied {
            Ok(copied) => copied,
            Err(err) if !isolate && pg::is_row_error(&err) => {
                tx.rollback().await.doing("rolling back")?;
                tracing::info!(batch = origin.batch_id, error = %pg::detail(&err),
                    "PostgreSQL refused a row of a change batch; applying it again, row by row where it must");
                isolate = true;
                continue;
            }
            Err(err) => {
                return Err(PgError::new(
                    format!("copying rows into {}", plan.table),
                    err,
                ))
            }
        };
        let operations: HashMap<&[u8], ChangeOp> = winners
            .iter()
            .map(|c| (c.doc.bytes.as_ref(), c.doc.change.op))
            .collect();
        let Isolated {
            written, refused, ..
        } = copied;
        rejects.extend(refused.into_iter().map(|r| {
            let op = operations
                .get(r.raw.as_slice())
                .copied()
                .unwrap_or(ChangeOp::Update);
            with_operation(r, op)
        }));
        let refs: Vec<&Reject> = rejects.iter().collect();
        reject::insert(&tx, origin, &refs)
            .await
            .doing("recording the rejects")?;
        tx.execute(
            &format!(
                "UPDATE {} SET rows_written = $2, rows_rejected = $3, rows_already = $4 WHERE batch_id = $1",
                quote(LEDGER_TABLE)
            ),
            &[
                &origin.batch_id,
                &count(written as usize),
                &count(rejects.len()),
                // Changes older than what had landed: applied already, or overtaken.
                &count(docs.len() - unreadable.len() - winners.len()),
            ],
        )
        .await
        .doing("counting the batch in the ledger")?;
        tx.commit()
            .instrument(tracing::info_span!("commit"))
            .await
            .doing("committing")?;
        return Ok(Landed::Committed {
            rows: written,
            rejects: rejects.len() as u64,
            already: (docs.len() - unreadable.len() - winners.len()) as u64,
        });
    }
}

fn with_operation(mut reject: Reject, op: ChangeOp) -> Reject {
    reject.operation = Some(op.as_str());
    reject
}

/// The `_id` of a change's document, in the forms the transaction needs.
fn keyed<'b, 'a>(plan: &TablePlan, doc: &'b ChangeDoc<'a>) -> Result<Keyed<'b, 'a>, RowError> {
    let unreadable = |reason: String| RowError {
        field: "_id".to_string(),
        expected: None,
        found: "unreadable".to_string(),
        reason,
        excerpt: None,
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
        doc,
        key: key.into_bytes(),
        id_text,
        key_cell: plan.key_cell(id),
    })
}

/// Claims the batch in the ledger; false when it is there already.
async fn claim(
    tx: &Transaction<'_>,
    plan: &TablePlan,
    origin: &Origin<'_>,
    seq: u64,
    events: usize,
) -> Result<bool, PgError> {
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {} (batch_id, run, collection, seq, target_table, rows_written, rows_rejected, kind, events)
                 VALUES ($1, $2, $3, $4, $5, 0, 0, 'changes', $6) ON CONFLICT (batch_id) DO NOTHING",
                quote(LEDGER_TABLE)
            ),
            &[
                &origin.batch_id,
                &origin.run,
                &origin.collection,
                &(seq as i64),
                &plan.table,
                &count(events),
            ],
        )
        .await
        .doing("claiming the change batch in the ledger")?;
    Ok(inserted == 1)
}

/// The changes newer than what the target holds of their document, their versions
/// recorded; the others are left out.
async fn arbitrate<'c, 'b, 'a>(
    tx: &Transaction<'_>,
    plan: &TablePlan,
    changes: &'c [Keyed<'b, 'a>],
) -> Result<Vec<&'c Keyed<'b, 'a>>, PgError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&[u8]> = changes.iter().map(|c| c.key.as_slice()).collect();
    let versions: Vec<Vec<u8>> = changes
        .iter()
        .map(|c| c.doc.change.version.to_bytes().to_vec())
        .collect();
    let deleted: Vec<bool> = changes
        .iter()
        .map(|c| c.doc.change.op == ChangeOp::Delete)
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
                v = quote(VERSIONS_TABLE)
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

/// Deletes what the target holds of the winners: rows, child rows, rejects.
async fn remove(
    tx: &Transaction<'_>,
    plan: &TablePlan,
    origin: &Origin<'_>,
    winners: &[&Keyed<'_, '_>],
) -> Result<(), PgError> {
    if winners.is_empty() {
        return Ok(());
    }
    let keys: Vec<&Cell> = winners.iter().filter_map(|c| c.key_cell.as_ref()).collect();
    let ids: Vec<&str> = winners
        .iter()
        .filter_map(|c| c.id_text.as_deref())
        .collect();
    delete_documents(tx, plan, origin.collection, &keys, &ids).await
}

/// A count for the ledger's `integer` columns.
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
