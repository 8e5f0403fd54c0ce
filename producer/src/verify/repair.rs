//! `verify --repair`: landing the differing documents of a range again, through the
//! one landing transaction with a [`Claim::Replace`]: their rows, child rows and
//! rejects are deleted and they are mapped and copied anew, in one transaction.

use std::borrow::Cow;

use bson::{doc, Bson, RawDocumentBuf};
use futures::TryStreamExt;
use landing::cell::Cell;
use landing::landing::{land, Claim, Landed};
use landing::mapped::Mapped;
use landing::reject::Origin;

use super::VerifyError;
use super::{Check, Seen, REPAIR_RUN};

impl Check<'_> {
    /// Lands the given documents again; returns how many became rows.
    pub(super) async fn repair(&mut self, differing: &[&Seen]) -> Result<u64, VerifyError> {
        let plan = self.plan;
        let ids: Vec<Bson> = differing.iter().map(|s| s.id.clone()).collect();
        let source = self.database.collection::<RawDocumentBuf>(self.collection);
        let docs: Vec<RawDocumentBuf> = source
            .find(doc! { "_id": { "$in": ids } })
            .await
            .map_err(|e| self.failed("reading the source", e))?
            .try_collect()
            .await
            .map_err(|e| self.failed("reading the source", e))?;
        let keys: Vec<Cell> = differing
            .iter()
            .filter_map(|s| s.key_cell.clone())
            .collect();
        let id_texts: Vec<&str> = differing.iter().map(|s| s.id_text.as_str()).collect();
        let batch = Mapped::map(plan, docs.iter().map(|raw| Cow::Borrowed(raw.as_bytes())));
        landing::schema::ensure_table(self.client, plan)
            .await
            .map_err(|e| self.failed("creating the table", e))?;
        let origin = Origin {
            run: REPAIR_RUN,
            collection: self.collection,
            batch_id: "repair",
        };
        let claim = Claim::Replace {
            keys: &keys,
            doc_ids: &id_texts,
        };
        match land(self.client, plan, &origin, claim, &batch).await {
            Ok(Landed::Committed { rows, .. }) => Ok(rows),
            Ok(Landed::AlreadyClaimed) => Ok(0),
            Err(e) => Err(self.failed("repairing", e)),
        }
    }
}
