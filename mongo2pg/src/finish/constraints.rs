//! Foreign keys from the mapping's references: every reference column and join table
//! refers to the referenced collection's table by its key.
//!
//! Added `NOT VALID` (no scan, no long lock), its orphans counted, then validated
//! when there are none; with orphans it stays `NOT VALID`, which still holds every
//! new row, and the report names them.

use std::fmt::Write as _;

use landing::identifier::{self, quote, quote_table, split_table};
use landing::mapping::{ChildSource, MappingFile, Source, TablePlan};
use landing::pg::PgError;

use super::progress::record;
use crate::error::OperatorError;

/// A foreign key to add.
#[derive(Debug, Clone)]
pub(crate) struct ForeignKey {
    /// `orders.user_id -> users`, for the report.
    pub(crate) relationship: String,
    /// The referencing table.
    pub(crate) table: String,
    /// Its constraint name.
    pub(crate) name: String,
    /// `ALTER TABLE … ADD CONSTRAINT … NOT VALID`.
    pub(crate) add: String,
    /// The orphans: their count and up to five referencing documents' keys and values.
    pub(crate) orphans: String,
    /// `ALTER TABLE … VALIDATE CONSTRAINT …`.
    pub(crate) validate: String,
    /// The referenced table, quoted: a reference to a collection the run did not
    /// land has nothing to refer to.
    pub(crate) target: String,
}

/// The foreign keys of one collection's tables.
pub(crate) fn foreign_keys(file: &MappingFile, plan: &TablePlan) -> Vec<ForeignKey> {
    let Some(pk) = plan.primary_key else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    let mut add = |table: &str, column: &str, document_key: &str, to: &str| {
        let target = file.plan(to);
        let Some(target_pk) = target.primary_key else {
            return;
        };
        let target_key = &target.columns[target_pk].name;
        let name = identifier::fitted(&format!("{}_{column}_fkey", split_table(table).1));
        let (t, c) = (quote_table(table), quote(column));
        let (rt, rk) = (quote_table(&target.table), quote(target_key));
        keys.push(ForeignKey {
            relationship: format!("{table}.{column} -> {}", target.table),
            table: table.to_string(),
            name: name.clone(),
            add: format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} FOREIGN KEY ({c}) REFERENCES {rt} ({rk}) NOT VALID",
                quote(&name)
            ),
            orphans: format!(
                "SELECT count(*), (array_agg(x.{}::text || ' -> ' || x.{c}::text ORDER BY x.{c}))[1:5]
                 FROM {t} x WHERE x.{c} IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM {rt} r WHERE r.{rk} = x.{c})",
                quote(document_key)
            ),
            validate: format!("ALTER TABLE {t} VALIDATE CONSTRAINT {}", quote(&name)),
            target: rt.clone(),
        });
    };
    let document_key = &plan.columns[pk].name;
    for column in &plan.columns {
        if let Source::Reference(_, to) = &column.source {
            add(&plan.table, &column.name, document_key, &to.collection);
        }
    }
    for child in &plan.children {
        for column in &child.columns {
            match &column.source {
                ChildSource::Reference(_, to) | ChildSource::Element(Some(to)) => {
                    add(
                        &child.table,
                        &column.name,
                        child.document_key(),
                        &to.collection,
                    );
                }
                _ => {}
            }
        }
    }
    keys
}

/// What [`add_all`] did: its report lines, and how many keys are valid and how many
/// need attention.
#[derive(Debug, Default)]
pub(super) struct Added {
    pub(super) text: String,
    pub(super) valid: usize,
    pub(super) failures: usize,
}

/// Adds each foreign key `NOT VALID` (when not there already), counts its orphans, and
/// validates it when there are none; records each in the finish table and reports it
/// (a missing referenced table or orphans need attention).
pub(super) async fn add_all(
    client: &tokio_postgres::Client,
    run: &str,
    keys: &[ForeignKey],
) -> Result<Added, OperatorError> {
    let mut out = Added::default();
    for key in keys {
        let failed = |e| OperatorError::Pg(PgError::new(format!("adding {}", key.relationship), e));
        let target_exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&key.target])
            .await
            .map_err(failed)?
            .get(0);
        if !target_exists {
            out.failures += 1;
            let detail = format!(
                "the referenced table {} does not exist: migrate that collection too, or drop the reference from the mapping",
                key.target
            );
            record_key(client, run, key, "not valid", &detail).await?;
            let _ = writeln!(
                out.text,
                "foreign key  {}: not added: {detail}",
                key.relationship
            );
            continue;
        }
        let exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = to_regclass($2))",
                &[&key.name, &landing::identifier::quote_table(&key.table)],
            )
            .await
            .map_err(failed)?
            .get(0);
        if !exists {
            client.batch_execute(&key.add).await.map_err(failed)?;
        }
        let orphans = client.query_one(&key.orphans, &[]).await.map_err(failed)?;
        let count: i64 = orphans.get(0);
        if count == 0 {
            client.batch_execute(&key.validate).await.map_err(failed)?;
            out.valid += 1;
            record_key(client, run, key, "valid", "").await?;
            let _ = writeln!(out.text, "foreign key  {}: valid", key.relationship);
        } else {
            out.failures += 1;
            let examples: Vec<String> =
                orphans.get::<_, Option<Vec<String>>>(1).unwrap_or_default();
            let detail = format!("{count} orphans, e.g. {}", examples.join(", "));
            record_key(client, run, key, "not valid", &detail).await?;
            let _ = writeln!(
                out.text,
                "foreign key  {}: {count} orphans, e.g. {} (document -> missing key); kept NOT VALID (new rows are checked); add the missing documents or fix the references, then run finish again",
                key.relationship,
                examples.join(", ")
            );
        }
    }
    Ok(out)
}

/// Records a foreign key's state in the finish table.
async fn record_key(
    client: &tokio_postgres::Client,
    run: &str,
    key: &ForeignKey,
    state: &str,
    detail: &str,
) -> Result<(), OperatorError> {
    record(
        client,
        run,
        &key.relationship,
        "foreign key",
        state,
        detail,
        None,
    )
    .await
}
