//! Why a mapping file cannot be used, and what to change.

use crate::column_type::ColumnType;
use crate::identifier::MAX_IDENTIFIER_BYTES;
use crate::transform::keys::KeyError;
use crate::transform::ChainError;

/// Tables whose names start with this are the migration's own (ledger, rejects, dead
/// letters, added columns): no collection may land in one.
pub const RESERVED_PREFIX: &str = "_migrate_";

/// PostgreSQL's limit on a table's columns.
pub(super) const MAX_TABLE_COLUMNS: usize = 1600;

/// Why a mapping file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The file cannot be read.
    #[error("cannot read mapping file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML or YAML of a mapping.
    #[error("mapping file {path}: {detail}")]
    Syntax {
        /// The file.
        path: String,
        /// What the parser said.
        detail: String,
    },
    /// A key a transform needs cannot be read.
    #[error("mapping file {path}: {source}")]
    Key {
        /// The file.
        path: String,
        /// Which key, and where it was looked for.
        #[source]
        source: KeyError,
    },
    /// The mapping parses but cannot work.
    #[error("mapping file {path}: {invalid}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        #[source]
        invalid: InvalidMapping,
    },
}

/// A mapping that parses but cannot work, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collection {collection:?}: {problem}")]
pub struct InvalidMapping {
    /// The collection whose mapping is wrong.
    pub collection: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with one collection's mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A table without columns.
    #[error("no columns")]
    NoColumns,
    /// A name longer than PostgreSQL keeps.
    #[error("{what} {name:?} is {} bytes; PostgreSQL keeps only {MAX_IDENTIFIER_BYTES}: choose a shorter one, or leave the name out to have one generated", .name.len())]
    NameTooLong {
        /// What is named (a table, a column).
        what: &'static str,
        /// The name.
        name: String,
    },
    /// More columns than a table may hold.
    #[error("{columns} columns and max_new_columns = {max_new_columns} exceed PostgreSQL's {MAX_TABLE_COLUMNS} columns per table; lower max_new_columns")]
    TooManyColumns {
        /// Columns mapped.
        columns: usize,
        /// Columns that may be added.
        max_new_columns: usize,
    },
    /// A column with an empty name or path.
    #[error("a column with an empty name or path")]
    Empty,
    /// A column named twice.
    #[error("column {0:?} appears twice")]
    ColumnTwice(String),
    /// A child table whose parent has no key from `_id`.
    #[error("child table for {0:?} needs a column with path \"_id\" to refer to its parent")]
    ChildWithoutParentKey(String),
    /// A child table that says neither what its elements are nor how to read them, or
    /// says both.
    #[error("child table for {0:?}: give either `type` (an array of scalars) or `columns` (an array of subdocuments)")]
    ChildShape(String),
    /// A child key that no column of the child reads.
    #[error("child table for {path:?}: key {key:?} must be the path of one of its columns")]
    ChildKey {
        /// The array's path.
        path: String,
        /// The key given.
        key: String,
    },
    /// A table name with more than one dot, or an empty part.
    #[error("table {0:?}: a dot separates a schema from a table (`shop.orders`), so a name has at most one, with a name on each side")]
    TableName(String),
    /// A reference whose type is not the referenced key's.
    #[error("{path:?} references {collection:?}, whose key is {}; the column must be {} too, so that it joins that key", .key.sql(), .key.sql())]
    ReferenceType {
        /// The referencing field.
        path: String,
        /// The referenced collection.
        collection: String,
        /// The referenced key's type.
        key: ColumnType,
    },
    /// A surrogate key with an `_id` column of another type.
    #[error("key = \"uuid\" makes the _id column a uuid: write type = \"uuid\" for path \"_id\" (or leave the column out)")]
    SurrogateType,
    /// A reference held in an array column.
    #[error("{0:?}: an array of references lands in a join table: children = [{{ path = {0:?}, references = \"...\" }}]")]
    ReferenceArray(String),
    /// A child table of arrays.
    #[error("child table for {path:?}: elements must have a scalar type, not {}", .ty.sql())]
    ChildOfArrays {
        /// The array's path.
        path: String,
        /// The element type given.
        ty: ColumnType,
    },
    /// A path read by two columns.
    #[error("path {0:?} is mapped twice")]
    PathTwice(String),
    /// A `jsonb` key column.
    #[error("the _id column is jsonb, whose equality ignores key order: the _ids {{a: 1, b: 2}} and {{b: 2, a: 1}}, distinct in MongoDB, would share one row; use type = \"text\" (canonical Extended JSON, order kept)")]
    JsonbKey,
    /// A transform that cannot fill its column.
    #[error("{path:?}: transform: {error}")]
    Transform {
        /// The column's path.
        path: String,
        /// What is wrong.
        error: Box<ChainError>,
    },
    /// A transform where the value must stay as it is.
    #[error("{path:?}: {why}")]
    TransformHere {
        /// The column's path.
        path: String,
        /// Why not here.
        why: &'static str,
    },
    /// A computed column whose expression is not CEL.
    #[error("computed column {name:?}: {reason}")]
    Expression {
        /// The column.
        name: String,
        /// The compiler's words.
        reason: String,
    },
    /// A filter that is not a query document.
    #[error("filter: {0}")]
    Filter(String),
    /// A bookkeeping table's name.
    #[error("table {0:?} is a name the migration keeps for its bookkeeping (every table starting with {RESERVED_PREFIX}); choose another table")]
    Reserved(String),
}
