//! `mongo2pg verify`: does PostgreSQL hold what the mapping makes of every document?
//!
//! The source is read in `_id` order (one cursor, memory bounded by one range) and cut
//! into ranges of `--range-size` documents. Each document is mapped exactly as a writer
//! maps it and fingerprinted ([`Fingerprint::of_document`]: its row and child rows, in
//! one canonical form); the target's rows for the range's keys are read back in binary
//! and fingerprinted the same way. A range agrees when its count and the sum of its
//! fingerprints (order-independent) agree; within a range that does not, each document
//! is classified: missing, different, or not mapping and not in the rejects table. A
//! document in the rejects table is accounted for. Then `--sample` random documents are
//! compared column by column. The first `--show` differences are printed with the
//! columns that differ, as PostgreSQL renders both values.
//!
//! Then the constraints `mongo2pg finish` made ([`constraints`]): a foreign key left
//! `NOT VALID` or an index left INVALID is a difference too.
//!
//! `--repair` lands again only the documents of differing ranges that differ: in one
//! transaction per range, their rows, child rows and rejects are deleted and they are
//! mapped and copied anew (refused rows go to the rejects table under run
//! `verify-repair`); the range is then checked again.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use bson::{doc, Bson, RawDocumentBuf};
use common::naming::{bookkeeping_table, REJECTS_TABLE};
use futures::TryStreamExt;
use landing::cell::Cell;
use landing::identifier::quote_table;
use landing::mapping::{RejectKind, RowError, TablePlan};
use landing::pg::{self};
use landing::session::Session;
use source::Source;

mod constraints;
mod describe;
mod error;
mod fingerprint;
mod mapping;
mod repair;
mod report;
mod target;

pub use self::error::{Cause, VerifyError};
use self::fingerprint::{cell_bytes, Fingerprint};
pub use self::report::Report;
use crate::config::VerifyConfig;
use source::pager::Pager;

/// The run name repaired rows' rejects are filed under.
pub const REPAIR_RUN: &str = "verify-repair";

/// Compares the target with the source, collection by collection, by the run's
/// mapping; with `--repair`, lands the differing documents again.
///
/// # Errors
/// [`VerifyError`] when a server cannot be reached or read, or the mapping is not the
/// run's. Differences are not errors: they are in the [`Report`].
pub async fn verify(config: &VerifyConfig) -> Result<Report, VerifyError> {
    let (mut mapping, named, run_collections) = mapping::for_run(config).await?;
    mapping.unlock(&named)?;
    let database = source::connect(&config.mongo).await?;
    // The collections asked for, or the run's, or (a run gone from NATS) every one.
    let mut asked = common::config::collection_names(&config.collections);
    if asked.is_empty() {
        asked = run_collections.unwrap_or_default();
    }
    let collections = source::collections(&database, &asked).await?;
    let mut client = Session::new(pg::connect(&config.postgres.database_url).await?);
    let mut report = Report::default();
    let _ = writeln!(report.text, "mapping: {named}");
    let mut plans = Vec::new();
    for collection in collections {
        let plan = landing::plans::load(&client, &mapping, &collection)
            .await
            .map_err(|e| VerifyError::Check {
                collection: collection.clone(),
                doing: "reading the columns added for new fields",
                cause: e.into(),
            })?;
        let mut check = Check {
            config,
            database: &database,
            collection: &collection,
            plan: &plan,
            filter: mapping
                .collections
                .get(collection.as_str())
                .and_then(|c| c.filter_document()),
            client: &mut client,
            report: &mut report,
            shown: 0,
        };
        check.collection().await?;
        plans.push(plan);
    }
    let found = constraints::check(&client, &mapping, &plans, config.run.run.as_str()).await?;
    report.text.push_str(&found.text);
    report.differences += found.differences;
    let verdict = match (report.differences, report.rejected) {
        (0, 0) => "the target holds exactly what the mapping makes of the source".to_string(),
        (0, rejected) => format!(
            "no differences, but {rejected} documents wait in {REJECTS_TABLE} with their reason; fix the mapping (or the table) and `mongo2pg replay` lands them"
        ),
        (differences, _) => format!("{differences} differences"),
    };
    let _ = writeln!(report.text, "verify: {verdict}");
    Ok(report)
}

/// One source document, as much as a range needs to remember of it.
struct Seen {
    id: Bson,
    id_text: String,
    /// The primary key's binary value, to find its row.
    key: Option<Vec<u8>>,
    key_cell: Option<Cell>,
    mapped: Result<Fingerprint, RowError>,
}

/// How one document compares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Equal,
    Rejected,
    Missing,
    Differs,
    Unmapped(String),
}

struct Check<'a> {
    config: &'a VerifyConfig,
    database: &'a Source,
    collection: &'a str,
    plan: &'a TablePlan,
    /// The mapping's filter: the source is the documents it matches.
    filter: Option<bson::Document>,
    client: &'a mut Session,
    report: &'a mut Report,
    shown: usize,
}

/// Totals of one collection.
#[derive(Default)]
struct Totals {
    documents: u64,
    equal: u64,
    rejected: u64,
    ranges: u64,
    differing_ranges: u64,
    repaired: u64,
    target_rows_seen: u64,
}

impl Check<'_> {
    fn failed(&self, doing: &'static str, cause: impl Into<Cause>) -> VerifyError {
        VerifyError::Check {
            collection: self.collection.to_string(),
            doing,
            cause: cause.into(),
        }
    }

    async fn collection(&mut self) -> Result<(), VerifyError> {
        let plan = self.plan;
        let Some(pk) = plan.primary_key else {
            return Err(self.failed("finding rows", Cause::NoKey(plan.table.clone())));
        };
        let exists: bool = self
            .client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&quote_table(&plan.table)],
            )
            .await
            .map_err(|e| self.failed("finding the table", e))?
            .get(0);
        // Range lines go after the collection's summary line.
        let before = std::mem::take(&mut self.report.text);
        let source = self.database.collection::<RawDocumentBuf>(self.collection);
        let mut pager = Pager::new(source, None, self.filter.clone(), 1000);
        let mut totals = Totals::default();
        let mut range: Vec<Seen> = Vec::new();
        loop {
            let next = pager
                .next()
                .await
                .map_err(|e| self.failed("reading the source", e))?;
            if let Some(raw) = &next {
                range.push(self.seen(raw, pk));
            }
            let full = range.len() >= self.config.range_size.get();
            if (full || next.is_none()) && !range.is_empty() {
                totals.ranges += 1;
                self.range(&range, exists, &mut totals).await?;
                range.clear();
            }
            if next.is_none() {
                break;
            }
        }
        let target_rows: i64 = if exists {
            self.client
                .query_one(
                    &format!("SELECT count(*) FROM {}", quote_table(&plan.table)),
                    &[],
                )
                .await
                .map_err(|e| self.failed("counting rows", e))?
                .get(0)
        } else {
            0
        };
        let mut text = format!(
            "{} -> {}: {} documents in {} ranges: {} rows equal, {} in {REJECTS_TABLE}; {} ranges differ",
            self.collection,
            plan.table,
            totals.documents,
            totals.ranges,
            totals.equal,
            totals.rejected,
            totals.differing_ranges
        );
        self.report.rejected += totals.rejected;
        if totals.repaired > 0 {
            let _ = write!(text, "; {} documents landed again", totals.repaired);
        }
        let extra = u64::try_from(target_rows)
            .unwrap_or(0)
            .saturating_sub(totals.target_rows_seen);
        if extra > 0 {
            self.report.differences += extra;
            let _ = write!(
                text,
                "\n  the table holds {extra} rows whose key is in no source document (deleted from MongoDB since, or written by something else)"
            );
        }
        if (totals.differing_ranges > 0 || extra > 0)
            && exists
            && landing::versions::changes_landed(self.client, plan)
                .await
                .map_err(|e| self.failed("reading the versions", e))?
        {
            let _ = write!(
                text,
                "\n  changes of a followed run land in {}: a difference may be a change not yet applied; verify after `mongo2pg cutover` to tell lag from loss",
                plan.table
            );
        }
        let ranges = std::mem::replace(&mut self.report.text, before);
        let _ = writeln!(self.report.text, "{text}");
        self.report.text.push_str(&ranges);
        if exists {
            self.sample(pk).await?;
        }
        Ok(())
    }

    fn seen(&self, raw: &RawDocumentBuf, pk: usize) -> Seen {
        let id = raw
            .get("_id")
            .ok()
            .flatten()
            .and_then(|v| Bson::try_from(v).ok())
            .unwrap_or(Bson::Null);
        let id_text = match Cell::id_text(raw.get("_id").ok().flatten()) {
            Ok(Cell::Text(text)) => text,
            _ => format!("{id}"),
        };
        let mapped = self.plan.row(raw);
        let key_cell = mapped.as_ref().ok().map(|row| row.cells[pk].clone());
        let key = key_cell
            .as_ref()
            .and_then(|cell| cell_bytes(cell, self.plan.columns[pk].ty).ok().flatten());
        let mapped = mapped.and_then(|row| {
            Fingerprint::of_document(self.plan, &row).map_err(|e| RowError {
                field: String::new(),
                expected: None,
                found: String::new(),
                reason: e.to_string(),
                excerpt: None,
                kind: RejectKind::Type,
            })
        });
        Seen {
            id,
            id_text,
            key,
            key_cell,
            mapped,
        }
    }

    /// Checks one range; repairs it when asked and it differs.
    async fn range(
        &mut self,
        range: &[Seen],
        exists: bool,
        totals: &mut Totals,
    ) -> Result<(), VerifyError> {
        totals.documents += range.len() as u64;
        let (verdicts, summary) = self.compare(range, exists).await?;
        let agrees = verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Equal | Verdict::Rejected));
        totals.target_rows_seen += summary.target_rows;
        if agrees {
            totals.equal += count(&verdicts, &Verdict::Equal);
            totals.rejected += count(&verdicts, &Verdict::Rejected);
            return Ok(());
        }
        totals.differing_ranges += 1;
        let first = &range[0].id_text;
        let last = &range[range.len() - 1].id_text;
        let _ = writeln!(
            self.report.text,
            "  range _id {first} .. {last}: source {} rows expected (fingerprint {}), target {} rows (fingerprint {})",
            summary.source_rows, summary.source_sum, summary.target_rows, summary.target_sum
        );
        if !self.config.repair {
            for (seen, verdict) in range.iter().zip(&verdicts) {
                self.describe(seen, verdict).await?;
            }
            totals.equal += count(&verdicts, &Verdict::Equal);
            totals.rejected += count(&verdicts, &Verdict::Rejected);
            self.report.differences += verdicts
                .iter()
                .filter(|v| !matches!(v, Verdict::Equal | Verdict::Rejected))
                .count() as u64;
            return Ok(());
        }
        let differing: Vec<&Seen> = range
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| !matches!(v, Verdict::Equal | Verdict::Rejected))
            .map(|(seen, _)| seen)
            .collect();
        totals.repaired += self.repair(&differing).await?;
        totals.target_rows_seen -= summary.target_rows;
        let (verdicts, summary) = self.compare(range, true).await?;
        totals.target_rows_seen += summary.target_rows;
        totals.equal += count(&verdicts, &Verdict::Equal);
        totals.rejected += count(&verdicts, &Verdict::Rejected);
        for (seen, verdict) in range.iter().zip(&verdicts) {
            if !matches!(verdict, Verdict::Equal | Verdict::Rejected) {
                self.report.differences += 1;
                self.describe(seen, verdict).await?;
            }
        }
        Ok(())
    }

    /// Classifies each document of a range against the target.
    async fn compare(
        &mut self,
        range: &[Seen],
        exists: bool,
    ) -> Result<(Vec<Verdict>, RangeSummary), VerifyError> {
        let id_texts: Vec<&str> = range.iter().map(|s| s.id_text.as_str()).collect();
        let rejected: HashSet<String> = self
            .client
            .query(
                &format!(
                    "SELECT DISTINCT doc_id FROM {} WHERE collection = $1 AND doc_id = ANY($2)",
                    bookkeeping_table(REJECTS_TABLE)
                ),
                &[&self.collection, &id_texts],
            )
            .await
            .map_err(|e| self.failed("reading the rejects", e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let target = if exists {
            self.target_fingerprints(range).await?
        } else {
            HashMap::new()
        };
        let mut summary = RangeSummary::default();
        let mut verdicts = Vec::with_capacity(range.len());
        for seen in range {
            let found = seen
                .key
                .as_ref()
                .and_then(|k| target.get(k))
                .filter(|stored| stored.has_row)
                .map(|stored| &stored.fingerprint);
            if let Some(fp) = found {
                summary.target_rows += 1;
                summary.target_sum.add(*fp);
            }
            let verdict = match (&seen.mapped, found) {
                (Ok(fp), Some(stored)) => {
                    summary.source_rows += 1;
                    summary.source_sum.add(*fp);
                    if fp == stored {
                        Verdict::Equal
                    } else {
                        Verdict::Differs
                    }
                }
                (Ok(fp), None) => {
                    if rejected.contains(&seen.id_text) {
                        Verdict::Rejected
                    } else {
                        summary.source_rows += 1;
                        summary.source_sum.add(*fp);
                        Verdict::Missing
                    }
                }
                (Err(_), _) if rejected.contains(&seen.id_text) => Verdict::Rejected,
                (Err(error), _) => Verdict::Unmapped(error.to_string()),
            };
            verdicts.push(verdict);
        }
        Ok((verdicts, summary))
    }

    /// Compares `--sample` random documents column by column.
    async fn sample(&mut self, pk: usize) -> Result<(), VerifyError> {
        if self.config.sample == 0 {
            return Ok(());
        }
        let source = self.database.collection::<RawDocumentBuf>(self.collection);
        let mut cursor = source
            .aggregate(vec![doc! { "$sample": { "size": self.config.sample } }])
            .with_type::<RawDocumentBuf>()
            .await
            .map_err(|e| self.failed("sampling the source", e))?;
        let mut sampled = Vec::new();
        while let Some(raw) = cursor
            .try_next()
            .await
            .map_err(|e| self.failed("sampling the source", e))?
        {
            sampled.push(self.seen(&raw, pk));
        }
        let (verdicts, _) = self.compare(&sampled, true).await?;
        let differ = verdicts
            .iter()
            .filter(|v| !matches!(v, Verdict::Equal | Verdict::Rejected))
            .count();
        let _ = writeln!(
            self.report.text,
            "  sample: {} random documents compared column by column: {}",
            sampled.len(),
            if differ == 0 {
                "all equal".to_string()
            } else {
                format!("{differ} differ")
            }
        );
        // Already counted by their ranges unless repaired since; shown, not counted.
        for (seen, verdict) in sampled.iter().zip(&verdicts) {
            if !matches!(verdict, Verdict::Equal | Verdict::Rejected) {
                self.describe(seen, verdict).await?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct RangeSummary {
    source_rows: u64,
    source_sum: Fingerprint,
    target_rows: u64,
    target_sum: Fingerprint,
}

fn count(verdicts: &[Verdict], which: &Verdict) -> u64 {
    verdicts.iter().filter(|v| *v == which).count() as u64
}
