//! What `finish` works with: one of MongoDB's indexes and what becomes of it
//! ([`Translated`]), the PostgreSQL index to build ([`Index`]), and where a MongoDB
//! path landed in the tables ([`Located`]).

use landing::column_type::ColumnType;
use landing::identifier::{self, quote, split_table};
use landing::mapping::{ChildSource, Source, TablePlan};

/// One of MongoDB's indexes, and what becomes of it.
#[derive(Debug, Clone)]
pub(super) struct Translated {
    /// The collection and MongoDB's name of the index (`users.email_1`).
    pub(super) source: String,
    /// The PostgreSQL index, when there is one.
    pub(super) index: Option<Index>,
    /// What the reader should know: no counterpart, a part left out, a difference.
    pub(super) notes: Vec<String>,
    /// A counterpart exists but cannot be built in this database yet (an extension is
    /// missing): a failure to fix, unlike an index without a counterpart.
    pub(super) blocked: bool,
}

/// A PostgreSQL index to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Index {
    /// Its name, fitted to PostgreSQL's limits.
    pub(super) name: String,
    /// Its table, maybe schema-qualified.
    pub(super) table: String,
    /// `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS …`.
    pub(super) sql: String,
    /// The extension it needs (`postgis`): without it in the database, the index is
    /// reported instead of built.
    pub(super) extension: Option<&'static str>,
}

impl Index {
    /// The index's schema, if the table names one.
    pub(super) fn schema(&self) -> Option<&str> {
        split_table(&self.table).0
    }
}

/// Where a MongoDB path landed: a table and one of its columns, or a path inside one
/// of its jsonb columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Located {
    pub(super) table: String,
    pub(super) column: String,
    /// In a child table: MongoDB's index is multikey there.
    pub(super) child: bool,
    /// Inside the jsonb column, at this path: the index is on an expression.
    pub(super) inside: Option<Vec<String>>,
}

impl Located {
    /// The column, or the expression reading the path inside it as text.
    pub(super) fn sql(&self) -> String {
        self.reading("#>>")
    }

    /// The column, or the expression reading the path inside it as jsonb.
    pub(super) fn jsonb_sql(&self) -> String {
        self.reading("#>")
    }

    fn reading(&self, operator: &str) -> String {
        match &self.inside {
            None => quote(&self.column),
            Some(path) => {
                let steps: Vec<String> = path
                    .iter()
                    .map(|s| s.replace(['{', '}', ',', '"', '\''], ""))
                    .collect();
                format!(
                    "({} {operator} '{{{}}}')",
                    quote(&self.column),
                    steps.join(",")
                )
            }
        }
    }
}

/// The table and column holding a dotted path, through the mapping.
pub(super) fn locate(plan: &TablePlan, path: &str) -> Option<Located> {
    if path == "_id" {
        let pk = plan.primary_key?;
        return Some(Located {
            table: plan.table.clone(),
            column: plan.columns[pk].name.clone(),
            child: false,
            inside: None,
        });
    }
    for column in &plan.columns {
        if let Source::Field(p) | Source::Reference(p, _) = &column.source {
            if p.join(".") == path {
                return Some(Located {
                    table: plan.table.clone(),
                    column: column.name.clone(),
                    child: false,
                    inside: None,
                });
            }
        }
    }
    // The deepest child table whose array holds the path.
    let mut children: Vec<_> = plan.children.iter().collect();
    children.sort_by_key(|c| std::cmp::Reverse(c.shown.len()));
    for child in children {
        let rest = if path == child.shown {
            ""
        } else if let Some(rest) = path.strip_prefix(&format!("{}.", child.shown)) {
            rest
        } else {
            continue;
        };
        for column in &child.columns {
            let found = match &column.source {
                ChildSource::Element(_) => rest.is_empty(),
                ChildSource::Field(p) | ChildSource::Reference(p, _) => p.join(".") == rest,
                _ => false,
            };
            if found {
                return Some(Located {
                    table: child.table.clone(),
                    column: column.name.clone(),
                    child: true,
                    inside: None,
                });
            }
        }
        // Inside an array: no expression reaches every element.
        if !rest.is_empty() {
            return None;
        }
    }
    inside_jsonb(plan, path)
}

/// A path kept in a jsonb column: under a jsonb column's own path, in the default
/// table's `doc`, or in `_extra` (a field no column reads).
fn inside_jsonb(plan: &TablePlan, path: &str) -> Option<Located> {
    let steps: Vec<String> = path.split('.').map(str::to_string).collect();
    let at = |column: &str, inside: Vec<String>| Located {
        table: plan.table.clone(),
        column: column.to_string(),
        child: false,
        inside: Some(inside),
    };
    for column in &plan.columns {
        match &column.source {
            Source::Field(p)
                if column.ty == ColumnType::Jsonb
                    && steps.starts_with(p)
                    && steps.len() > p.len() =>
            {
                return Some(at(&column.name, steps[p.len()..].to_vec()));
            }
            Source::Document => return Some(at(&column.name, steps)),
            _ => {}
        }
    }
    let read_elsewhere = plan.columns.iter().any(|c| matches!(&c.source, Source::Field(p) | Source::Reference(p, _) if steps.starts_with(p) || p.starts_with(&steps)))
        || plan.children.iter().any(|c| c.parent.is_none() && (steps.starts_with(&c.path) || c.path.starts_with(&steps)));
    if read_elsewhere {
        return None;
    }
    plan.columns
        .iter()
        .find(|c| c.source == Source::Extra)
        .map(|c| at(&c.name, steps))
}

/// The name of the PostgreSQL index for MongoDB's index `name` on `table`
/// (`userId_1_createdAt_-1` on orders: `orders_userId_1_createdAt_desc`).
pub(super) fn index_name(table: &str, name: &str) -> String {
    let cleaned: String = name
        .replace("-1", "desc")
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    identifier::fitted(&format!(
        "{}_{}",
        split_table(table).1,
        cleaned.trim_matches('_')
    ))
}
