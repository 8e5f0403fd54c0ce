//! Foreign keys from the mapping's references: every reference column and join table
//! refers to the referenced collection's table by its key.
//!
//! Added `NOT VALID` (no scan, no long lock), its orphans counted, then validated
//! when there are none; with orphans it stays `NOT VALID`, which still holds every
//! new row, and the report names them.

use landing::identifier::{self, quote, quote_table, split_table};
use landing::mapping::{ChildSource, MappingFile, Source, TablePlan};

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
