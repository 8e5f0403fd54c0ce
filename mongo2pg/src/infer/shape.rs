//! What a sample of documents looks like: per field, the types seen and how often,
//! the shape of its subdocuments and of its arrays' elements, and the ObjectIds and
//! DBRef targets it held (where references are looked for).

use std::collections::{BTreeMap, BTreeSet};

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{RawBsonRef, RawDocument};
use landing::cell::type_name;
use landing::mapping::is_dbref;

/// Paths deeper than this are counted as their ancestor's subdocument only.
const MAX_DEPTH: usize = 16;

/// ObjectIds kept per field to look for the documents they refer to.
const KEPT_IDS: usize = 32;

/// The fields of a set of documents (or of array elements that are subdocuments).
#[derive(Debug, Default, Clone)]
pub(super) struct Shape {
    /// How many documents were seen.
    pub(super) seen: u64,
    /// Per field name.
    pub(super) fields: BTreeMap<String, Field>,
}

/// One field of a [`Shape`], or the elements of an array.
#[derive(Debug, Default, Clone)]
pub(super) struct Field {
    /// How often each type label (see [`label`]) was seen.
    pub(super) types: BTreeMap<&'static str, u64>,
    /// How often the field was there and not null.
    pub(super) present: u64,
    /// The fields of its subdocument values.
    pub(super) document: Option<Box<Shape>>,
    /// The elements of its array values.
    pub(super) elements: Option<Box<Field>>,
    /// The collections its DBRefs point to.
    pub(super) dbrefs: BTreeSet<String>,
    /// Some of the ObjectIds it held (directly or as a DBRef's `$id`).
    pub(super) ids: BTreeSet<ObjectId>,
}

/// The type label a value is counted under: MongoDB's `$type` name, with UUIDs
/// (binary subtype 4) and DBRefs apart.
pub(super) fn label(value: RawBsonRef<'_>) -> &'static str {
    match value {
        RawBsonRef::Binary(bin) if bin.subtype == BinarySubtype::Uuid && bin.bytes.len() == 16 => {
            "uuid"
        }
        RawBsonRef::Document(doc) if is_dbref(doc) => "dbref",
        other => type_name(other),
    }
}

impl Shape {
    /// Counts one document's fields.
    pub(super) fn add(&mut self, doc: &RawDocument, depth: usize) {
        self.seen += 1;
        for (key, value) in doc.iter().flatten() {
            self.fields
                .entry(key.as_str().to_string())
                .or_default()
                .add(value, depth);
        }
    }
}

impl Field {
    fn add(&mut self, value: RawBsonRef<'_>, depth: usize) {
        let label = label(value);
        *self.types.entry(label).or_default() += 1;
        if !matches!(label, "null" | "undefined") {
            self.present += 1;
        }
        match value {
            RawBsonRef::ObjectId(id) => self.keep(id),
            RawBsonRef::Document(doc) if label == "dbref" => {
                if let Ok(target) = doc.get_str("$ref") {
                    self.dbrefs.insert(target.to_string());
                }
                if let Ok(Some(RawBsonRef::ObjectId(id))) = doc.get("$id") {
                    self.keep(id);
                }
            }
            RawBsonRef::Document(doc) if depth < MAX_DEPTH => {
                self.document.get_or_insert_default().add(doc, depth + 1);
            }
            RawBsonRef::Array(array) if depth < MAX_DEPTH => {
                let elements = self.elements.get_or_insert_default();
                for element in array.into_iter().flatten() {
                    elements.add(element, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn keep(&mut self, id: ObjectId) {
        if self.ids.len() < KEPT_IDS {
            self.ids.insert(id);
        }
    }

    /// The labels seen, null and undefined left out.
    pub(super) fn labels(&self) -> Vec<&'static str> {
        self.types
            .keys()
            .copied()
            .filter(|l| !matches!(*l, "null" | "undefined"))
            .collect()
    }

    /// Whether every value seen was a reference: ObjectIds and DBRefs.
    pub(super) fn holds_references(&self) -> bool {
        let labels = self.labels();
        !labels.is_empty() && labels.iter().all(|l| matches!(*l, "objectId" | "dbref"))
    }
}

/// The report's lines for a shape: each path with its types and how often.
pub(super) fn describe(shape: &Shape, prefix: &str, out: &mut String) {
    use std::fmt::Write as _;
    for (name, field) in &shape.fields {
        let path = format!("{prefix}{name}");
        let seen: Vec<String> = field
            .types
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        let mut line = format!("  {path:<40} {}", seen.join(", "));
        if let Some(elements) = &field.elements {
            let kinds: Vec<String> = elements
                .types
                .iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect();
            let _ = write!(line, "  (elements: {})", kinds.join(", "));
        }
        if field.types.len() > 1 {
            line.push_str("  [several types]");
        }
        let _ = writeln!(out, "{line}");
        if let Some(inner) = &field.document {
            describe(inner, &format!("{path}."), out);
        }
        if let Some(inner) = field.elements.as_ref().and_then(|e| e.document.as_ref()) {
            describe(inner, &format!("{path}[]."), out);
        }
    }
}
