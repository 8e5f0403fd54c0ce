//! The mapping's tests, by what they show: documents to rows (`rows`), mapping files
//! (`files`), fields found on the way becoming columns (`new_fields`), and the
//! relational model (`relational`). The plans they share are built here.

use super::*;
use crate::cell::Cell;
use crate::column_type::ColumnType;
use bson::rawdoc;

mod files;
mod new_fields;
mod relational;
mod rows;

fn plan_of(toml_text: &str) -> TablePlan {
    let file: MappingFile = toml::from_str(toml_text).expect("parses");
    file.check().expect("valid");
    file.plan("c")
}

fn json(cell: &Cell) -> serde_json::Value {
    match cell {
        Cell::Jsonb(text) => serde_json::from_str(text).expect("json"),
        other => panic!("not jsonb: {other:?}"),
    }
}

/// Columns reading one field whole and inside (`address`), a plain one and a child
/// table: for the tests of how a document's fields find their readers.
pub(super) fn nested_plan() -> TablePlan {
    plan_of(
        r#"
        [collections.c]
        columns = [
          { name = "id", path = "_id", type = "int8" },
          { name = "city", path = "address.city", type = "text" },
          { name = "address", path = "address", type = "jsonb" },
          { name = "age", path = "age", type = "int4" },
        ]
        children = [ { path = "tags", type = "text" } ]
        "#,
    )
}
