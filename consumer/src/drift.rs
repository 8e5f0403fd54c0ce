//! Fields that appear after the mapping was written, as columns of their own.
//!
//! By default a field no column reads lands in `_extra`. With `new_fields = "columns"`
//! in a collection's mapping, a top-level field the mapping does not name becomes a
//! column the first time a writer meets it, typed after its first non-null value:
//!
//! | first value | column |
//! |---|---|
//! | int32, int64 | `int8` (so later 64-bit values fit) |
//! | double | `float8` |
//! | Decimal128 | `numeric` |
//! | string | `text` |
//! | ObjectId | `text` (24 hex digits) |
//! | boolean | `bool` |
//! | date | `timestamptz` |
//! | binary subtype 4 (16 bytes) | `uuid` |
//! | other binary | `bytea` |
//! | subdocument, array, and every other type | `jsonb` (Extended JSON) |
//!
//! A value lands in the column only when it is of the same kind as the value that
//! made it (and the column type can hold it); anything else, null included, stays in
//! `_extra` under the field's name. So a document lands the same whichever writer took
//! it and whenever, and `verify` can rebuild each row from the source.
//!
//! Several writers in several processes may meet the same field at once. Adding is
//! serialized by the schema advisory lock and recorded in a registry table
//! ([`ADDED_COLUMNS_TABLE`]) in the same transaction as the `ALTER TABLE`: the first
//! writer decides the name and type, the others read them from the registry. The
//! At most `max_new_columns` (default 100) are added to a table; later new fields land
//! in `_extra`, so a collection using keys as data cannot grow the table to PostgreSQL's
//! 1,600-column limit. Which fields got columns is in the registry, so that too is the
//! same for every writer.
//!
//! The `ALTER TABLE` runs outside any batch transaction; it waits for COPYs in flight on
//! the table to commit and holds new ones back for the moment it takes.

use bson::spec::BinarySubtype;
use bson::RawBsonRef;
use common::naming::ADDED_COLUMNS_TABLE;
use tokio_postgres::{Client, GenericClient};

use crate::cell::ColumnType;
use crate::identifier::Taken;
use crate::mapping::TablePlan;
use crate::schema::{self, quote};

/// What the mapping does with fields it does not name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NewFields {
    /// They land in `_extra`.
    #[default]
    Extra,
    /// Top-level ones become columns; deeper ones land in `_extra`.
    Columns,
}

/// The kind of value an added column was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Integer,
    Double,
    Decimal,
    String,
    ObjectId,
    Boolean,
    Date,
    Uuid,
    Binary,
    Json,
}

impl FieldKind {
    const ALL: [FieldKind; 10] = [
        FieldKind::Integer,
        FieldKind::Double,
        FieldKind::Decimal,
        FieldKind::String,
        FieldKind::ObjectId,
        FieldKind::Boolean,
        FieldKind::Date,
        FieldKind::Uuid,
        FieldKind::Binary,
        FieldKind::Json,
    ];

    /// The kind of a value; `None` for null and undefined, which say nothing of a type.
    pub fn of(value: RawBsonRef<'_>) -> Option<FieldKind> {
        Some(match value {
            RawBsonRef::Null | RawBsonRef::Undefined => return None,
            RawBsonRef::Int32(_) | RawBsonRef::Int64(_) => FieldKind::Integer,
            RawBsonRef::Double(_) => FieldKind::Double,
            RawBsonRef::Decimal128(_) => FieldKind::Decimal,
            RawBsonRef::String(_) => FieldKind::String,
            RawBsonRef::ObjectId(_) => FieldKind::ObjectId,
            RawBsonRef::Boolean(_) => FieldKind::Boolean,
            RawBsonRef::DateTime(_) => FieldKind::Date,
            RawBsonRef::Binary(bin)
                if bin.subtype == BinarySubtype::Uuid && bin.bytes.len() == 16 =>
            {
                FieldKind::Uuid
            }
            RawBsonRef::Binary(_) => FieldKind::Binary,
            _ => FieldKind::Json,
        })
    }

    pub fn column_type(self) -> ColumnType {
        match self {
            FieldKind::Integer => ColumnType::Int8,
            FieldKind::Double => ColumnType::Float8,
            FieldKind::Decimal => ColumnType::Numeric,
            FieldKind::String | FieldKind::ObjectId => ColumnType::Text,
            FieldKind::Boolean => ColumnType::Bool,
            FieldKind::Date => ColumnType::Timestamptz,
            FieldKind::Uuid => ColumnType::Uuid,
            FieldKind::Binary => ColumnType::Bytea,
            FieldKind::Json => ColumnType::Jsonb,
        }
    }

    /// The name kept in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Integer => "integer",
            FieldKind::Double => "double",
            FieldKind::Decimal => "decimal",
            FieldKind::String => "string",
            FieldKind::ObjectId => "objectId",
            FieldKind::Boolean => "bool",
            FieldKind::Date => "date",
            FieldKind::Uuid => "uuid",
            FieldKind::Binary => "binData",
            FieldKind::Json => "json",
        }
    }

    pub fn parse(text: &str) -> Option<FieldKind> {
        FieldKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// A top-level field seen in a batch that its table has no column for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewField {
    pub field: String,
    pub kind: FieldKind,
}

/// A column added for a new field, as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedColumn {
    pub field: String,
    pub name: String,
    pub kind: FieldKind,
}

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{ADDED_COLUMNS_TABLE} lists column {column:?} of {table:?} with kind {kind:?}, which this version does not know; upgrade the consumer")]
    UnknownKind {
        table: String,
        column: String,
        kind: String,
    },
}

impl DriftError {
    /// The error in one line, with PostgreSQL's detail when it gave one.
    pub fn detail(&self) -> String {
        match self {
            DriftError::Postgres(err) => crate::error::pg_detail(err),
            other => other.to_string(),
        }
    }
}

/// The columns added to `table` so far, in the order they were added; none when the
/// registry does not exist yet.
pub async fn load(
    client: &impl GenericClient,
    table: &str,
) -> Result<Vec<AddedColumn>, DriftError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&quote(ADDED_COLUMNS_TABLE)],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!(
                "SELECT field, column_name, kind FROM {} WHERE target_table = $1 ORDER BY id",
                quote(ADDED_COLUMNS_TABLE)
            ),
            &[&table],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.get(2);
            let name: String = row.get(1);
            Ok(AddedColumn {
                field: row.get(0),
                kind: FieldKind::parse(&kind).ok_or_else(|| DriftError::UnknownKind {
                    table: table.to_string(),
                    column: name.clone(),
                    kind: kind.clone(),
                })?,
                name,
            })
        })
        .collect()
}

/// Adds columns for `fields` to the plan's table, unless another writer already did,
/// and returns every column added to the table so far.
pub async fn add(
    client: &mut Client,
    plan: &TablePlan,
    fields: &[NewField],
) -> Result<Vec<AddedColumn>, DriftError> {
    let tx = client.transaction().await?;
    schema::lock(&tx).await?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
            id bigserial PRIMARY KEY,
            target_table text NOT NULL,
            field text NOT NULL,
            column_name text NOT NULL,
            kind text NOT NULL,
            added_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (target_table, field),
            UNIQUE (target_table, column_name)
        )",
        quote(ADDED_COLUMNS_TABLE)
    ))
    .await?;
    let mut added = load(&tx, &plan.table).await?;
    // Names to avoid: the plan's, the registry's, and any the table has besides
    // (a column added by hand).
    let mut taken = Taken::default();
    for name in plan.columns.iter().map(|c| c.name.as_str()) {
        taken.claim(name);
    }
    for column in &added {
        taken.claim(&column.name);
    }
    for row in tx
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&plan.table],
        )
        .await?
    {
        taken.claim(row.get(0));
    }
    for new in fields {
        if added.len() >= plan.max_new_columns {
            tracing::warn!(
                table = %plan.table,
                limit = plan.max_new_columns,
                "max_new_columns reached: further new fields land in _extra"
            );
            break;
        }
        if added.iter().any(|a| a.field == new.field) {
            continue;
        }
        let column = AddedColumn {
            field: new.field.clone(),
            name: taken.generate(&new.field),
            kind: new.kind,
        };
        tx.execute(
            &format!(
                "INSERT INTO {} (target_table, field, column_name, kind) VALUES ($1, $2, $3, $4)",
                quote(ADDED_COLUMNS_TABLE)
            ),
            &[
                &plan.table,
                &column.field,
                &column.name,
                &column.kind.as_str(),
            ],
        )
        .await?;
        tx.batch_execute(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote(&plan.table),
            quote(&column.name),
            column.kind.column_type().sql()
        ))
        .await?;
        tracing::info!(
            table = %plan.table,
            field = %column.field,
            column = %column.name,
            r#type = column.kind.column_type().sql(),
            "new field: column added"
        );
        added.push(column);
    }
    tx.commit().await?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{rawdoc, Binary, Decimal128};

    #[test]
    fn kinds_round_trip_through_their_registry_names() {
        for kind in FieldKind::ALL {
            assert_eq!(FieldKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FieldKind::parse("float"), None);
    }

    #[test]
    fn each_bson_type_gets_the_column_that_holds_it_exactly() {
        let doc = rawdoc! {
            "i": 1, "l": 2_i64, "d": 1.5, "m": Decimal128::from_bytes([0; 16]), "s": "x",
            "o": bson::oid::ObjectId::new(), "b": true, "t": bson::DateTime::now(),
            "u": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
            "g": Binary { subtype: BinarySubtype::Generic, bytes: vec![1] },
            "a": [1], "n": bson::RawBson::Null, "r": bson::Regex { pattern: "a".try_into().expect("cstr"), options: "".try_into().expect("cstr") },
        };
        let types: Vec<(String, Option<&str>)> = doc
            .iter()
            .map(|e| {
                let (k, v) = e.expect("element");
                (
                    k.as_str().to_string(),
                    FieldKind::of(v).map(|kind| kind.column_type().sql()),
                )
            })
            .collect();
        let expected = [
            ("i", Some("int8")),
            ("l", Some("int8")),
            ("d", Some("float8")),
            ("m", Some("numeric")),
            ("s", Some("text")),
            ("o", Some("text")),
            ("b", Some("bool")),
            ("t", Some("timestamptz")),
            ("u", Some("uuid")),
            ("g", Some("bytea")),
            ("a", Some("jsonb")),
            ("n", None),
            ("r", Some("jsonb")),
        ];
        let expected: Vec<(String, Option<&str>)> =
            expected.iter().map(|(k, t)| (k.to_string(), *t)).collect();
        assert_eq!(types, expected);
    }
}
