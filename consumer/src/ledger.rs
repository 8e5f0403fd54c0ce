//! Landing one batch exactly once.
//!
//! The batch's rows (binary COPY), its rejects, and a ledger row keyed by the batch id
//! commit in one transaction. The ledger row is inserted first: a second writer holding
//! the same batch (a redelivery racing the original) blocks on that key until the first
//! transaction ends, then finds the key taken and skips the batch. A batch whose id is
//! already in the ledger is a duplicate: acknowledged, counted, not written again.

use common::naming::{LEDGER_TABLE, REJECTS_TABLE};
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::cell::Cell;
use crate::mapping::{RowError, TablePlan};
use crate::schema::quote;

/// A batch mapped to rows, ready to land.
pub struct MappedBatch<'a> {
    pub batch_id: &'a str,
    pub run: &'a str,
    pub collection: &'a str,
    pub seq: u64,
    pub rows: Vec<Vec<Cell>>,
    pub rejects: Vec<Reject>,
}

/// A document that did not become a row.
pub struct Reject {
    pub doc_id: Option<String>,
    pub error: RowError,
    /// The document as canonical Extended JSON, when it can be rendered as jsonb.
    pub document: Option<String>,
    /// The exact source bytes: nothing is lost, and the reject can be replayed.
    pub raw: Vec<u8>,
}

/// What landing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landed {
    Committed {
        rows: u64,
        rejects: u64,
    },
    /// The ledger already held this batch id.
    Duplicate,
}

/// Writes the batch in one transaction: ledger row, COPY of the rows, rejects.
pub async fn land(
    client: &mut Client,
    plan: &TablePlan,
    batch: &MappedBatch<'_>,
) -> Result<Landed, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let claimed = tx
        .execute(
            &format!(
                "INSERT INTO {} (batch_id, run, collection, seq, target_table, rows_written, rows_rejected)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (batch_id) DO NOTHING",
                quote(LEDGER_TABLE)
            ),
            &[
                &batch.batch_id,
                &batch.run,
                &batch.collection,
                &(batch.seq as i64),
                &plan.table,
                &(batch.rows.len() as i32),
                &(batch.rejects.len() as i32),
            ],
        )
        .await?;
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(Landed::Duplicate);
    }

    let mut rows = 0;
    if !batch.rows.is_empty() {
        let columns: Vec<String> = plan.columns.iter().map(|c| quote(&c.name)).collect();
        let types: Vec<_> = plan.columns.iter().map(|c| c.ty.pg_type()).collect();
        let sink = tx
            .copy_in(&format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                quote(&plan.table),
                columns.join(", ")
            ))
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(plan.columns.len());
        for row in &batch.rows {
            values.clear();
            values.extend(row.iter().map(|cell| cell as &(dyn ToSql + Sync)));
            writer.as_mut().write(&values).await?;
        }
        rows = writer.finish().await?;
    }

    if !batch.rejects.is_empty() {
        insert_rejects(&tx, batch).await?;
    }
    tx.commit().await?;
    Ok(Landed::Committed {
        rows,
        rejects: batch.rejects.len() as u64,
    })
}

/// All of a batch's rejects in one statement.
async fn insert_rejects(
    tx: &tokio_postgres::Transaction<'_>,
    batch: &MappedBatch<'_>,
) -> Result<(), tokio_postgres::Error> {
    let n = batch.rejects.len();
    let mut doc_ids = Vec::with_capacity(n);
    let mut fields = Vec::with_capacity(n);
    let mut expected = Vec::with_capacity(n);
    let mut found = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut documents = Vec::with_capacity(n);
    let mut raws = Vec::with_capacity(n);
    for reject in &batch.rejects {
        doc_ids.push(reject.doc_id.clone());
        fields.push(reject.error.field.clone());
        expected.push(reject.error.expected.map(|t| t.sql().to_string()));
        found.push(reject.error.found.clone());
        errors.push(reject.error.to_string());
        documents.push(reject.document.clone());
        raws.push(reject.raw.clone());
    }
    tx.execute(
        &format!(
            "INSERT INTO {} (run, collection, batch_id, doc_id, field, expected_type, found_type, error, document, raw_bson)
             SELECT $1, $2, $3, d, f, e, t, r, j::jsonb, b
             FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[]) AS u(d, f, e, t, r, j, b)",
            quote(REJECTS_TABLE)
        ),
        &[
            &batch.run,
            &batch.collection,
            &batch.batch_id,
            &doc_ids,
            &fields,
            &expected,
            &found,
            &errors,
            &documents,
            &raws,
        ],
    )
    .await?;
    Ok(())
}
