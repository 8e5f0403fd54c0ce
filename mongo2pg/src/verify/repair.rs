//! `verify --repair`: landing the differing documents of a range again, in one
//! transaction: their rows, child rows and rejects are replaced by what the mapping
//! makes of MongoDB's documents now.
//!
//! Once changes have landed in the table (a followed run), repair is a writer like
//! any change and goes through the version rule ([`landing::changes`]): the documents
//! are read in a causally consistent session, and the read's operation time is their
//! version (after every change of that cluster time). A change newer than the read
//! wins over the repair, and the repair over an older change still in flight; a
//! document deleted meanwhile is never brought back. Before any change, the documents
//! simply replace their rows ([`Claim::Replace`]).

use std::borrow::Cow;
use std::collections::HashSet;

use bson::{doc, Bson, RawDocumentBuf};
use common::batch::{Change, ChangeOp, Version};
use futures::TryStreamExt;
use landing::cell::Cell;
use landing::changes::ChangeDoc;
use landing::landing::{land, Claim, Landed};
use landing::mapped::Mapped;
use landing::reject::Origin;

use super::VerifyError;
use super::{Check, Seen, REPAIR_RUN};

impl Check<'_> {
    /// Lands the given documents again; returns how many became rows.
    pub(super) async fn repair(&mut self, differing: &[&Seen]) -> Result<u64, VerifyError> {
        let plan = self.plan;
        landing::schema::ensure_table(self.client, plan, None, None)
            .await
            .map_err(|e| self.failed("creating the table", e))?;
        let followed = landing::versions::changes_landed(self.client, plan)
            .await
            .map_err(|e| self.failed("reading the versions", e))?;
        if followed {
            return self.repair_versioned(differing).await;
        }
        let ids: Vec<Bson> = differing.iter().map(|s| s.id.clone()).collect();
        let source = self.database.collection::<RawDocumentBuf>(self.collection);
        let docs: Vec<RawDocumentBuf> = source
            .find(doc! { "_id": { "$in": ids } })
            .await
            .map_err(|e| self.failed("reading the source", e))?
            .try_collect()
            .await
            .map_err(|e| self.failed("reading the source", e))?;
        common::crash::pause("repair-read").await;
        let keys: Vec<Cell> = differing
            .iter()
            .filter_map(|s| s.key_cell.clone())
            .collect();
        let id_texts: Vec<&str> = differing.iter().map(|s| s.id_text.as_str()).collect();
        let batch = Mapped::map(plan, docs.iter().map(|raw| Cow::Borrowed(raw.as_bytes())));
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

    /// Repair as a change: each document found replaces its row, each one gone is a
    /// delete, all at the version of the read.
    async fn repair_versioned(&mut self, differing: &[&Seen]) -> Result<u64, VerifyError> {
        let ids: Vec<Bson> = differing.iter().map(|s| s.id.clone()).collect();
        let source = self.database.collection::<RawDocumentBuf>(self.collection);
        let mut session = self
            .database
            .client()
            .start_session()
            .causal_consistency(true)
            .await
            .map_err(|e| self.failed("starting a session", e))?;
        let mut cursor = source
            .find(doc! { "_id": { "$in": ids } })
            .session(&mut session)
            .await
            .map_err(|e| self.failed("reading the source", e))?;
        let docs: Vec<RawDocumentBuf> = cursor
            .stream(&mut session)
            .try_collect()
            .await
            .map_err(|e| self.failed("reading the source", e))?;
        common::crash::pause("repair-read").await;
        let Some(read_at) = session.operation_time() else {
            return Err(self.failed("reading the source", super::Cause::NoOperationTime));
        };
        let version = Version {
            time: read_at.time,
            increment: read_at.increment,
            // After every change of the same cluster time: the read saw them all.
            ordinal: u32::MAX,
        };
        let id_key = |id: &Bson| {
            RawDocumentBuf::try_from(&doc! { "_id": id.clone() })
                .map(RawDocumentBuf::into_bytes)
                .unwrap_or_default()
        };
        let found: HashSet<Vec<u8>> = docs
            .iter()
            .filter_map(|raw| raw.get("_id").ok().flatten())
            .filter_map(|id| Bson::try_from(id).ok())
            .map(|id| id_key(&id))
            .collect();
        let change = |op| Change { op, version };
        let mut changes: Vec<ChangeDoc<'_>> = docs
            .iter()
            .map(|raw| ChangeDoc {
                change: change(ChangeOp::Replace),
                bytes: Cow::Borrowed(raw.as_bytes()),
            })
            .collect();
        for seen in differing {
            let key = id_key(&seen.id);
            if !found.contains(&key) {
                changes.push(ChangeDoc {
                    change: change(ChangeOp::Delete),
                    bytes: Cow::Owned(key),
                });
            }
        }
        let batch_id = format!(
            "repair-{}-{}-{:08x}",
            read_at.time,
            read_at.increment,
            rand::random::<u32>()
        );
        let origin = Origin {
            run: REPAIR_RUN,
            collection: self.collection,
            batch_id: &batch_id,
        };
        match landing::landing::land_changes(self.client, self.plan, &origin, 0, &changes).await {
            Ok(Landed::Committed { rows, .. }) => Ok(rows),
            Ok(Landed::AlreadyClaimed) => Ok(0),
            Err(e) => Err(self.failed("repairing", e)),
        }
    }
}
