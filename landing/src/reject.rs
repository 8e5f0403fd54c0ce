//! Documents that could not become rows, kept with their reason.
//!
//! Each reject keeps the document's `_id`, the field at fault, the expected and found
//! types, an excerpt of the value, the error in words, the document as jsonb (when it
//! can be rendered) and its exact BSON bytes, so nothing is lost and, once the mapping
//! is fixed, `mongo2pg replay` can land it.
//!
//! A collection with transformed columns keeps neither of them in clear: their
//! fields are left out of the document and the bytes kept, and named in `withheld`;
//! `replay` reads such a document from MongoDB again.

use bson::{RawBsonRef, RawDocument};
use common::naming::{bookkeeping_table, REJECTS_TABLE};

use crate::cell::{json_cell, Cell};
use crate::extjson::JsonMode;
use crate::mapping::{RejectKind, RowError, TablePlan};

/// Rejects counted by [`RejectKind`], for the metric of rejects by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RejectCounts(pub [u64; RejectKind::ALL.len()]);

impl RejectCounts {
    /// The rejects of `rejects`, by kind.
    pub fn of<'a>(rejects: impl IntoIterator<Item = &'a Reject>) -> Self {
        let mut counts = RejectCounts::default();
        for reject in rejects {
            counts.0[reject.error.kind.index()] += 1;
        }
        counts
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// A document that did not become a row.
#[derive(Debug, Clone)]
pub struct Reject {
    /// The document's `_id` as text, when it has a readable one.
    pub doc_id: Option<String>,
    /// Why it did not become a row.
    pub error: RowError,
    /// The document as canonical Extended JSON, when jsonb can hold it.
    pub document: Option<String>,
    /// The exact source bytes.
    pub raw: Vec<u8>,
    /// For a change event, what MongoDB did (`insert`, `update`, `replace`); `None`
    /// for a document of the snapshot.
    pub operation: Option<&'static str>,
    /// The transformed fields left out of `document` and `raw`.
    pub withheld: Vec<String>,
}

impl Reject {
    /// The reject of the document `raw` of `plan`'s collection, for `error`, its
    /// transformed fields left out.
    pub fn new(plan: &TablePlan, raw: &[u8], error: RowError) -> Self {
        if plan.withheld.is_empty() {
            return Self::kept(raw, error);
        }
        let mut reject = Self::kept(&crate::transform::withhold(raw, &plan.withheld), error);
        reject.withheld.clone_from(&plan.withheld);
        reject
    }

    /// The reject of the document `raw` as it is.
    fn kept(raw: &[u8], error: RowError) -> Self {
        let doc = RawDocument::from_bytes(raw).ok();
        let doc_id = doc.and_then(|doc| match Cell::id_text(doc.get("_id").ok().flatten()) {
            Ok(Cell::Text(id)) => Some(id),
            _ => None,
        });
        let document =
            doc.and_then(
                |doc| match json_cell(RawBsonRef::Document(doc), JsonMode::Canonical) {
                    Ok(Cell::Jsonb(json)) => Some(json),
                    _ => None,
                },
            );
        Reject {
            doc_id,
            error,
            document,
            raw: raw.to_vec(),
            operation: None,
            withheld: Vec::new(),
        }
    }

    /// A row PostgreSQL refused during COPY (a constraint, a value out of range).
    pub fn refused(plan: &TablePlan, raw: &[u8], err: &tokio_postgres::Error) -> Self {
        let db = err.as_db_error();
        let error = RowError {
            field: db.and_then(|d| d.column()).unwrap_or_default().to_string(),
            expected: None,
            found: String::new(),
            reason: format!("PostgreSQL refused the row: {}", crate::pg::detail(err)),
            excerpt: None,
            kind: RejectKind::Refused,
        };
        Reject::new(plan, raw, error)
    }
}

impl Reject {
    /// A row COPY was sent but did not write: a `BEFORE INSERT` trigger on `table`
    /// returned NULL for it.
    pub fn skipped(plan: &TablePlan, raw: &[u8]) -> Self {
        let table = &plan.table;
        let error = RowError {
            field: String::new(),
            expected: None,
            found: String::new(),
            reason: format!(
                "a trigger on {table} skipped the row (its BEFORE INSERT trigger returned NULL); it was not written"
            ),
            excerpt: None,
            kind: RejectKind::Skipped,
        };
        Reject::new(plan, raw, error)
    }
}

/// Where rejects come from, for the rejects table's run/collection/batch columns.
pub struct Origin<'a> {
    /// The run.
    pub run: &'a str,
    /// The collection.
    pub collection: &'a str,
    /// The batch (or the replay or repair) that landed them.
    pub batch_id: &'a str,
}

/// Inserts rejects in one statement.
pub(crate) async fn insert(
    tx: &crate::session::Tx<'_>,
    origin: &Origin<'_>,
    rejects: &[&Reject],
) -> Result<(), tokio_postgres::Error> {
    if rejects.is_empty() {
        return Ok(());
    }
    let n = rejects.len();
    let mut doc_ids = Vec::with_capacity(n);
    let mut fields = Vec::with_capacity(n);
    let mut expected = Vec::with_capacity(n);
    let mut found = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut excerpts = Vec::with_capacity(n);
    let mut documents = Vec::with_capacity(n);
    let mut raws = Vec::with_capacity(n);
    let mut operations = Vec::with_capacity(n);
    let mut withheld = Vec::with_capacity(n);
    for reject in rejects {
        // Paths may hold commas: joined with the unit separator, split in SQL.
        withheld.push((!reject.withheld.is_empty()).then(|| reject.withheld.join("\u{1f}")));
        operations.push(reject.operation);
        doc_ids.push(reject.doc_id.as_deref());
        fields.push(reject.error.field.as_str());
        expected.push(reject.error.expected.map(|t| t.sql()));
        found.push((!reject.error.found.is_empty()).then_some(reject.error.found.as_str()));
        errors.push(reject.error.to_string());
        excerpts.push(reject.error.excerpt.as_deref());
        documents.push(reject.document.as_deref());
        raws.push(reject.raw.as_slice());
    }
    tx.execute(
        &format!(
            "INSERT INTO {} (run, collection, batch_id, doc_id, field, expected_type, found_type, error, document, raw_bson, excerpt, operation, withheld)
             SELECT $1, $2, $3, d, f, e, t, r, j::jsonb, b, x, o, string_to_array(w, chr(31))
             FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[], $11::text[], $12::text[], $13::text[]) AS u(d, f, e, t, r, j, b, x, o, w)",
            bookkeeping_table(REJECTS_TABLE)
        ),
        &[
            &origin.run,
            &origin.collection,
            &origin.batch_id,
            &doc_ids,
            &fields,
            &expected,
            &found,
            &errors,
            &documents,
            &raws,
            &excerpts,
            &operations,
            &withheld,
        ],
    )
    .await?;
    Ok(())
}
