//! The one transaction that lands mapped documents: a claim, their rows (binary COPY),
//! their rejects, commit. The writers, `mongo2pg replay` and `verify --repair` all land
//! through [`land`]; they differ only in their [`Claim`], the first statement of the
//! transaction, which is what makes each of them safe to run twice:
//!
//! | claim | first statement | a second try |
//! |---|---|---|
//! | [`Claim::Batch`] | insert the batch's ledger row | finds the key taken: a duplicate, nothing written |
//! | [`Claim::Changes`] | insert the change batch's ledger row, then arbitrate each change against the newest version landed ([`crate::changes`]) | finds the key taken: a duplicate, nothing written |
//! | [`Claim::Rejects`] | delete the rejects being landed | finds them gone: taken by another replay |
//! | [`Claim::Replace`] | delete the documents' rows and rejects | replaces them again, the same way |
//!
//! The ledger row is inserted first: a second writer holding the same batch (a
//! redelivery racing the original) blocks on that key until the first transaction
//! ends, then finds it taken. The common case costs one COPY (for a change batch on a
//! table that allows it, one upsert: [`crate::upsert`]) and no savepoint; only a batch
//! with a row PostgreSQL refuses is landed again with refused rows isolated, by delete
//! and COPY (see [`crate::copy`]).

use std::collections::{HashMap, HashSet};

use common::batch::ChangeOp;
use common::naming::{bookkeeping_table, LEDGER_TABLE, REJECTS_TABLE};
use tracing::Instrument;

use crate::cell::Cell;
use crate::changes::{ChangeDoc, Keyed, Settled};
use crate::copy::{already_landed, copy_accounted, copy_isolating, Isolated};
use crate::mapped::Mapped;
use crate::mapping::{Row, TablePlan};
use crate::pg::{self, Doing, PgError};
use crate::reject::{self, Origin, Reject, RejectCounts};
use crate::session::{Session, Tx};
use crate::upsert::{self, upsert_rows, Write};

/// What makes a landing safe to run twice; the first statement of its transaction.
#[derive(Debug, Clone, Copy)]
pub enum Claim<'a> {
    /// A batch from the stream, landed once: its ledger row (keyed by the batch id)
    /// is inserted first; a batch already in the ledger is a duplicate.
    Batch {
        /// The batch's sequence number in its collection.
        seq: u64,
    },
    /// A batch of change events from the stream: its ledger row (`kind = 'changes'`)
    /// first, as a batch's; then only the changes newer than what landed of their
    /// document land (see [`crate::changes`]). `changes` are the batch's newest change
    /// per `_id`, as [`crate::changes::map`] made them with the batch.
    Changes {
        /// The batch's sequence number.
        seq: u64,
        /// Change events in the batch.
        events: usize,
        /// The newest change per `_id`.
        changes: &'a [Keyed],
    },
    /// Rejects landed again by `mongo2pg replay`: they leave the rejects table, and
    /// what lands moves from rejected to written on the batch's ledger row. When
    /// another replay has taken any of them, nothing is written.
    Rejects {
        /// The rejects' ids in the rejects table.
        ids: &'a [i64],
    },
    /// Documents landed again by `verify --repair`: the rows and child rows with these
    /// keys, and the rejects of these `_id`s, are deleted first.
    Replace {
        /// The documents' key cells.
        keys: &'a [Cell],
        /// The documents' `_id`s as text, as the rejects table keeps them.
        doc_ids: &'a [&'a str],
    },
}

/// What a landing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landed {
    /// The transaction committed.
    Committed {
        /// Rows written.
        rows: u64,
        /// Documents kept as rejects, by kind.
        rejects: RejectCounts,
        /// Documents skipped because the table held their key already.
        already: u64,
    },
    /// The claim was taken already (the batch is in the ledger, or the rejects were
    /// landed by another replay): nothing was written.
    AlreadyClaimed,
}

/// Lands `batch` in one transaction: claim, COPY, rejects, commit. Its statements are
/// prepared once on `session`'s connection ([`crate::session`]).
///
/// # Errors
/// [`PgError`] when PostgreSQL fails the transaction; nothing of it is kept. Rows
/// PostgreSQL refuses are not errors: they become rejects.
pub async fn land(
    session: &mut Session,
    plan: &TablePlan,
    origin: &Origin<'_>,
    claim: Claim<'_>,
    batch: &Mapped<'_>,
) -> Result<Landed, PgError> {
    let Some(tx) = begin_claimed(session, plan, origin, claim, batch).await? else {
        return Ok(Landed::AlreadyClaimed);
    };
    let settled = settle(&tx, plan, origin, claim, batch, false).await?;
    let kept = settled.kept.as_ref().unwrap_or(batch);
    let rows = kept.rows.len();
    let written = match settled.write {
        Write::Copy => {
            copy_accounted(&tx, plan, &kept.rows, &kept.sources)
                .instrument(tracing::info_span!("copy", table = %plan.table, rows))
                .await
        }
        Write::Upsert => upsert_rows(&tx, plan, &kept.rows)
            .instrument(tracing::info_span!("upsert", table = %plan.table, rows))
            .await
            .map(|written| Isolated {
                written,
                ..Isolated::default()
            }),
    };
    match written {
        Ok(written) if settled.write == Write::Copy || written.written == rows as u64 => {
            return finish(tx, origin, claim, kept, written, settled.behind).await;
        }
        // An upsert writes every row it is sent; fewer means something the table's
        // check did not see (a trigger created since) skipped some: the careful path
        // accounts for each.
        Ok(written) => tracing::warn!(batch = origin.batch_id, sent = rows,
            written = written.written,
            "the upsert wrote fewer rows than it was sent; landing the batch again by delete and COPY"),
        // A row error of either write (and, of an upsert, two rows of one key).
        Err(err) if upsert::refused(&err) => {
            tracing::info!(batch = origin.batch_id, error = %pg::detail(&err),
                "PostgreSQL refused a row; landing the batch again, row by row where it must");
        }
        Err(err) => {
            return Err(PgError::new(
                format!("writing rows into {}", plan.table),
                err,
            ))
        }
    }
    tx.rollback().await.doing("rolling back")?;
    land_carefully(session, plan, origin, claim, batch).await
}

/// Lands a batch of change events once, letting each change win only over older
/// versions of its document: [`crate::changes::map`], then [`land`] with
/// [`Claim::Changes`].
///
/// # Errors
/// [`PgError`] when PostgreSQL fails the transaction; nothing of it is kept.
pub async fn land_changes(
    session: &mut Session,
    plan: &TablePlan,
    origin: &Origin<'_>,
    seq: u64,
    docs: &[ChangeDoc<'_>],
) -> Result<Landed, PgError> {
    let (batch, changes) = crate::changes::map(plan, docs);
    let claim = Claim::Changes {
        seq,
        events: docs.len(),
        changes: &changes,
    };
    land(session, plan, origin, claim, &batch).await
}

/// Tries of [`land_carefully`] while keys keep being taken by other writers.
const KEY_RACE_TRIES: usize = 3;

/// The slow path, for a batch PostgreSQL refused a row of. Documents whose key the
/// table holds already are skipped and counted as already landed: an earlier
/// publication of the run, cut into other batches (another `--batch-size`, a
/// `--restart`, a second producer), landed them. Each other row PostgreSQL refuses
/// stands alone in the rejects. A row refused for a taken key after that check was
/// landed by a concurrent writer meanwhile: the batch is tried again, and only on the
/// last try is such a row kept as a reject (it collides on another unique index).
async fn land_carefully(
    session: &mut Session,
    plan: &TablePlan,
    origin: &Origin<'_>,
    claim: Claim<'_>,
    batch: &Mapped<'_>,
) -> Result<Landed, PgError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let Some(tx) = begin_claimed(session, plan, origin, claim, batch).await? else {
            return Ok(Landed::AlreadyClaimed);
        };
        let settled = settle(&tx, plan, origin, claim, batch, true).await?;
        let behind = settled.behind;
        let batch = settled.kept.as_ref().unwrap_or(batch);
        let landed: HashSet<usize> = already_landed(&tx, plan, &batch.rows)
            .await
            .doing(&format!("finding documents {} holds already", plan.table))?
            .into_iter()
            .collect();
        let copied = if landed.is_empty() {
            copy_isolating(&tx, plan, &batch.rows, &batch.sources).await
        } else {
            let (rows, sources): (Vec<Row>, Vec<&[u8]>) = batch
                .rows
                .iter()
                .zip(&batch.sources)
                .enumerate()
                .filter(|(i, _)| !landed.contains(i))
                .map(|(_, (row, source))| (row.clone(), source.as_ref()))
                .unzip();
            copy_isolating(&tx, plan, &rows, &sources).await
        }
        .doing(&format!("copying rows into {}", plan.table))?;
        if copied.unique_violations > 0 && tries < KEY_RACE_TRIES {
            tx.rollback().await.doing("rolling back")?;
            continue;
        }
        if !landed.is_empty() {
            tracing::info!(
                batch = origin.batch_id,
                already = landed.len(),
                "documents of the batch were landed already by another batch of the run; skipped"
            );
        }
        return finish(tx, origin, claim, batch, copied, landed.len() + behind).await;
    }
}

/// What of the batch lands, once claimed, how many of its documents were behind what
/// had landed, and how its rows are written: a change batch keeps its changes newer
/// than what landed of their document ([`crate::changes::settle`]), upserted where the
/// table allows it unless `careful`; snapshot documents (a batch, or replayed rejects
/// of one) landing once changes have landed in their table keep only those no change
/// holds ([`crate::versions::behind_changes`]), copied.
async fn settle<'a>(
    tx: &Tx<'_>,
    plan: &TablePlan,
    origin: &Origin<'_>,
    claim: Claim<'_>,
    batch: &Mapped<'a>,
    careful: bool,
) -> Result<Settled<'a>, PgError> {
    let copied = |kept, behind| Settled {
        kept,
        behind,
        write: Write::Copy,
    };
    match claim {
        Claim::Changes {
            events, changes, ..
        } => crate::changes::settle(tx, plan, origin, events, changes, batch, careful).await,
        Claim::Batch { .. } | Claim::Rejects { .. } => Ok(
            match crate::versions::behind_changes(tx, plan, batch).await? {
                Some((kept, behind)) => copied(Some(kept), behind),
                None => copied(None, 0),
            },
        ),
        Claim::Replace { .. } => Ok(copied(None, 0)),
    }
}

/// Begins the transaction with its claim made; `None` (and nothing left open) when
/// the claim was taken already.
async fn begin_claimed<'c>(
    session: &'c mut Session,
    plan: &TablePlan,
    origin: &Origin<'_>,
    claim: Claim<'_>,
    batch: &Mapped<'_>,
) -> Result<Option<Tx<'c>>, PgError> {
    let tx = session.begin().await.doing("beginning a transaction")?;
    if claimed(&tx, plan, origin, claim, batch).await? {
        Ok(Some(tx))
    } else {
        tx.rollback().await.doing("rolling back")?;
        Ok(None)
    }
}

/// The claim's statements; false when the claim was taken already.
async fn claimed(
    tx: &Tx<'_>,
    plan: &TablePlan,
    origin: &Origin<'_>,
    claim: Claim<'_>,
    batch: &Mapped<'_>,
) -> Result<bool, PgError> {
    match claim {
        Claim::Batch { seq } => {
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO {} (batch_id, run, collection, seq, target_table, rows_written, rows_rejected)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (batch_id) DO NOTHING",
                        bookkeeping_table(LEDGER_TABLE)
                    ),
                    &[
                        &origin.batch_id,
                        &origin.run,
                        &origin.collection,
                        &(seq as i64),
                        &plan.table,
                        &count(batch.rows.len()),
                        &count(batch.rejects.len()),
                    ],
                )
                .await
                .doing("claiming the batch in the ledger")?;
            Ok(inserted == 1)
        }
        Claim::Changes { seq, events, .. } => {
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO {} (batch_id, run, collection, seq, target_table, rows_written, rows_rejected, kind, events)
                         VALUES ($1, $2, $3, $4, $5, 0, 0, 'changes', $6) ON CONFLICT (batch_id) DO NOTHING",
                        bookkeeping_table(LEDGER_TABLE)
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
        Claim::Rejects { ids } => {
            let taken = tx
                .execute(
                    &format!(
                        "DELETE FROM {} WHERE id = ANY($1)",
                        bookkeeping_table(REJECTS_TABLE)
                    ),
                    &[&ids],
                )
                .await
                .doing("taking the rejects to replay")?;
            Ok(taken == ids.len() as u64)
        }
        Claim::Replace { keys, doc_ids } => {
            crate::delete::delete_documents(tx, plan, origin.collection, &keys, doc_ids).await?;
            Ok(true)
        }
    }
}

/// Rejects, the ledger's counts, commit.
async fn finish(
    tx: Tx<'_>,
    origin: &Origin<'_>,
    claim: Claim<'_>,
    batch: &Mapped<'_>,
    mut copied: Isolated,
    already: usize,
) -> Result<Landed, PgError> {
    if !batch.operations.is_empty() {
        // A change's row PostgreSQL refused is kept with its operation.
        let operations: HashMap<&[u8], ChangeOp> = batch
            .sources
            .iter()
            .map(AsRef::as_ref)
            .zip(batch.operations.iter().copied())
            .collect();
        for reject in &mut copied.refused {
            let op = operations.get(reject.raw.as_slice()).copied();
            reject.operation = Some(op.unwrap_or(ChangeOp::Update).as_str());
        }
    }
    let rejects: Vec<&Reject> = batch.rejects.iter().chain(copied.refused.iter()).collect();
    reject::insert(&tx, origin, &rejects)
        .await
        .doing("recording the rejects")?;
    let ledger = bookkeeping_table(LEDGER_TABLE);
    let written = count(copied.written as usize);
    match claim {
        // The claim counted every mapped row as written (a change batch's, none).
        Claim::Changes { .. } => {
            tx.execute(
                &format!(
                    "UPDATE {ledger} SET rows_written = $2, rows_rejected = $3, rows_already = $4 WHERE batch_id = $1"
                ),
                &[
                    &origin.batch_id,
                    &written,
                    &count(rejects.len()),
                    // Changes older than what had landed: applied already, or overtaken.
                    &count(already),
                ],
            )
            .await
            .doing("counting the batch in the ledger")?;
        }
        Claim::Batch { .. } if !copied.refused.is_empty() || already > 0 => {
            tx.execute(
                &format!(
                    "UPDATE {ledger} SET rows_written = $2, rows_rejected = $3, rows_already = $4 WHERE batch_id = $1"
                ),
                &[
                    &origin.batch_id,
                    &written,
                    &count(rejects.len()),
                    &count(already),
                ],
            )
            .await
            .doing("counting the refused rows in the ledger")?;
        }
        Claim::Rejects { .. } => {
            tx.execute(
                &format!(
                    "UPDATE {ledger} SET rows_written = rows_written + $2, rows_rejected = rows_rejected - $2 - $3, rows_already = rows_already + $3 WHERE batch_id = $1"
                ),
                &[&origin.batch_id, &written, &count(already)],
            )
            .await
            .doing("moving the landed rejects to written in the ledger")?;
        }
        Claim::Batch { .. } | Claim::Replace { .. } => {}
    }
    tx.commit()
        .instrument(tracing::info_span!("commit"))
        .await
        .doing("committing")?;
    Ok(Landed::Committed {
        rows: copied.written,
        rejects: RejectCounts::of(rejects.iter().copied()),
        already: already as u64,
    })
}

/// A count for the ledger's `integer` columns; a batch is far below 2³¹ documents.
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
