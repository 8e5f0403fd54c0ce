//! Reading the target's rows for a range's keys, fingerprinted like the source's.

use std::collections::HashMap;

use std::borrow::Cow;

use super::fingerprint::{child_columns, compared, Fingerprint, RawValue};
use landing::cell::Cell;
use landing::column_type::ColumnType;
use landing::identifier::{quote, quote_table};
use tokio_postgres::types::ToSql;

use super::VerifyError;
use super::{Check, Seen};

impl Check<'_> {
    /// Fingerprints of the target's rows (with their child rows) for a range's keys,
    /// by the key's binary value.
    pub(super) async fn target_fingerprints(
        &mut self,
        range: &[Seen],
    ) -> Result<HashMap<Vec<u8>, Stored>, VerifyError> {
        let plan = self.plan;
        let Some(pk) = plan.primary_key else {
            return Ok(HashMap::new());
        };
        let pk_type = plan.columns[pk].ty;
        let keys: Vec<&Cell> = range.iter().filter_map(|s| s.key_cell.as_ref()).collect();
        let columns: Vec<String> = plan.columns.iter().map(|c| quote(&c.name)).collect();
        let types: Vec<ColumnType> = plan.columns.iter().map(|c| c.ty).collect();
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {} FROM {} WHERE {} = ANY($1::{}[])",
                    columns.join(", "),
                    quote_table(&plan.table),
                    quote(&plan.columns[pk].name),
                    pk_type.sql()
                ),
                &[&keys as &(dyn ToSql + Sync)],
            )
            .await
            .map_err(|e| self.failed("reading the target", e))?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let values =
                read_values(row, &types).map_err(|e| self.failed("reading the target", e))?;
            let key = values[pk].map(<[u8]>::to_vec).unwrap_or_default();
            let values: Vec<Option<Cow<'_, [u8]>>> = plan
                .columns
                .iter()
                .zip(values)
                .map(|(column, value)| value.map(|v| compared(column.sealed_with(), v)))
                .collect();
            let fp = Fingerprint::of_row(
                None,
                types
                    .iter()
                    .copied()
                    .zip(values.iter().map(|v| v.as_deref())),
            )
            .map_err(|e| self.failed("reading the target", e))?;
            found.insert(
                key,
                Stored {
                    has_row: true,
                    fingerprint: fp,
                },
            );
        }
        for i in 0..plan.children.len() {
            for (key, fp) in self.child_fingerprints(i, &keys).await? {
                // A child row whose parent is gone is remembered, not taken for a row.
                found.entry(key).or_default().fingerprint.add(fp);
            }
        }
        Ok(found)
    }
}

impl Check<'_> {
    /// The fingerprint of each row child table `i` holds for the documents' `keys`,
    /// with the document's key as PostgreSQL sent it.
    pub(super) async fn child_fingerprints(
        &mut self,
        i: usize,
        keys: &[&Cell],
    ) -> Result<Vec<(Vec<u8>, Fingerprint)>, VerifyError> {
        let plan = self.plan;
        let Some(pk) = plan.primary_key else {
            return Ok(Vec::new());
        };
        let child = &plan.children[i];
        let (types, sealed): (Vec<ColumnType>, Vec<_>) = child_columns(child).unzip();
        let columns: Vec<String> = child.columns.iter().map(|c| quote(&c.name)).collect();
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT {} FROM {} WHERE {} = ANY($1::{}[])",
                    columns.join(", "),
                    quote_table(&child.table),
                    quote(child.document_key()),
                    plan.columns[pk].ty.sql()
                ),
                &[&keys as &(dyn ToSql + Sync)],
            )
            .await
            .map_err(|e| self.failed("reading a child table", e))?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let values =
                read_values(row, &types).map_err(|e| self.failed("reading a child table", e))?;
            let key = values[0].map(<[u8]>::to_vec).unwrap_or_default();
            let values: Vec<Option<Cow<'_, [u8]>>> = sealed
                .iter()
                .zip(values)
                .map(|(k, value)| value.map(|v| compared(*k, v)))
                .collect();
            let fp = Fingerprint::of_row(
                Some(i),
                types
                    .iter()
                    .copied()
                    .zip(values.iter().map(|v| v.as_deref())),
            )
            .map_err(|e| self.failed("reading a child table", e))?;
            found.push((key, fp));
        }
        Ok(found)
    }
}

/// What the target holds for one key.
#[derive(Debug, Default)]
pub(super) struct Stored {
    /// The table has a row with the key (child rows alone do not make one).
    pub(super) has_row: bool,
    pub(super) fingerprint: Fingerprint,
}

/// A row's values as PostgreSQL sent them.
fn read_values<'r>(
    row: &'r tokio_postgres::Row,
    types: &[ColumnType],
) -> Result<Vec<Option<&'r [u8]>>, tokio_postgres::Error> {
    (0..types.len())
        .map(|i| {
            row.try_get::<_, Option<RawValue<'r>>>(i)
                .map(|v| v.map(|raw| raw.0))
        })
        .collect()
}
