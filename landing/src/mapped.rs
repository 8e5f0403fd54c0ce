//! A batch of documents mapped to rows: the one loop that turns documents into the
//! rows they land as and the rejects that say why not, for the writers, `replay` and
//! `verify --repair` alike.

use std::borrow::Cow;

use crate::mapping::{Row, TablePlan};
use crate::reject::Reject;

/// Documents mapped by one plan, ready to land.
#[derive(Debug, Default)]
pub struct Mapped<'a> {
    pub rows: Vec<Row>,
    /// Each row's source document, in the order of `rows`, for a reject if PostgreSQL
    /// refuses the row.
    pub sources: Vec<Cow<'a, [u8]>>,
    /// The documents that did not map, with their reason.
    pub rejects: Vec<Reject>,
}

impl<'a> Mapped<'a> {
    /// Maps each document as it came off the wire (which may not be BSON at all).
    pub fn map(plan: &TablePlan, docs: impl IntoIterator<Item = Cow<'a, [u8]>>) -> Self {
        let mut mapped = Mapped::default();
        for bytes in docs {
            match plan.row_from_bytes(&bytes) {
                Ok(row) => {
                    mapped.rows.push(row);
                    mapped.sources.push(bytes);
                }
                Err(error) => mapped.rejects.push(Reject::new(&bytes, error)),
            }
        }
        mapped
    }

    /// How many documents were mapped, rows and rejects together.
    pub fn documents(&self) -> usize {
        self.rows.len() + self.rejects.len()
    }
}
