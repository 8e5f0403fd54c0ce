//! `verify --repair`: landing the differing documents of a range again.

use bson::{doc, Bson, RawDocumentBuf};
use common::naming::REJECTS_TABLE;
use consumer::cell::Cell;
use consumer::mapping::{ChildPlan, Row};
use consumer::reject::{Origin, Reject};
use consumer::schema::quote;
use futures::TryStreamExt;
use tokio_postgres::types::ToSql;

use super::{Check, Seen, REPAIR_RUN};
use crate::error::{mongo_detail, ProducerError};

impl Check<'_> {
    /// Lands the given documents again; returns how many became rows.
    pub(super) async fn repair(&mut self, differing: &[&Seen]) -> Result<u64, ProducerError> {
        let plan = self.plan;
        let ids: Vec<Bson> = differing.iter().map(|s| s.id.clone()).collect();
        let source = self.database.collection::<RawDocumentBuf>(self.collection);
        let docs: Vec<RawDocumentBuf> = source
            .find(doc! { "_id": { "$in": ids } })
            .await
            .map_err(|e| self.failed("reading the source", mongo_detail(&e)))?
            .try_collect()
            .await
            .map_err(|e| self.failed("reading the source", mongo_detail(&e)))?;
        let keys: Vec<&Cell> = differing
            .iter()
            .filter_map(|s| s.key_cell.as_ref())
            .collect();
        let id_texts: Vec<&str> = differing.iter().map(|s| s.id_text.as_str()).collect();
        let mut rows: Vec<Row> = Vec::new();
        let mut sources: Vec<Vec<u8>> = Vec::new();
        let mut rejects = Vec::new();
        for raw in &docs {
            match plan.row(raw) {
                Ok(row) => {
                    rows.push(row);
                    sources.push(raw.as_bytes().to_vec());
                }
                Err(error) => rejects.push(Reject::new(raw.as_bytes(), error)),
            }
        }
        consumer::schema::ensure_table(self.client, plan)
            .await
            .map_err(|e| self.failed("creating the table", e))?;
        let collection = self.collection;
        let failed = |e: tokio_postgres::Error| {
            ProducerError::Verify(format!("{collection} (repairing): {e}"))
        };
        let tx = self.client.transaction().await.map_err(failed)?;
        if let Some(pk) = plan.primary_key {
            let pk_type = plan.columns[pk].ty.sql();
            tx.execute(
                &format!(
                    "DELETE FROM {} WHERE {} = ANY($1::{pk_type}[])",
                    quote(&plan.table),
                    quote(&plan.columns[pk].name)
                ),
                &[&keys as &(dyn ToSql + Sync)],
            )
            .await
            .map_err(failed)?;
            for child in &plan.children {
                tx.execute(
                    &format!(
                        "DELETE FROM {} WHERE {} = ANY($1::{pk_type}[])",
                        quote(&child.table),
                        quote(ChildPlan::COLUMNS[0])
                    ),
                    &[&keys as &(dyn ToSql + Sync)],
                )
                .await
                .map_err(failed)?;
            }
        }
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE collection = $1 AND doc_id = ANY($2)",
                quote(REJECTS_TABLE)
            ),
            &[&collection, &id_texts],
        )
        .await
        .map_err(failed)?;
        let (written, refused) = consumer::ledger::copy_isolating(&tx, plan, &rows, &sources)
            .await
            .map_err(failed)?;
        let all: Vec<&Reject> = rejects.iter().chain(refused.iter()).collect();
        let origin = Origin {
            run: REPAIR_RUN,
            collection,
            batch_id: "repair",
        };
        consumer::reject::insert(&tx, &origin, &all)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(written)
    }
}
