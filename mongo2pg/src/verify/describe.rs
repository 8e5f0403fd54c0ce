//! Printing a difference: which columns differ, as PostgreSQL renders both values,
//! and for jsonb the path inside the document where they part.

use std::fmt::Write as _;

use bson::{doc, Bson, RawDocumentBuf};
use common::naming::REJECTS_TABLE;
use landing::column_type::ColumnType;
use landing::identifier::{quote, quote_table};

use super::fingerprint::{cell_bytes, child_columns, compared, Fingerprint};
use super::VerifyError;
use super::{Check, Seen, Verdict};

impl Check<'_> {
    /// Prints one difference, column by column for the first `--show`.
    pub(super) async fn describe(
        &mut self,
        seen: &Seen,
        verdict: &Verdict,
    ) -> Result<(), VerifyError> {
        if self.shown >= self.config.show || matches!(verdict, Verdict::Equal | Verdict::Rejected) {
            return Ok(());
        }
        self.shown += 1;
        let id = &seen.id_text;
        match verdict {
            Verdict::Equal | Verdict::Rejected => {}
            Verdict::Missing => {
                let _ = writeln!(
                    self.report.text,
                    "    missing  _id {id}: not in the table, not in {REJECTS_TABLE}"
                );
            }
            Verdict::Unmapped(reason) => {
                let _ = writeln!(
                    self.report.text,
                    "    unmapped _id {id}: the mapping refuses it ({reason}) but it is not in {REJECTS_TABLE}"
                );
            }
            Verdict::Differs => {
                let columns = self.column_differences(&seen.id).await?;
                let _ = writeln!(self.report.text, "    differs  _id {id}: {columns}");
            }
        }
        Ok(())
    }

    /// Which columns of a document's row differ, as PostgreSQL renders both values.
    async fn column_differences(&mut self, id: &Bson) -> Result<String, VerifyError> {
        let plan = self.plan;
        let Some(pk) = plan.primary_key else {
            return Ok(String::new());
        };
        let source = self.database.collection::<RawDocumentBuf>(self.collection);
        let Some(raw) = source
            .find_one(doc! { "_id": id.clone() })
            .await
            .map_err(|e| self.failed("reading the source", e))?
        else {
            return Ok("gone from the source since".to_string());
        };
        let Ok(row) = plan.row(&raw) else {
            return Ok("no longer maps".to_string());
        };
        let mut parts = Vec::new();
        for (i, column) in plan.columns.iter().enumerate() {
            let ty = column.ty.sql();
            let name = quote(&column.name);
            if column.sealed_with().is_some() {
                let target: Option<Option<Vec<u8>>> = self
                    .client
                    .query_opt(
                        &format!(
                            "SELECT t.{name} FROM {} t WHERE t.{} = $1::{}",
                            quote_table(&plan.table),
                            quote(&plan.columns[pk].name),
                            plan.columns[pk].ty.sql()
                        ),
                        &[&row.cells[pk]],
                    )
                    .await
                    .map_err(|e| self.failed("comparing columns", e))?
                    .map(|r| r.get(0));
                let source = cell_bytes(&row.cells[i], column.ty)
                    .map_err(|e| self.failed("comparing columns", e))?;
                let opened = |b: &Option<Vec<u8>>| {
                    b.as_deref()
                        .map(|b| compared(column.sealed_with(), b).into_owned())
                };
                if opened(&source) != opened(&target.unwrap_or_default()) {
                    // Neither plaintext is shown: the column is encrypted for a reason.
                    parts.push(format!(
                        "column {:?}: its decrypted value differs (not shown)",
                        column.name
                    ));
                }
                continue;
            }
            let rendered = self
                .client
                .query_opt(
                    &format!(
                        "SELECT ($1::{ty})::text, t.{name}::text, ($1::{ty}) IS NOT DISTINCT FROM t.{name}
                         FROM {} t WHERE t.{} = $2::{}",
                        quote_table(&plan.table),
                        quote(&plan.columns[pk].name),
                        plan.columns[pk].ty.sql()
                    ),
                    &[&row.cells[i], &row.cells[pk]],
                )
                .await
                .map_err(|e| self.failed("comparing columns", e))?;
            let Some(rendered) = rendered else {
                return Ok("no row with its key".to_string());
            };
            let same: Option<bool> = rendered.get(2);
            let source: Option<String> = rendered.get(0);
            let target: Option<String> = rendered.get(1);
            let json = |text: &Option<String>| {
                text.as_deref()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            };
            if column.ty == ColumnType::Jsonb {
                if let Some((path, a, b)) = json_difference(&json(&source), &json(&target)) {
                    parts.push(format!(
                        "column {:?} at {path:?}: source {}, target {}",
                        column.name,
                        shown(a),
                        shown(b)
                    ));
                }
            } else if same != Some(true) {
                parts.push(format!(
                    "column {:?}: source {}, target {}",
                    column.name,
                    shown(source),
                    shown(target)
                ));
            }
        }
        for (i, child) in plan.children.iter().enumerate() {
            let mut source = Fingerprint::default();
            for cells in &row.children[i] {
                source.add(
                    Fingerprint::of_cells(Some(i), child_columns(child), cells)
                        .map_err(|e| self.failed("comparing child rows", e))?,
                );
            }
            let found = self.child_fingerprints(i, &[&row.cells[pk]]).await?;
            let mut target = Fingerprint::default();
            for (_, fp) in &found {
                target.add(*fp);
            }
            if source != target {
                parts.push(format!(
                    "its rows in {} differ (source {}, target {})",
                    child.table,
                    row.children[i].len(),
                    found.len()
                ));
            }
        }
        if parts.is_empty() {
            // The fingerprints saw what the column reading did not.
            parts.push("its fingerprint differs while every column reads equal (a jsonb value equal as JSON but written otherwise, say)".to_string());
        }
        Ok(parts.join("; "))
    }
}

/// The first place two JSON values differ: its dotted path and both sides there
/// (`None` for absent); `None` when they are equal.
fn json_difference(
    a: &Option<serde_json::Value>,
    b: &Option<serde_json::Value>,
) -> Option<(String, Option<String>, Option<String>)> {
    use serde_json::Value;
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                json_difference(&x.get(key).cloned(), &y.get(key).cloned())
                    .map(|(path, l, r)| (join_path(key, &path), l, r))
            })
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => (0..x.len().max(y.len())).find_map(|i| {
            json_difference(&x.get(i).cloned(), &y.get(i).cloned())
                .map(|(path, l, r)| (join_path(&i.to_string(), &path), l, r))
        }),
        _ if a == b => None,
        _ => Some((
            String::new(),
            a.as_ref().map(Value::to_string),
            b.as_ref().map(Value::to_string),
        )),
    }
}

fn join_path(key: &str, rest: &str) -> String {
    if rest.is_empty() {
        key.to_string()
    } else {
        format!("{key}.{rest}")
    }
}

/// A value for a difference line, cut short.
fn shown(value: Option<String>) -> String {
    match value {
        None => "NULL".to_string(),
        Some(text) => {
            let cut: String = text.chars().take(80).collect();
            if cut.len() < text.len() {
                format!("{cut}…")
            } else {
                cut
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_differences_name_their_path() {
        let a = Some(json!({ "a": 1, "b": { "c": [1, 2] } }));
        let b = Some(json!({ "b": { "c": [1, 3] }, "a": 1 }));
        assert_eq!(
            json_difference(&a, &b),
            Some((
                "b.c.1".to_string(),
                Some("2".to_string()),
                Some("3".to_string())
            ))
        );
        assert_eq!(json_difference(&a, &a.clone()), None);
        let c = Some(json!({ "a": 1 }));
        assert_eq!(json_difference(&c, &a).map(|d| d.0), Some("b".to_string()));
    }
}
