//! The phase after the load, as `mongo2pg finish` recorded it: indexes built and
//! failed, foreign keys valid and not.

use common::naming::{bookkeeping_table, FINISH_TABLE};
use landing::pg::PgError;

use crate::error::OperatorError;

/// What `finish` recorded for a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishPhase {
    /// Indexes built (or valid already).
    pub indexes_built: usize,
    /// Indexes to build.
    pub indexes: usize,
    /// Indexes being built now.
    pub building: Vec<String>,
    /// Indexes that failed, with PostgreSQL's reason.
    pub failed: Vec<(String, String)>,
    /// MongoDB's indexes reported without a PostgreSQL one.
    pub reported: usize,
    /// Foreign keys validated.
    pub keys_valid: usize,
    /// Foreign keys handled.
    pub keys: usize,
    /// Foreign keys left not valid, with their orphans.
    pub not_valid: Vec<(String, String)>,
}

impl FinishPhase {
    /// Whether something `finish` recorded still needs fixing.
    pub fn needs_attention(&self) -> bool {
        !self.failed.is_empty() || !self.not_valid.is_empty()
    }
}

/// The run's finish phase; `None` when `finish` has not run for it.
pub async fn read(
    pg: &tokio_postgres::Client,
    run: &str,
) -> Result<Option<FinishPhase>, OperatorError> {
    let rows = match pg
        .query(
            &format!(
                "SELECT kind, state, item, detail FROM {} WHERE run = $1 ORDER BY item",
                bookkeeping_table(FINISH_TABLE)
            ),
            &[&run],
        )
        .await
    {
        Ok(rows) => rows,
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            return Ok(None)
        }
        Err(err) => {
            return Err(OperatorError::Pg(PgError::new(
                "reading the finish phase",
                err,
            )))
        }
    };
    if rows.is_empty() {
        return Ok(None);
    }
    let mut phase = FinishPhase::default();
    for row in &rows {
        let (kind, state, item, detail): (&str, &str, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        match (kind, state) {
            ("index", "reported") => phase.reported += 1,
            ("index", state) => {
                phase.indexes += 1;
                match state {
                    "built" => phase.indexes_built += 1,
                    "failed" => phase.failed.push((item, detail)),
                    "building" => phase.building.push(item),
                    _ => {}
                }
            }
            (_, state) => {
                phase.keys += 1;
                match state {
                    "valid" => phase.keys_valid += 1,
                    "not valid" => phase.not_valid.push((item, detail)),
                    _ => {}
                }
            }
        }
    }
    Ok(Some(phase))
}

impl std::fmt::Display for FinishPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "finish: indexes {}/{} built",
            self.indexes_built, self.indexes
        )?;
        if !self.building.is_empty() {
            write!(
                f,
                ", {} building ({})",
                self.building.len(),
                self.building.join(", ")
            )?;
        }
        for (item, why) in &self.failed {
            write!(f, ", FAILED {item}: {why}")?;
        }
        write!(f, "; foreign keys {}/{} valid", self.keys_valid, self.keys)?;
        for (item, why) in &self.not_valid {
            write!(f, ", NOT VALID {item}: {why}")?;
        }
        if self.reported > 0 {
            write!(f, "; {} of MongoDB's indexes reported without a counterpart (see `mongo2pg finish --plan`)", self.reported)?;
        }
        writeln!(f)
    }
}
