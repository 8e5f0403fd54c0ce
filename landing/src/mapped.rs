//! A batch of documents mapped to rows: the one loop that turns documents into the
//! rows they land as and the rejects that say why not, for the writers, `replay` and
//! `verify --repair` alike.

use std::borrow::Cow;

use common::batch::ChangeOp;

use crate::mapping::{Row, TablePlan};
use crate::reject::Reject;

/// Documents mapped by one plan, ready to land.
#[derive(Debug, Default)]
pub struct Mapped<'a> {
    /// The rows, in the order the documents came.
    pub rows: Vec<Row>,
    /// Each row's source document, in the order of `rows`, for a reject if PostgreSQL
    /// refuses the row.
    pub sources: Vec<Cow<'a, [u8]>>,
    /// The documents that did not map, with their reason.
    pub rejects: Vec<Reject>,
    /// For change events, each row's operation, in the order of `rows` (empty for
    /// snapshot documents), so that a row PostgreSQL refuses is kept with it.
    pub operations: Vec<ChangeOp>,
}

/// Where [`Mapped::push`] put a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The row at this index of `rows`.
    Row(usize),
    /// The reject at this index of `rejects`.
    Reject(usize),
}

impl<'a> Mapped<'a> {
    /// Maps each document as it came off the wire (which may not be BSON at all).
    pub fn map(plan: &TablePlan, docs: impl IntoIterator<Item = Cow<'a, [u8]>>) -> Self {
        let docs = docs.into_iter();
        let mut mapped = Mapped {
            rows: Vec::with_capacity(docs.size_hint().0),
            sources: Vec::with_capacity(docs.size_hint().0),
            ..Mapped::default()
        };
        for bytes in docs {
            mapped.push(plan, bytes, None);
        }
        mapped
    }

    /// Maps one document, a change event's when `operation` is given, into a row or
    /// a reject; says which.
    pub fn push(
        &mut self,
        plan: &TablePlan,
        bytes: Cow<'a, [u8]>,
        operation: Option<ChangeOp>,
    ) -> Slot {
        match plan.row_from_bytes(&bytes) {
            Ok(row) => {
                self.rows.push(row);
                self.sources.push(bytes);
                if let Some(op) = operation {
                    self.operations.push(op);
                }
                Slot::Row(self.rows.len() - 1)
            }
            Err(error) => {
                let mut reject = Reject::new(plan, &bytes, error);
                reject.operation = operation.map(ChangeOp::as_str);
                self.rejects.push(reject);
                Slot::Reject(self.rejects.len() - 1)
            }
        }
    }

    /// How many documents were mapped, rows and rejects together.
    pub fn documents(&self) -> usize {
        self.rows.len() + self.rejects.len()
    }
}
