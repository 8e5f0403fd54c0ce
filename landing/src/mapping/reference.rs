//! References: a field holding another document's `_id` (or a DBRef to it), written
//! as the referenced table's key is, so a join needs no lookup table.

use bson::{RawBsonRef, RawDocument};

use super::file::{MappingFile, SurrogateKey};
use crate::cell::{type_name, Cell, CellError, ValueOptions};
use crate::column_type::ColumnType;

/// The collection a column refers to, and how its key is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The referenced collection.
    pub collection: String,
    /// How that collection's key column takes an `_id`.
    pub key: KeyForm,
}

/// How a key column takes an `_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// A text key: every `_id` type, written by [`Cell::id_text`].
    IdText,
    /// A typed key, written by [`Cell::key`] with the referenced collection's options.
    Typed(ValueOptions),
    /// A UUID derived from an ObjectId, written by [`Cell::uuid_of_object_id`].
    Uuid,
}

impl Reference {
    /// The reference to `collection`'s key, as `file` maps that collection.
    pub fn to(file: &MappingFile, collection: &str) -> Self {
        let mapping = file.collections.get(collection);
        let key = match mapping {
            Some(m) if m.key == Some(SurrogateKey::Uuid) => KeyForm::Uuid,
            Some(m) if file.key_type(collection) != ColumnType::Text => {
                KeyForm::Typed(ValueOptions {
                    json: m.json,
                    legacy_uuid: m.legacy_uuid,
                })
            }
            _ => KeyForm::IdText,
        };
        Reference {
            collection: collection.to_string(),
            key,
        }
    }

    /// The cell of a referencing value: NULL when missing or null, the `$id` of a
    /// DBRef to the referenced collection, any other value as the key takes it.
    pub fn cell(&self, value: Option<RawBsonRef<'_>>, ty: ColumnType) -> Result<Cell, CellError> {
        let value = match value {
            None | Some(RawBsonRef::Null) => return Ok(Cell::Null),
            Some(RawBsonRef::Document(doc)) if is_dbref(doc) => self.dbref_id(doc, ty)?,
            Some(other) => other,
        };
        match self.key {
            KeyForm::IdText => Cell::id_text(Some(value)),
            KeyForm::Typed(options) => Cell::key(Some(value), ty, &options),
            KeyForm::Uuid => Cell::uuid_of_object_id(Some(value)),
        }
    }

    fn dbref_id<'a>(
        &self,
        doc: &'a RawDocument,
        ty: ColumnType,
    ) -> Result<RawBsonRef<'a>, CellError> {
        let refused = |reason: String| CellError {
            expected: ty,
            found: "object",
            reason,
        };
        let target = doc.get_str("$ref").map_err(|e| refused(e.to_string()))?;
        if target != self.collection {
            return Err(refused(format!(
                "a DBRef to {target:?}, but the column references {:?}",
                self.collection
            )));
        }
        match doc.get("$id").map_err(|e| refused(e.to_string()))? {
            Some(RawBsonRef::Null) | None => Err(refused("a DBRef without $id".to_string())),
            Some(id) => Ok(id),
        }
    }
}

/// Whether a subdocument is a DBRef: `{$ref, $id[, $db]}`, `$ref` first.
pub fn is_dbref(doc: &RawDocument) -> bool {
    let mut keys = doc
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_string(), type_name(v)));
    matches!(keys.next(), Some((k, "string")) if k == "$ref")
        && doc.get("$id").ok().flatten().is_some()
}
