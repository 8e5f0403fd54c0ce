//! After `finish`: do the constraints it made hold?
//!
//! PostgreSQL enforces a validated foreign key and a valid index by itself, so what is
//! left to check is what is not: a foreign key still `NOT VALID` (its orphans are
//! counted again and named), one `finish` should have added and did not, and an index
//! left INVALID (by a failed or killed build). Each is a difference.

use std::fmt::Write as _;

use common::naming::{bookkeeping_table, FINISH_TABLE};
use landing::identifier::quote_table;
use landing::mapping::{MappingFile, TablePlan};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::{Cause, VerifyError};
use crate::finish::constraints::foreign_keys;

/// What the check found: the lines of the report, and how many differences.
#[derive(Debug, Default)]
pub(super) struct Found {
    pub(super) text: String,
    pub(super) differences: u64,
}

/// Checks the foreign keys of `plans`' references and the indexes of their tables.
pub(super) async fn check(
    client: &Client,
    file: &MappingFile,
    plans: &[TablePlan],
    run: &str,
) -> Result<Found, VerifyError> {
    let failed = |table: &str| {
        let table = table.to_string();
        move |e: tokio_postgres::Error| VerifyError::Check {
            collection: table,
            doing: "checking the constraints finish made",
            cause: Cause::Postgres(e),
        }
    };
    let finished = match client
        .query_one(
            &format!(
                "SELECT count(*) FROM {} WHERE run = $1",
                bookkeeping_table(FINISH_TABLE)
            ),
            &[&run],
        )
        .await
    {
        Ok(row) => row.get::<_, i64>(0) > 0,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => false,
        Err(e) => return Err(failed(FINISH_TABLE)(e)),
    };
    let mut found = Found::default();
    let (mut valid_keys, mut valid_indexes) = (0, 0);
    for plan in plans {
        for key in foreign_keys(file, plan) {
            let row = client
                .query_opt(
                    "SELECT convalidated FROM pg_constraint WHERE conname = $1 AND conrelid = to_regclass($2)",
                    &[&key.name, &quote_table(&key.table)],
                )
                .await
                .map_err(failed(&key.table))?;
            match row.map(|r| r.get::<_, bool>(0)) {
                Some(true) => valid_keys += 1,
                Some(false) => {
                    let orphans = client
                        .query_one(&key.orphans, &[])
                        .await
                        .map_err(failed(&key.table))?;
                    let count: i64 = orphans.get(0);
                    let examples: Vec<String> =
                        orphans.get::<_, Option<Vec<String>>>(1).unwrap_or_default();
                    found.differences += 1;
                    let _ = writeln!(
                        found.text,
                        "constraint {}: NOT VALID, {count} orphans{} (document -> missing key); fix them, then `mongo2pg finish` validates it",
                        key.relationship,
                        if examples.is_empty() {
                            String::new()
                        } else {
                            format!(", e.g. {}", examples.join(", "))
                        }
                    );
                }
                None if finished => {
                    found.differences += 1;
                    let _ = writeln!(
                        found.text,
                        "constraint {}: the foreign key {} is missing; `mongo2pg finish` adds it",
                        key.relationship, key.name
                    );
                }
                None => {}
            }
        }
        let tables = std::iter::once(&plan.table).chain(plan.children.iter().map(|c| &c.table));
        for table in tables {
            let rows = client
                .query(
                    "SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     WHERE i.indrelid = to_regclass($1) AND NOT i.indisprimary ORDER BY 1",
                    &[&quote_table(table)],
                )
                .await
                .map_err(failed(table))?;
            for row in rows {
                let (name, valid): (String, bool) = (row.get(0), row.get(1));
                if valid {
                    valid_indexes += 1;
                } else {
                    found.differences += 1;
                    let _ = writeln!(
                        found.text,
                        "index {name} on {table}: INVALID (a build failed or was killed); `mongo2pg finish` rebuilds it"
                    );
                }
            }
        }
    }
    if finished || valid_keys + valid_indexes > 0 {
        let _ = writeln!(
            found.text,
            "constraints: {valid_keys} foreign keys valid, {valid_indexes} indexes valid{}",
            if found.differences > 0 {
                format!(", {} not (above)", found.differences)
            } else {
                String::new()
            }
        );
    } else {
        let _ = writeln!(
            found.text,
            "constraints: none yet (`mongo2pg finish` has not run for run {run})"
        );
    }
    Ok(found)
}
