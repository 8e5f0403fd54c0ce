//! The names of the tables a mapping plans: in their schema, and generated ones.

use super::file::Naming;
use crate::identifier;

/// A table's name in its schema: a name with a dot names its schema already.
pub(super) fn qualified(schema: Option<&String>, name: String) -> String {
    match schema {
        Some(schema) if !name.contains('.') => format!("{schema}.{name}"),
        _ => name,
    }
}

/// A generated table name: dots (which would name a schema) become `_`.
pub(super) fn generated_table(naming: Naming, wanted: &str) -> String {
    identifier::fitted(&naming.apply(&wanted.replace('.', "_")))
}
