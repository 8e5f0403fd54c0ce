//! The versions table seen by the writers other than the change path: whether changes
//! have landed in a table, and the claim that lets snapshot documents landing late (a
//! requeued batch, a replayed reject) land only where no change did. The change path's
//! own arbitration is in [`crate::changes`].

use bson::RawDocument;
use common::batch::Version;
use common::naming::{bookkeeping_table, VERSIONS_TABLE};
use tokio_postgres::Client;

use crate::mapped::Mapped;
use crate::mapping::TablePlan;
use crate::pg::{Doing, PgError};
use crate::session::Tx;

/// Whether any change has landed in the table: from then on, every writer of its
/// documents goes through the version rule.
///
/// # Errors
/// [`PgError`] when PostgreSQL cannot be read; no bookkeeping tables yet is `false`.
pub async fn changes_landed(client: &Client, plan: &TablePlan) -> Result<bool, PgError> {
    let found = client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE target_table = $1)",
                bookkeeping_table(VERSIONS_TABLE)
            ),
            &[&plan.table],
        )
        .await;
    match found {
        Ok(row) => row
            .try_get(0)
            .doing("looking for changes landed in the table"),
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            Ok(false)
        }
        Err(err) => Err(PgError::new("looking for changes landed in the table", err)),
    }
}

/// For snapshot documents landing once changes have begun in their table: claims each
/// document's key in the versions table at version zero, older than any change, and
/// keeps the documents whose key no change holds; returns them and how many were left
/// to the changes. `None` when no change has landed in the table (the ordinary flow:
/// nothing to claim, and the snapshot's hot path stays one COPY).
pub(crate) async fn behind_changes<'a>(
    tx: &Tx<'_>,
    plan: &TablePlan,
    batch: &Mapped<'a>,
) -> Result<Option<(Mapped<'a>, usize)>, PgError> {
    let versions = bookkeeping_table(VERSIONS_TABLE);
    let changed: bool = tx
        .query_one(
            &format!("SELECT EXISTS (SELECT 1 FROM {versions} WHERE target_table = $1)"),
            &[&plan.table],
        )
        .await
        .and_then(|row| row.try_get(0))
        .doing("looking for changes landed in the table")?;
    if !changed {
        return Ok(None);
    }
    let keys: Vec<Option<Vec<u8>>> = batch.sources.iter().map(|s| id_key(s)).collect();
    let claimable: Vec<&[u8]> = keys.iter().flatten().map(Vec::as_slice).collect();
    let zero = Version::default().to_bytes().to_vec();
    let claimed = tx
        .query(
            &format!(
                "INSERT INTO {versions} (target_table, doc_key, version, deleted)
                 SELECT $1, k, $3, false FROM unnest($2::bytea[]) AS u(k) ORDER BY k
                 ON CONFLICT (target_table, doc_key) DO NOTHING
                 RETURNING doc_key"
            ),
            &[&plan.table, &claimable, &zero],
        )
        .await
        .doing("claiming the snapshot documents' versions")?;
    let mut ours = Vec::with_capacity(claimed.len());
    for row in claimed {
        let key: Vec<u8> = row.try_get(0).doing("reading the claimed versions")?;
        ours.push(key);
    }
    ours.sort();
    let mut kept = Mapped {
        rejects: batch.rejects.clone(),
        ..Mapped::default()
    };
    let mut left = 0;
    for ((row, source), key) in batch.rows.iter().zip(&batch.sources).zip(&keys) {
        // A document without a readable `_id` has no row to race for: it lands.
        if key
            .as_ref()
            .is_none_or(|key| ours.binary_search(key).is_ok())
        {
            kept.rows.push(row.clone());
            kept.sources.push(source.clone());
        } else {
            left += 1;
        }
    }
    Ok(Some((kept, left)))
}

/// The bytes of `{_id: …}` of a document, as the versions table keys it.
fn id_key(bytes: &[u8]) -> Option<Vec<u8>> {
    let id = RawDocument::from_bytes(bytes).ok()?.get("_id").ok()??;
    let mut key = bson::RawDocumentBuf::new();
    key.append(bson::cstr!("_id"), id);
    Some(key.into_bytes())
}
