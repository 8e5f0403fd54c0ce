//! Why a document cannot become a row: the field at fault, the types expected and
//! found, and the reason, as the rejects table keeps them.

use crate::column_type::ColumnType;

/// A document that cannot become a row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The field path at fault (empty when the document itself is unreadable).
    pub field: String,
    /// What the column expects.
    pub expected: Option<ColumnType>,
    /// The BSON type found, or what the document is instead.
    pub found: String,
    /// Why it cannot land.
    pub reason: String,
    /// A short rendering of the value at fault.
    pub excerpt: Option<String>,
    /// What kind of failure it is, for counting rejects by reason.
    pub kind: RejectKind,
}

/// What kind of failure made a document a reject: a few kinds, so that
/// `mongo2pg_rejects_total` can be counted by reason with a bounded label; the reject's
/// own words are in `_migrate_rejects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    /// Not readable BSON, or a path that cannot be read.
    Unreadable,
    /// A `required` field missing or null.
    Required,
    /// A value its column's type cannot hold.
    Type,
    /// A value of the wrong shape: not an array where a child table reads one, not a
    /// subdocument where its columns are read.
    Shape,
    /// A transform refused the value (a wrong key, a pattern that does not match).
    Transform,
    /// A computed column's expression failed.
    Expression,
    /// PostgreSQL refused the row (a constraint, a value out of range).
    Refused,
    /// A trigger skipped the row.
    Skipped,
}

impl RejectKind {
    /// Every kind, in label order.
    pub const ALL: [RejectKind; 8] = [
        RejectKind::Unreadable,
        RejectKind::Required,
        RejectKind::Type,
        RejectKind::Shape,
        RejectKind::Transform,
        RejectKind::Expression,
        RejectKind::Refused,
        RejectKind::Skipped,
    ];

    /// The kind as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            RejectKind::Unreadable => "unreadable",
            RejectKind::Required => "required",
            RejectKind::Type => "type",
            RejectKind::Shape => "shape",
            RejectKind::Transform => "transform",
            RejectKind::Expression => "expression",
            RejectKind::Refused => "refused",
            RejectKind::Skipped => "skipped",
        }
    }

    /// Its position in [`RejectKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.expected {
            Some(ty) => write!(
                f,
                "field {:?}: expected {}, found {}: {}",
                self.field,
                ty.sql(),
                self.found,
                self.reason
            ),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// A document that is not readable BSON.
pub(super) fn unreadable(reason: String) -> RowError {
    RowError {
        field: String::new(),
        expected: None,
        found: "unreadable".to_string(),
        reason: format!("not a readable BSON document: {reason}"),
        excerpt: None,
        kind: RejectKind::Unreadable,
    }
}
