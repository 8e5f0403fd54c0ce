//! One document to its rows: a single pass over its fields hands each to the columns
//! and child tables that read it, and what none reads to `_extra`.

use bson::{RawBsonRef, RawDocument};

use super::extra::{keep_unread, JsonObject};
use super::new_fields::FieldKind;
use super::plan::{ChildPlan, Source, TablePlan};
use super::row_error::{unreadable, RowError};
use crate::cell::{excerpt, json_cell, type_name, Cell, CellError, Refused};
use crate::column_type::ColumnType;
use crate::extjson::JsonMode;

/// One document's rows: its row in the table, and its rows in each child table (in
/// the order of [`TablePlan::children`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The cells of the table's row, in column order.
    pub cells: Vec<Cell>,
    /// Per child table, the rows of its elements.
    pub children: Vec<Vec<Vec<Cell>>>,
}

impl TablePlan {
    /// The rows for a document as it came off the wire, which may not be BSON at all.
    pub fn row_from_bytes(&self, bytes: &[u8]) -> Result<Row, RowError> {
        let doc = RawDocument::from_bytes(bytes).map_err(|e| unreadable(e.to_string()))?;
        self.row(doc)
    }

    /// The rows for one document.
    ///
    /// One pass over the document's top-level fields hands each to the columns that
    /// read it; looking each column's field up from the start of the document instead
    /// parsed every element once per column and was the consumer's largest cost.
    pub fn row(&self, doc: &RawDocument) -> Result<Row, RowError> {
        let mut top: Vec<Option<RawBsonRef<'_>>> = vec![None; self.columns.len()];
        let mut child_top: Vec<Option<RawBsonRef<'_>>> = vec![None; self.children.len()];
        let mut extra = self.read.as_ref().map(|_| JsonObject::default());
        // Cells of added columns, made while reading: a value that does not fit its
        // column goes to `_extra` instead.
        let mut added: Vec<Option<Cell>> = Vec::new();
        for element in doc.iter() {
            let (key, value) = element.map_err(|e| unreadable(e.to_string()))?;
            let key = key.as_str();
            let mut in_added_column = false;
            for (i, (slot, column)) in top.iter_mut().zip(&self.columns).enumerate() {
                // The first of duplicate keys wins, as with `RawDocument::get`.
                if slot.is_none() && column.source.top_key() == Some(key) {
                    *slot = Some(value);
                    if let Source::Added { kind, .. } = column.source {
                        if let Some(cell) = self.added_cell(value, kind, column.ty) {
                            added.resize(self.columns.len(), None);
                            added[i] = Some(cell);
                            in_added_column = true;
                        }
                    }
                }
            }
            for (slot, child) in child_top.iter_mut().zip(&self.children) {
                if slot.is_none() && child.path[0] == key {
                    *slot = Some(value);
                }
            }
            if let (Some(read), Some(extra), false) = (&self.read, extra.as_mut(), in_added_column)
            {
                keep_unread(key, value, read, "", self.options.json, extra)?;
            }
        }
        let key = self.primary_key;
        let mut cells = Vec::with_capacity(self.columns.len());
        let mut missing = Vec::new();
        for (column, value) in self.columns.iter().zip(top) {
            let cell = match &column.source {
                Source::Field(path) => {
                    let field = || path.join(".");
                    let value = descend(value, &path[1..]).map_err(|Refused(reason)| RowError {
                        field: field(),
                        expected: Some(column.ty),
                        found: "unreadable".to_string(),
                        reason,
                        excerpt: None,
                    })?;
                    if value.is_none() {
                        missing.push(Cell::Text(field()));
                    }
                    if key == Some(cells.len()) {
                        Cell::key(value, column.ty, &self.options)
                    } else {
                        Cell::convert(value, column.ty, &self.options)
                    }
                    .map_err(|e| row_error(field(), e, value))?
                }
                Source::IdText => {
                    Cell::id_text(value).map_err(|e| row_error("_id".to_string(), e, value))?
                }
                Source::Document => json_cell(RawBsonRef::Document(doc), JsonMode::Canonical)
                    .map_err(|Refused(reason)| RowError {
                        field: String::new(),
                        expected: Some(ColumnType::Jsonb),
                        found: "object".to_string(),
                        reason,
                        excerpt: None,
                    })?,
                Source::Extra => match extra.take() {
                    Some(object) if !object.is_empty() => Cell::Jsonb(object.finish()),
                    _ => Cell::Null,
                },
                // Filled below, once every field column has been read.
                Source::Missing => Cell::Null,
                Source::Added { .. } => added
                    .get_mut(cells.len())
                    .and_then(Option::take)
                    .unwrap_or(Cell::Null),
            };
            cells.push(cell);
        }
        for (cell, column) in cells.iter_mut().zip(&self.columns) {
            if column.source == Source::Missing {
                *cell = Cell::Array(ColumnType::Text, std::mem::take(&mut missing));
            }
        }
        let mut children = Vec::with_capacity(self.children.len());
        for (child, value) in self.children.iter().zip(child_top) {
            children.push(self.child_rows(child, value, &cells)?);
        }
        Ok(Row { cells, children })
    }

    /// The key column's cell for an `_id`: how the row of a document known only by its
    /// `_id` (a deleted one) is found. `None` when the `_id` does not convert to the
    /// key's type: no row can have it.
    pub fn key_cell(&self, id: RawBsonRef<'_>) -> Option<Cell> {
        let key = &self.columns[self.primary_key?];
        match &key.source {
            Source::IdText => Cell::id_text(Some(id)).ok(),
            Source::Field(path) if path.len() == 1 => {
                Cell::key(Some(id), key.ty, &self.options).ok()
            }
            _ => None,
        }
    }

    /// A value's cell in an added column, if it is of the column's kind and fits.
    fn added_cell(&self, value: RawBsonRef<'_>, kind: FieldKind, ty: ColumnType) -> Option<Cell> {
        if FieldKind::of(value) != Some(kind) {
            return None;
        }
        Cell::convert(Some(value), ty, &self.options).ok()
    }

    fn child_rows(
        &self,
        child: &ChildPlan,
        top: Option<RawBsonRef<'_>>,
        parent: &[Cell],
    ) -> Result<Vec<Vec<Cell>>, RowError> {
        let field = child.path.join(".");
        let value = descend(top, &child.path[1..]).map_err(|Refused(reason)| RowError {
            field: field.clone(),
            expected: Some(child.ty),
            found: "unreadable".to_string(),
            reason,
            excerpt: None,
        })?;
        let array = match value {
            None | Some(RawBsonRef::Null) => return Ok(Vec::new()),
            Some(RawBsonRef::Array(array)) => array,
            Some(other) => {
                return Err(RowError {
                    field,
                    expected: Some(child.ty),
                    found: type_name(other).to_string(),
                    reason: "the field lands in a child table and must be an array".to_string(),
                    excerpt: Some(excerpt(other)),
                })
            }
        };
        let parent_id = self
            .primary_key
            .and_then(|pk| parent.get(pk))
            .cloned()
            .unwrap_or(Cell::Null);
        let mut rows = Vec::new();
        for (position, element) in array.into_iter().enumerate() {
            let element = element.map_err(|e| unreadable(e.to_string()))?;
            let cell = Cell::convert(Some(element), child.ty, &self.options)
                .map_err(|e| row_error(format!("{field}.{position}"), e, Some(element)))?;
            let position = i32::try_from(position).map_err(|_| RowError {
                field: field.clone(),
                expected: Some(child.ty),
                found: "array".to_string(),
                reason: "more elements than int4 positions".to_string(),
                excerpt: None,
            })?;
            rows.push(vec![parent_id.clone(), Cell::Int4(position), cell]);
        }
        Ok(rows)
    }
}

fn row_error(field: String, e: CellError, value: Option<RawBsonRef<'_>>) -> RowError {
    RowError {
        field,
        expected: Some(e.expected),
        found: e.found.to_string(),
        reason: e.reason,
        excerpt: value.map(excerpt),
    }
}

/// Follows the rest of a dotted path from a top-level value through subdocuments. A
/// missing step, or a scalar where the path goes deeper, is a missing value.
fn descend<'a>(
    value: Option<RawBsonRef<'a>>,
    rest: &[String],
) -> Result<Option<RawBsonRef<'a>>, Refused> {
    let mut current = value;
    for key in rest {
        current = match current {
            Some(RawBsonRef::Document(inner)) => {
                inner.get(key).map_err(|e| Refused(e.to_string()))?
            }
            _ => return Ok(None),
        };
    }
    Ok(current)
}
