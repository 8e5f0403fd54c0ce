//! A collection's child tables: one row per element of an array, in the document or
//! in an element of a parent child table, and how each of their columns is filled.

use std::sync::Arc;

use super::file::{ChildMapping, MappingFile, Naming, EXTRA_COLUMN};
use super::path_tree::{split_path, PathTree};
use super::reference::Reference;
use super::table_name::{generated_table, qualified};
use crate::column_type::ColumnType;
use crate::identifier::{self, Taken};
use crate::transform::{Chain, ChainError};

/// A child table: one row per element of an array, in the document or in an element
/// of its parent child table.
#[derive(Debug, Clone)]
pub struct ChildPlan {
    /// The table.
    pub table: String,
    /// The child table whose elements hold this array (an index into
    /// [`TablePlan::children`], always lower than this one's); `None`: the document.
    pub parent: Option<usize>,
    /// The array's path from the document, or from the parent's element.
    pub path: Vec<String>,
    /// The array's path from the document, dotted (`items.options`), for messages.
    pub shown: String,
    /// Its columns, in COPY order; the first holds the document's key.
    pub columns: Vec<ChildColumn>,
    /// Indexes of the primary key's columns: the document's key, the parent
    /// element's key, the element's position or key field.
    pub primary_key: Vec<usize>,
    /// The element fields its columns and child tables read; `None` for an array of
    /// scalars.
    pub(super) read: Option<PathTree>,
}

/// One column of a child table.
#[derive(Debug, Clone)]
pub struct ChildColumn {
    /// The column's name.
    pub name: String,
    /// Where its value comes from.
    pub source: ChildSource,
    /// Its type.
    pub ty: ColumnType,
    /// `NOT NULL`: an element without a value is a reject.
    pub required: bool,
    /// What is done to a field's value first (see [`ColumnPlan::transform`]).
    pub transform: Option<Result<Arc<Chain>, ChainError>>,
}

/// Where a child table's column gets its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildSource {
    /// The document's key.
    Document,
    /// A key column of the parent element's row, by index.
    Parent(usize),
    /// The element's position in its array, from 0.
    Position,
    /// The element itself (an array of scalars), as its type or as a reference.
    Element(Option<Reference>),
    /// A field of the element (an array of subdocuments), by path.
    Field(Vec<String>),
    /// A field of the element holding another document's `_id`.
    Reference(Vec<String>, Reference),
    /// The element's fields no column reads, as a jsonb object.
    Extra,
}

impl ChildPlan {
    /// The column holding the document's key: what a document's child rows are found
    /// (and deleted) by.
    pub fn document_key(&self) -> &str {
        &self.columns[0].name
    }
}

impl ChildColumn {
    /// The key the column's values are sealed with (`encrypt`, `reencrypt`).
    pub fn sealed_with(&self) -> Option<&crate::transform::keys::Secret> {
        self.transform.as_ref()?.as_ref().ok()?.sealed_with()
    }
}

/// What every child table of one collection shares.
pub(super) struct ChildContext<'a> {
    pub(super) file: &'a MappingFile,
    pub(super) naming: Naming,
    pub(super) schema: Option<String>,
    pub(super) document_key: ColumnType,
}

impl ChildContext<'_> {
    /// Adds the plan of `mapping`'s table, then its own child tables', to `out`.
    pub(super) fn plan(
        &self,
        mapping: &ChildMapping,
        parent_table: &str,
        parent: Option<usize>,
        out: &mut Vec<ChildPlan>,
    ) {
        let path = split_path(&mapping.path);
        let shown = match parent {
            Some(p) => format!("{}.{}", out[p].shown, mapping.path),
            None => mapping.path.clone(),
        };
        let name = mapping.table.clone().unwrap_or_else(|| {
            generated_table(self.naming, &format!("{parent_table}_{}", mapping.path))
        });
        let table = qualified(self.schema.as_ref(), name);
        let mut taken = Taken::default();
        for name in mapping.columns.iter().filter_map(|c| c.name.as_deref()) {
            taken.claim(name);
        }
        let column = |name: String, source, ty, required| ChildColumn {
            name,
            source,
            ty,
            required,
            transform: None,
        };
        let document_key = mapping
            .parent_column
            .clone()
            .unwrap_or_else(|| "_parent".to_string());
        taken.claim(&document_key);
        let mut columns = vec![column(
            document_key,
            ChildSource::Document,
            self.document_key,
            true,
        )];
        // A nested table carries its parent element's key: the parent's own key
        // column gets the parent array's name (`_items_position`).
        if let Some(p) = parent {
            let above = &out[p];
            let segment = self
                .naming
                .apply(above.path.last().map_or("", String::as_str));
            for &k in above.primary_key.iter().skip(1) {
                let key = &above.columns[k];
                let name = match key.source {
                    ChildSource::Parent(_) => key.name.clone(),
                    _ => format!("_{segment}_{}", key.name.trim_start_matches('_')),
                };
                let name = taken.generate(&name);
                columns.push(column(name, ChildSource::Parent(k), key.ty, true));
            }
        }
        let mut primary_key: Vec<usize> = (0..columns.len()).collect();
        if mapping.key.is_none() {
            let name = taken.generate("_position");
            primary_key.push(columns.len());
            columns.push(column(name, ChildSource::Position, ColumnType::Int4, true));
        }
        let read = match mapping.ty {
            Some(ty) => {
                let name = mapping
                    .name
                    .clone()
                    .unwrap_or_else(|| taken.generate("value"));
                let to = mapping
                    .references
                    .as_ref()
                    .map(|c| Reference::to(self.file, c));
                columns.push(column(name, ChildSource::Element(to), ty, false));
                None
            }
            None => {
                let mut read = PathTree::default();
                for c in &mapping.columns {
                    let path = split_path(&c.path);
                    read.insert(&path);
                    let is_key = mapping.key.as_deref() == Some(c.path.as_str());
                    if is_key {
                        primary_key.push(columns.len());
                    }
                    let name = c.name.clone().unwrap_or_else(|| {
                        taken.generate(&self.naming.apply(&c.path.replace('.', "_")))
                    });
                    let source = match &c.references {
                        Some(to) => ChildSource::Reference(path, Reference::to(self.file, to)),
                        None => ChildSource::Field(path),
                    };
                    let mut planned = column(name, source, c.ty, c.required || is_key);
                    planned.transform = self.file.compiled(&c.transform, c.ty);
                    columns.push(planned);
                }
                for nested in &mapping.children {
                    read.insert(&split_path(&nested.path));
                }
                columns.push(column(
                    taken.generate(EXTRA_COLUMN),
                    ChildSource::Extra,
                    ColumnType::Jsonb,
                    false,
                ));
                Some(read)
            }
        };
        let index = out.len();
        let table_name = identifier::split_table(&table).1.to_string();
        out.push(ChildPlan {
            table,
            parent,
            path,
            shown,
            columns,
            primary_key,
            read,
        });
        for nested in &mapping.children {
            self.plan(nested, &table_name, Some(index), out);
        }
    }
}
