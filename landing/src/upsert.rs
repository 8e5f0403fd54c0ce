//! How the changes that won replace their documents' rows: one `INSERT … ON CONFLICT
//! (key) DO UPDATE` from arrays (an upsert) where that means the same as deleting the
//! row and copying the new one, which is what every other table gets.
//!
//! Why: a delete then a COPY of the same key writes a dead tuple, a new tuple and a new
//! key entry, and the COPY checks each key against the dead entry it meets in the
//! primary key (`_bt_check_unique` fetching heap tuples). An upsert finds the row once
//! and writes its new version, often without a new index entry. On the change
//! benchmark the winners' rows cost PostgreSQL about a third less time
//! (docs/performance.md).
//!
//! The two mean the same only for some tables, so [`Write::Upsert`] is taken when
//! all of these hold, read again in every change batch's transaction (after the
//! arbitration, so a column another writer added for an older version of one of the
//! batch's documents is seen):
//! - the table is a plain table (not partitioned, not foreign), without rules or
//!   row-level security, and no trigger of the user's (an upsert fires update
//!   triggers where a replaced row fired delete and insert ones, and a `BEFORE INSERT`
//!   trigger returning NULL would leave the old row instead of making a reject);
//! - every column of the table (but generated ones) is one the plan writes: a column it
//!   does not write would keep the old row's value where a new row takes its default;
//! - the plan has a key from `_id` for every winner, no child tables (their rows are
//!   deleted and copied) and no array columns (`unnest` would flatten them);
//! - the key's unique index is checked immediately (`ON CONFLICT` cannot arbitrate on
//!   a deferrable one, and would fail every batch).
//!
//! A row PostgreSQL refuses fails the statement; the batch then lands on the careful
//! path ([`crate::landing`]), which deletes and copies and isolates the refused rows.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::cell::Cell;
use crate::identifier::{quote, quote_table};
use crate::mapping::{Row, TablePlan};
use crate::pg::{self, Doing, PgError};
use crate::session::Tx;

/// How a batch's rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Binary COPY, after the rows they replace were deleted.
    Copy,
    /// One upsert: the rows they replace are updated in place.
    Upsert,
}

/// Whether the plan's rows can be upserted at all, before asking the table: a key,
/// no child tables, no array columns.
pub(crate) fn plan_fits(plan: &TablePlan) -> bool {
    plan.primary_key.is_some()
        && plan.children.is_empty()
        && plan.columns.iter().all(|c| c.ty.element().is_none())
}

/// Whether the table, as it stands now, takes an upsert as it would a delete then a
/// copy (see the module's list). `attgenerated` is read through `to_jsonb`: before
/// PostgreSQL 12 the column does not exist (nor do generated columns), and an error
/// here would fail the batch's transaction.
pub(crate) async fn table_fits(tx: &Tx<'_>, plan: &TablePlan) -> Result<bool, PgError> {
    let Some(pk) = plan.primary_key else {
        return Ok(false);
    };
    let key = plan.columns[pk].name.as_str();
    let columns = i64::try_from(plan.columns.len()).unwrap_or(i64::MAX);
    let row = tx
        .query_opt(
            "SELECT c.relkind = 'r' AND NOT c.relrowsecurity AND NOT c.relhasrules
                AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal)
                AND (SELECT count(*) FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                       AND coalesce(to_jsonb(a) ->> 'attgenerated', '') = '') = $2
                AND EXISTS (SELECT 1 FROM pg_index i
                     JOIN pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = i.indkey[0]
                     WHERE i.indrelid = c.oid AND i.indisunique AND i.indimmediate
                       AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL
                       AND k.attname = $3)
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&quote_table(&plan.table), &columns, &key],
        )
        .await
        .doing("reading how the table's rows can be replaced")?;
    match row {
        Some(row) => row
            .try_get(0)
            .doing("reading how the table's rows can be replaced"),
        None => Ok(false),
    }
}

/// Writes `rows` by one upsert on the plan's key; returns the rows written. The plan
/// must [fit](plan_fits) and the rows' keys be distinct.
pub(crate) async fn upsert_rows(
    tx: &Tx<'_>,
    plan: &TablePlan,
    rows: &[Row],
) -> Result<u64, tokio_postgres::Error> {
    let Some(pk) = plan.primary_key else {
        return Ok(0);
    };
    if rows.is_empty() {
        return Ok(0);
    }
    let columns: Vec<Vec<&Cell>> = (0..plan.columns.len())
        .map(|i| rows.iter().map(|row| &row.cells[i]).collect())
        .collect();
    let params: Vec<&(dyn ToSql + Sync)> = columns
        .iter()
        .map(|column| column as &(dyn ToSql + Sync))
        .collect();
    tx.execute(&statement(plan, pk), &params).await
}

/// The upsert of the plan's columns from one array parameter each.
fn statement(plan: &TablePlan, pk: usize) -> String {
    let names: Vec<String> = plan.columns.iter().map(|c| quote(&c.name)).collect();
    let arrays: Vec<String> = plan
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, c.ty.sql()))
        .collect();
    // A table of the key alone still needs something to set.
    let set: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != pk || plan.columns.len() == 1)
        .map(|(_, name)| format!("{name} = excluded.{name}"))
        .collect();
    format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({}) ON CONFLICT ({}) DO UPDATE SET {}",
        quote_table(&plan.table),
        names.join(", "),
        arrays.join(", "),
        names[pk],
        set.join(", ")
    )
}

/// Whether the upsert failed for its rows (a value or a constraint, or two rows of one
/// key), so the batch lands on the careful path, rather than for the connection.
pub(crate) fn refused(err: &tokio_postgres::Error) -> bool {
    pg::is_row_error(err) || err.code() == Some(&SqlState::CARDINALITY_VIOLATION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MappingFile;

    #[test]
    fn the_statement_sets_every_column_but_the_key() {
        let mapping: MappingFile = toml::from_str(
            r#"
            [collections.users]
            table = "people"
            columns = [
              { name = "id", path = "_id", type = "text" },
              { name = "name", path = "name", type = "text" },
              { name = "age", path = "age", type = "int4" },
            ]
            "#,
        )
        .expect("parses");
        let plan = mapping.plan("users");
        assert!(plan_fits(&plan));
        assert_eq!(
            statement(&plan, 0),
            "INSERT INTO \"people\" (\"id\", \"name\", \"age\", \"_extra\") \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::jsonb[]) \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"age\" = excluded.\"age\", \
             \"_extra\" = excluded.\"_extra\""
        );
    }
}
