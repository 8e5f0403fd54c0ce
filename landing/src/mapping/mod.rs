//! Which table a collection lands in and how each document becomes a row.
//!
//! A mapping file (`--mapping FILE`, TOML, or YAML when it ends in `.yaml`/`.yml`)
//! names, per collection, a table and its columns, each with a source field path
//! (`address.city`) and a type; `mongo2pg infer` writes one from a sample:
//!
//! ```toml
//! [collections.users]
//! table = "app_users"
//! columns = [
//!   { name = "id", path = "_id", type = "text" },
//!   { path = "address.city", type = "text" },          # column "address_city"
//!   { name = "balance", path = "balance", type = "numeric" },
//!   { name = "scores", path = "scores", type = "int8[]" },
//! ]
//! children = [ { path = "tags", type = "text" } ]      # table "app_users_tags"
//! json = "canonical"       # or "relaxed", for jsonb columns
//! legacy_uuid = "java"     # binary subtype 3 into uuid columns: python, java, csharp
//! missing = "null"         # or "distinct": a `_missing text[]` column lists absent fields
//! new_fields = "extra"     # or "columns": new top-level fields become columns
//! max_new_columns = 100    # at most this many; later new fields land in `_extra`
//! ```
//!
//! Nothing in a document is dropped: every field no column or child table reads lands
//! in the table's `_extra jsonb` column, keyed by its path (`{"address":{"zip":"..."}}`),
//! NULL when there is none; with `new_fields = "columns"`, new top-level fields get
//! columns of their own instead (see [`new_fields`] and [`crate::added_columns`]). A column whose path is `_id`
//! is the table's primary key; a mapping without one gets an `_id text` key column.
//!
//! A collection with no mapping lands in a table of its own name with `_id text primary
//! key` and `doc jsonb`, the whole document as canonical Extended JSON.
//!
//! # Layout
//! - [`file`]: the mapping file; `check`: what it must satisfy beyond its syntax;
//!   `problem`: why it cannot be used.
//! - [`plan`]: a collection's target table and how each column is filled.
//! - [`child_plan`]: its child tables, one row per element of an array.
//!   Both are made of `path_tree` (the fields a table reads) and `table_name`.
//! - [`new_fields`]: what happens to fields the mapping does not name.
//! - [`reference`]: fields holding another document's `_id`, written as its key.
//! - [`row`]: one document to its rows.
//! - [`row_error`]: why a document cannot be a row.
//! - [`computed`]: columns computed from the document by a CEL expression.
//! - [`extra`]: the `_extra` column, written as fields go unread.

mod check;
pub mod child_plan;
pub mod computed;
mod extra;
mod field_readers;
pub mod file;
pub mod new_fields;
mod path_tree;
pub mod plan;
mod problem;
pub mod reference;
pub mod row;
pub mod row_error;
mod table_name;

pub use child_plan::{ChildColumn, ChildPlan, ChildSource};
pub use file::{
    is_reserved, ChildMapping, CollectionMapping, ColumnMapping, DatabaseMapping, InvalidMapping,
    MappingError, MappingFile, Missing, Naming, Problem, SurrogateKey, DEFAULT_MAX_NEW_COLUMNS,
    EXTRA_COLUMN, ID_COLUMN, MISSING_COLUMN, RESERVED_PREFIX,
};
pub use new_fields::{AddedColumn, FieldKind, NewField, NewFields};
pub use plan::{ColumnPlan, Source, TablePlan};
pub use reference::{is_dbref, KeyForm, Reference};
pub use row::Row;
pub use row_error::{RejectKind, RowError};

#[cfg(test)]
mod tests;
