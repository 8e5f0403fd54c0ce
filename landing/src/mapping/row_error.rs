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
    }
}
