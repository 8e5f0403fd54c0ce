//! One document to its rows: a single pass over its fields hands each to the columns
//! and child tables that read it, and what none reads to `_extra`.

use bson::{RawBsonRef, RawDocument};

use super::child_plan::ChildSource;
use super::extra::{keep_unread, JsonObject};
use super::new_fields::FieldKind;
use super::plan::{Source, TablePlan};
use super::row_error::{unreadable, RejectKind, RowError};
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

/// Columns whose top-level values [`TablePlan::row`] holds on the stack; a wider table
/// allocates them.
const TOP_ON_STACK: usize = 32;

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
        // Each column's top-level value, on the stack for the usual table.
        let mut on_stack: [Option<RawBsonRef<'_>>; TOP_ON_STACK] = [None; TOP_ON_STACK];
        let mut on_heap: Vec<Option<RawBsonRef<'_>>> = Vec::new();
        let top: &mut [Option<RawBsonRef<'_>>] = match on_stack.get_mut(..self.columns.len()) {
            Some(top) => top,
            None => {
                on_heap.resize(self.columns.len(), None);
                &mut on_heap
            }
        };
        let mut child_top: Vec<Option<RawBsonRef<'_>>> = vec![None; self.children.len()];
        let mut extra = self.read.as_ref().map(|_| JsonObject::default());
        // Cells of added columns, made while reading: a value that does not fit its
        // column goes to `_extra` instead.
        let mut added: Vec<Option<Cell>> = Vec::new();
        let readers = self.field_readers();
        let mut keys_seen = readers.learning().then(Vec::new);
        for (position, element) in doc.iter().enumerate() {
            let (key, value) = element.map_err(|e| unreadable(e.to_string()))?;
            let key = key.as_str();
            if let Some(seen) = keys_seen.as_mut() {
                seen.push(key);
            }
            let mut in_added_column = false;
            // A column reads the whole field: none of it is left for `_extra`.
            let mut read_whole = false;
            let (columns, children) = readers
                .find(key, position)
                .map_or((&[][..], &[][..]), |r| (&r.columns[..], &r.children[..]));
            for &i in columns {
                let column = &self.columns[i];
                read_whole |= column.source.reads_whole_field();
                // The first of duplicate keys wins, as with `RawDocument::get`.
                if top[i].is_none() {
                    top[i] = Some(value);
                    if let Source::Added { kind, .. } = column.source {
                        if let Some(cell) = self.added_cell(value, kind, column.ty) {
                            added.resize(self.columns.len(), None);
                            added[i] = Some(cell);
                            in_added_column = true;
                        }
                    }
                }
            }
            for &i in children {
                if child_top[i].is_none() {
                    child_top[i] = Some(value);
                }
            }
            if let (Some(read), Some(extra), false) =
                (&self.read, extra.as_mut(), in_added_column || read_whole)
            {
                keep_unread(key, value, read, "", self.options.json, extra)?;
            }
        }
        if let Some(seen) = keys_seen {
            readers.learn(seen);
        }
        let key = self.primary_key;
        let mut cells = Vec::with_capacity(self.columns.len());
        let mut missing = Vec::new();
        // The document as computed columns read it, made by the first of them.
        let mut cel_doc = None;
        for (column, value) in self.columns.iter().zip(top.iter().copied()) {
            let cell = match &column.source {
                Source::Field(path) | Source::Reference(path, _) => {
                    let field = || path.join(".");
                    let value = descend(value, &path[1..]).map_err(|Refused(reason)| RowError {
                        field: field(),
                        expected: Some(column.ty),
                        found: "unreadable".to_string(),
                        reason,
                        excerpt: None,
                        kind: RejectKind::Unreadable,
                    })?;
                    if value.is_none() {
                        missing.push(Cell::Text(field()));
                    }
                    if let Some(transform) = &column.transform {
                        let refused = |reason: String| RowError {
                            field: field(),
                            expected: Some(column.ty),
                            found: value.map_or("missing", type_name).to_string(),
                            reason,
                            excerpt: None,
                            kind: RejectKind::Transform,
                        };
                        let chain = transform.as_ref().map_err(|e| refused(e.to_string()))?;
                        let cell = chain.apply(value).map_err(refused)?;
                        if column.required && cell == Cell::Null {
                            return Err(required(field(), column.ty));
                        }
                        cells.push(cell);
                        continue;
                    }
                    match &column.source {
                        Source::Reference(_, to) => to.cell(value, column.ty),
                        _ if key == Some(cells.len()) => Cell::key(value, column.ty, &self.options),
                        _ => Cell::convert(value, column.ty, &self.options),
                    }
                    .map_err(|e| row_error(field(), e, value))?
                }
                Source::IdText => {
                    Cell::id_text(value).map_err(|e| row_error("_id".to_string(), e, value))?
                }
                Source::IdUuid => Cell::uuid_of_object_id(value)
                    .map_err(|e| row_error("_id".to_string(), e, value))?,
                Source::Document => json_cell(RawBsonRef::Document(doc), JsonMode::Canonical)
                    .map_err(|Refused(reason)| RowError {
                        field: String::new(),
                        expected: Some(ColumnType::Jsonb),
                        found: "object".to_string(),
                        reason,
                        excerpt: None,
                        kind: RejectKind::Type,
                    })?,
                Source::Extra => match extra.take() {
                    Some(object) if !object.is_empty() => Cell::Jsonb(object.finish()),
                    _ => Cell::Null,
                },
                // Filled below, once every field column has been read.
                Source::Missing => Cell::Null,
                Source::Computed(expression) => {
                    let refused = |reason: String| RowError {
                        field: column.name.clone(),
                        expected: Some(column.ty),
                        found: "expression".to_string(),
                        reason,
                        excerpt: None,
                        kind: RejectKind::Expression,
                    };
                    let expression = expression
                        .as_ref()
                        .ok_or_else(|| refused("the expression was not compiled".to_string()))?;
                    let as_cel = cel_doc.get_or_insert_with(|| super::computed::document(doc));
                    expression
                        .cell(as_cel, column.ty, !self.withheld.is_empty())
                        .map_err(refused)?
                }
                Source::Added { .. } => added
                    .get_mut(cells.len())
                    .and_then(Option::take)
                    .unwrap_or(Cell::Null),
            };
            if column.required && cell == Cell::Null {
                return Err(required(column.source.path_shown(), column.ty));
            }
            cells.push(cell);
        }
        for (cell, column) in cells.iter_mut().zip(&self.columns) {
            if column.source == Source::Missing {
                *cell = Cell::Array(ColumnType::Text, std::mem::take(&mut missing));
            }
        }
        let mut children = vec![Vec::new(); self.children.len()];
        if self.children.is_empty() {
            return Ok(Row { cells, children });
        }
        // Each child row carries its document's key.
        let document_key = self
            .primary_key
            .and_then(|pk| cells.get(pk))
            .cloned()
            .unwrap_or(Cell::Null);
        for (index, (child, value)) in self.children.iter().zip(child_top).enumerate() {
            if child.parent.is_some() {
                continue;
            }
            let array = descend(value, &child.path[1..]).map_err(|Refused(reason)| RowError {
                field: child.shown.clone(),
                expected: None,
                found: "unreadable".to_string(),
                reason,
                excerpt: None,
                kind: RejectKind::Unreadable,
            })?;
            let scope = Scope {
                document_key: &document_key,
                parent: &[],
                shown: child.shown.clone(),
            };
            self.child_rows(index, array, &scope, &mut children)?;
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
            Source::IdUuid => Cell::uuid_of_object_id(Some(id)).ok(),
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

    /// The rows of child table `index` for one array (and, through its elements, of
    /// the child tables below it), added to `out`.
    fn child_rows(
        &self,
        index: usize,
        value: Option<RawBsonRef<'_>>,
        scope: &Scope<'_>,
        out: &mut [Vec<Vec<Cell>>],
    ) -> Result<(), RowError> {
        let child = &self.children[index];
        let array = match value {
            None | Some(RawBsonRef::Null) => return Ok(()),
            Some(RawBsonRef::Array(array)) => array,
            Some(other) => {
                return Err(RowError {
                    field: scope.shown.clone(),
                    expected: None,
                    found: type_name(other).to_string(),
                    reason: "the field lands in a child table and must be an array".to_string(),
                    excerpt: Some(excerpt(other)),
                    kind: RejectKind::Shape,
                })
            }
        };
        for (position, element) in array.into_iter().enumerate() {
            let element = element.map_err(|e| unreadable(e.to_string()))?;
            let at = format!("{}[{position}]", scope.shown);
            let position = i32::try_from(position).map_err(|_| RowError {
                field: scope.shown.clone(),
                expected: None,
                found: "array".to_string(),
                reason: "more elements than int4 positions".to_string(),
                excerpt: None,
                kind: RejectKind::Shape,
            })?;
            let fields = match (&child.read, element) {
                (None, _) => None,
                (Some(_), RawBsonRef::Document(fields)) => Some(fields),
                (Some(_), other) => return Err(RowError {
                    field: at,
                    expected: None,
                    found: type_name(other).to_string(),
                    reason:
                        "the elements land in a child table with columns and must be subdocuments"
                            .to_string(),
                    excerpt: Some(excerpt(other)),
                    kind: RejectKind::Shape,
                }),
            };
            let mut cells = Vec::with_capacity(child.columns.len());
            for column in &child.columns {
                let field = |path: &[String]| format!("{at}.{}", path.join("."));
                let read = |path: &[String]| {
                    let top = fields
                        .and_then(|f| f.get(&path[0]).transpose())
                        .transpose()
                        .map_err(|e| unreadable(e.to_string()))?;
                    descend(top, &path[1..]).map_err(|Refused(reason)| RowError {
                        field: field(path),
                        expected: Some(column.ty),
                        found: "unreadable".to_string(),
                        reason,
                        excerpt: None,
                        kind: RejectKind::Unreadable,
                    })
                };
                let cell = match &column.source {
                    ChildSource::Document => scope.document_key.clone(),
                    ChildSource::Parent(k) => scope.parent.get(*k).cloned().unwrap_or(Cell::Null),
                    ChildSource::Position => Cell::Int4(position),
                    ChildSource::Element(None) => {
                        Cell::convert(Some(element), column.ty, &self.options)
                            .map_err(|e| row_error(at.clone(), e, Some(element)))?
                    }
                    ChildSource::Element(Some(to)) => to
                        .cell(Some(element), column.ty)
                        .map_err(|e| row_error(at.clone(), e, Some(element)))?,
                    ChildSource::Field(path) => {
                        let value = read(path)?;
                        match &column.transform {
                            Some(transform) => {
                                let refused = |reason: String| RowError {
                                    field: field(path),
                                    expected: Some(column.ty),
                                    found: value.map_or("missing", type_name).to_string(),
                                    reason,
                                    excerpt: None,
                                    kind: RejectKind::Transform,
                                };
                                transform
                                    .as_ref()
                                    .map_err(|e| refused(e.to_string()))?
                                    .apply(value)
                                    .map_err(refused)?
                            }
                            None => Cell::convert(value, column.ty, &self.options)
                                .map_err(|e| row_error(field(path), e, value))?,
                        }
                    }
                    ChildSource::Reference(path, to) => {
                        let value = read(path)?;
                        to.cell(value, column.ty)
                            .map_err(|e| row_error(field(path), e, value))?
                    }
                    ChildSource::Extra => match (fields, &child.read) {
                        (Some(fields), Some(read)) => {
                            let mut extra = JsonObject::default();
                            for item in fields.iter() {
                                let (key, value) = item.map_err(|e| unreadable(e.to_string()))?;
                                keep_unread(
                                    key.as_str(),
                                    value,
                                    read,
                                    &at,
                                    self.options.json,
                                    &mut extra,
                                )?;
                            }
                            if extra.is_empty() {
                                Cell::Null
                            } else {
                                Cell::Jsonb(extra.finish())
                            }
                        }
                        _ => Cell::Null,
                    },
                };
                if column.required && cell == Cell::Null {
                    let shown = match &column.source {
                        ChildSource::Field(path) | ChildSource::Reference(path, _) => field(path),
                        _ => at.clone(),
                    };
                    return Err(required(shown, column.ty));
                }
                cells.push(cell);
            }
            for (nested, below) in self.children.iter().enumerate().skip(index + 1) {
                if below.parent != Some(index) {
                    continue;
                }
                let top = fields
                    .and_then(|f| f.get(&below.path[0]).transpose())
                    .transpose()
                    .map_err(|e| unreadable(e.to_string()))?;
                let array = descend(top, &below.path[1..]).map_err(|Refused(reason)| RowError {
                    field: format!("{at}.{}", below.path.join(".")),
                    expected: None,
                    found: "unreadable".to_string(),
                    reason,
                    excerpt: None,
                    kind: RejectKind::Unreadable,
                })?;
                let scope = Scope {
                    document_key: scope.document_key,
                    parent: &cells,
                    shown: format!("{at}.{}", below.path.join(".")),
                };
                self.child_rows(nested, array, &scope, out)?;
            }
            out[index].push(cells);
        }
        Ok(())
    }
}

/// Where a child table's array is: the document's key, the parent element's row,
/// and the array's path as rejects name it (`items[3].options`).
struct Scope<'a> {
    document_key: &'a Cell,
    parent: &'a [Cell],
    shown: String,
}

/// A required column without a value.
fn required(field: String, ty: ColumnType) -> RowError {
    RowError {
        field,
        expected: Some(ty),
        found: "missing".to_string(),
        reason: "the column is required (NOT NULL), and the field is missing or null".to_string(),
        excerpt: None,
        kind: RejectKind::Required,
    }
}

impl Source {
    /// The dotted path a column reads, for messages.
    fn path_shown(&self) -> String {
        match self {
            Source::Field(path) | Source::Reference(path, _) => path.join("."),
            Source::IdText | Source::IdUuid => "_id".to_string(),
            Source::Added { field, .. } => field.clone(),
            Source::Computed(_) => String::new(),
            Source::Document | Source::Extra | Source::Missing => String::new(),
        }
    }
}

fn row_error(field: String, e: CellError, value: Option<RawBsonRef<'_>>) -> RowError {
    RowError {
        field,
        expected: Some(e.expected),
        found: e.found.to_string(),
        reason: e.reason,
        excerpt: value.map(excerpt),
        kind: RejectKind::Type,
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
