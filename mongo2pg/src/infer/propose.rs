//! A sampled [`Shape`] to a mapping: columns for scalars and flattened subdocuments,
//! child tables for arrays of subdocuments, join tables for arrays of references,
//! PostgreSQL arrays for arrays of scalars, jsonb for the rest.

use std::collections::BTreeMap;

use landing::column_type::ColumnType;
use landing::identifier::{snake_case, Taken};
use landing::mapping::{ChildMapping, ColumnMapping, MappingFile, EXTRA_COLUMN};

use super::shape::{Field, Shape};
use crate::config::MultiType;

/// Top-level fields beyond which `infer` writes no columns for a collection (its keys
/// are data, not a schema); PostgreSQL allows 1,600 columns a table.
const MAX_INFERRED_COLUMNS: usize = 400;

/// How far `infer` goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Subdocuments nested deeper than this stay jsonb.
    pub(super) depth: usize,
    /// Subdocuments with more fields than this stay jsonb.
    pub(super) width: usize,
    /// What a field of several types becomes.
    pub(super) policy: MultiType,
}

/// The references found: per collection and path (`items[].productId`, `likedBy[]`),
/// the collection referred to.
pub(super) type Found = BTreeMap<(String, String), String>;

/// Proposes one collection's columns and child tables.
pub(super) struct Proposer<'a> {
    pub(super) limits: Limits,
    pub(super) references: &'a Found,
    pub(super) collection: &'a str,
}

/// Where a proposal is within the document.
struct At<'a> {
    /// The mapping path's prefix (`address.`), from the table's document or element.
    prefix: &'a str,
    /// The path from the document, with `[]` for elements, as references are found.
    from_document: &'a str,
    /// Subdocument depth within the table's document or element.
    depth: usize,
    /// Whether the enclosing subdocument is always there.
    always: bool,
    /// The table's name in the singular, for child table names.
    singular: &'a str,
    /// The collection's name in the singular, for the column holding its key.
    document: &'a str,
}

impl Proposer<'_> {
    /// The columns and child tables of a collection's documents.
    pub(super) fn collection(
        &self,
        shape: &Shape,
        table: &str,
    ) -> (Vec<ColumnMapping>, Vec<ChildMapping>) {
        let mut taken = Taken::default();
        taken.claim("_id");
        taken.claim(EXTRA_COLUMN);
        let (mut columns, mut children) = (Vec::new(), Vec::new());
        if let Some(id) = shape.fields.get("_id") {
            let ty = match column_type(id, self.limits.policy) {
                // A jsonb key would merge `_id`s that differ only in key order: text
                // keeps every `_id` apart (see `Cell::id_text`).
                ColumnType::Jsonb => ColumnType::Text,
                ty => ty,
            };
            let mut key = ColumnMapping::new("_id", ty);
            key.name = Some("_id".to_string());
            columns.push(key);
        }
        if wide(shape) {
            return (columns, children);
        }
        let one = singular(table);
        let at = At {
            prefix: "",
            from_document: "",
            depth: 0,
            always: true,
            singular: &one,
            document: &one,
        };
        self.fields(shape, &at, &mut taken, &mut columns, &mut children, true);
        (columns, children)
    }

    fn fields(
        &self,
        shape: &Shape,
        at: &At<'_>,
        taken: &mut Taken,
        columns: &mut Vec<ColumnMapping>,
        children: &mut Vec<ChildMapping>,
        top: bool,
    ) {
        for (name, field) in &shape.fields {
            // A key with a dot or a `$` cannot be named by a path, nor can an empty
            // key: those fields stay whole in `_extra`.
            if name.is_empty() || name.contains('.') || name.starts_with('$') {
                continue;
            }
            if top && name == "_id" {
                continue;
            }
            let path = format!("{}{name}", at.prefix);
            let from_document = format!("{}{name}", at.from_document);
            let always = at.always && shape.seen > 0 && field.present == shape.seen;
            let labels = field.labels();
            if labels == ["object"] {
                if let Some(inner) = field.document.as_deref().filter(|inner| {
                    at.depth < self.limits.depth
                        && !inner.fields.is_empty()
                        && inner.fields.len() <= self.limits.width
                        && !geojson(inner)
                }) {
                    let at = At {
                        prefix: &format!("{path}."),
                        from_document: &format!("{from_document}."),
                        depth: at.depth + 1,
                        always,
                        singular: at.singular,
                        document: at.document,
                    };
                    self.fields(inner, &at, taken, columns, children, false);
                    continue;
                }
            }
            if labels == ["array"] {
                if let Some(child) = self.array(field, &path, &from_document, at) {
                    children.push(child);
                    continue;
                }
            }
            let mut column = ColumnMapping::new(&path, column_type(field, self.limits.policy));
            if field.holds_references() {
                if let Some(target) = self.found(&from_document) {
                    column.references = Some(target.clone());
                    // The referenced key's type, set once every collection is proposed.
                    column.ty = ColumnType::Text;
                }
            }
            column.name = Some(taken.generate(&snake_case(&path.replace('.', "_"))));
            column.required = always;
            columns.push(column);
        }
    }

    fn found(&self, path: &str) -> Option<&String> {
        self.references
            .get(&(self.collection.to_string(), path.to_string()))
    }

    /// A child or join table for an array field, if its elements call for one.
    fn array(
        &self,
        field: &Field,
        path: &str,
        from_document: &str,
        at: &At<'_>,
    ) -> Option<ChildMapping> {
        let elements = field.elements.as_deref()?;
        let table = format!("{}_{}", at.singular, snake_case(&path.replace('.', "_")));
        let parent_column = Some(format!("{}_id", at.document));
        let from_document = format!("{from_document}[]");
        if elements.labels() == ["object"] {
            let inner = elements.document.as_deref()?;
            let mut taken = Taken::default();
            for reserved in ["_position", EXTRA_COLUMN] {
                taken.claim(reserved);
            }
            taken.claim(parent_column.as_deref().unwrap_or_default());
            let own = singular_of(&table);
            let at = At {
                prefix: "",
                from_document: &format!("{from_document}."),
                depth: 0,
                always: true,
                singular: &own,
                document: at.document,
            };
            let (mut columns, mut children) = (Vec::new(), Vec::new());
            self.fields(inner, &at, &mut taken, &mut columns, &mut children, false);
            if columns.is_empty() && children.is_empty() {
                return None;
            }
            return Some(ChildMapping {
                path: path.to_string(),
                table: Some(table),
                columns,
                children,
                parent_column,
                ..ChildMapping::default()
            });
        }
        if elements.holds_references() {
            let target = self.found(&from_document)?;
            return Some(ChildMapping {
                path: path.to_string(),
                table: Some(table),
                ty: Some(ColumnType::Text),
                name: Some(format!("{}_id", singular_of(&snake_case(target)))),
                references: Some(target.clone()),
                parent_column,
                ..ChildMapping::default()
            });
        }
        None
    }
}

/// Whether a collection has so many top-level fields that its keys look like data.
/// A GeoJSON object (`{type, coordinates}` or `{type, geometries}`): kept whole in
/// jsonb, where PostGIS reads it (`finish` builds a geospatial index over it).
fn geojson(shape: &Shape) -> bool {
    let names: Vec<&str> = shape.fields.keys().map(String::as_str).collect();
    names == ["coordinates", "type"] || names == ["geometries", "type"]
}

pub(super) fn wide(shape: &Shape) -> bool {
    top_level_fields(shape) > MAX_INFERRED_COLUMNS
}

/// A collection's top-level fields but `_id`.
pub(super) fn top_level_fields(shape: &Shape) -> usize {
    shape.fields.keys().filter(|k| *k != "_id").count()
}

/// Gives every reference its referenced key's type, once every collection's key is
/// known.
pub(super) fn type_references(file: &mut MappingFile) {
    let keys = file.clone();
    for mapping in file.collections.values_mut() {
        for column in &mut mapping.columns {
            type_reference(&keys, column);
        }
        for child in &mut mapping.children {
            type_child(&keys, child);
        }
    }
}

fn type_reference(keys: &MappingFile, column: &mut ColumnMapping) {
    if let Some(target) = &column.references {
        column.ty = keys.key_type(target);
    }
}

fn type_child(keys: &MappingFile, child: &mut ChildMapping) {
    if let Some(target) = &child.references {
        child.ty = Some(keys.key_type(target));
    }
    for column in &mut child.columns {
        type_reference(keys, column);
    }
    for nested in &mut child.children {
        type_child(keys, nested);
    }
}

/// A table's name in the singular, roughly (`orders` → `order`, `categories` →
/// `category`): a proposal's names are for review.
fn singular(table: &str) -> String {
    singular_of(&snake_case(table))
}

fn singular_of(name: &str) -> String {
    if let Some(stem) = name.strip_suffix("ies").filter(|s| !s.is_empty()) {
        format!("{stem}y")
    } else if name.ends_with("sses") || name.ends_with("xes") {
        name[..name.len() - 2].to_string()
    } else if name.len() > 3
        && name.ends_with('s')
        && !["ss", "us", "is"].iter().any(|end| name.ends_with(end))
    {
        name[..name.len() - 1].to_string()
    } else {
        name.to_string()
    }
}

/// The column type for one BSON type label; `None` when only jsonb can hold it.
pub(super) fn scalar(label: &str) -> Option<ColumnType> {
    Some(match label {
        "string" | "objectId" => ColumnType::Text,
        "int" => ColumnType::Int4,
        "long" => ColumnType::Int8,
        "double" => ColumnType::Float8,
        "decimal" => ColumnType::Numeric,
        "bool" => ColumnType::Bool,
        "date" => ColumnType::Timestamptz,
        "uuid" => ColumnType::Uuid,
        "binData" => ColumnType::Bytea,
        _ => return None,
    })
}

/// The narrowest type holding every one of `labels` exactly, if any.
pub(super) fn widest(labels: &[&str]) -> Option<ColumnType> {
    let has = |l: &str| labels.contains(&l);
    let numeric = ["int", "long", "double", "decimal"];
    if labels.iter().all(|l| numeric.contains(l)) {
        return Some(if has("decimal") || has("long") && has("double") {
            ColumnType::Numeric
        } else if has("double") {
            ColumnType::Float8
        } else if has("long") {
            ColumnType::Int8
        } else {
            ColumnType::Int4
        });
    }
    if labels.iter().all(|l| ["string", "objectId"].contains(l)) {
        return Some(ColumnType::Text);
    }
    if labels.iter().all(|l| ["uuid", "binData"].contains(l)) {
        return Some(ColumnType::Bytea);
    }
    match labels {
        [one] => scalar(one),
        _ => None,
    }
}

/// The column type for a field's counts under a policy.
pub(super) fn column_type(field: &Field, policy: MultiType) -> ColumnType {
    let pick = |labels: &[&str], counts: &BTreeMap<&'static str, u64>| match (labels, policy) {
        ([], _) => None,
        ([one], _) => scalar(one),
        (_, MultiType::Widest) => widest(labels),
        (_, MultiType::Jsonb) => None,
        (_, MultiType::Reject) => labels
            .iter()
            .max_by_key(|l| counts.get(*l).copied().unwrap_or(0))
            .and_then(|l| scalar(l)),
    };
    let seen = field.labels();
    if seen == ["array"] {
        return field
            .elements
            .as_deref()
            .and_then(|elements| pick(&elements.labels(), &elements.types))
            .and_then(ColumnType::array_of)
            .unwrap_or(ColumnType::Jsonb);
    }
    pick(&seen, &field.types).unwrap_or(ColumnType::Jsonb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;
    use bson::spec::BinarySubtype;

    fn shape_of(docs: &[bson::RawDocumentBuf]) -> Shape {
        let mut shape = Shape::default();
        for doc in docs {
            shape.add(doc, 0);
        }
        shape
    }

    #[test]
    fn several_types_follow_the_policy() {
        let shape = shape_of(&[
            rawdoc! { "n": 1, "m": 1, "s": "a", "x": 1 },
            rawdoc! { "n": 2_i64, "m": 1.5, "s": bson::oid::ObjectId::new(), "x": "one" },
            rawdoc! { "n": bson::RawBson::Null, "x": "two" },
        ]);
        let ty = |path: &str, policy| column_type(&shape.fields[path], policy);
        assert_eq!(ty("n", MultiType::Widest), ColumnType::Int8);
        assert_eq!(ty("m", MultiType::Widest), ColumnType::Float8);
        assert_eq!(ty("s", MultiType::Widest), ColumnType::Text);
        assert_eq!(ty("x", MultiType::Widest), ColumnType::Jsonb);
        assert_eq!(ty("x", MultiType::Jsonb), ColumnType::Jsonb);
        assert_eq!(
            ty("x", MultiType::Reject),
            ColumnType::Text,
            "most frequent"
        );
        assert_eq!(ty("n", MultiType::Jsonb), ColumnType::Jsonb);
    }

    #[test]
    fn arrays_subdocuments_and_uuids() {
        let uuid = bson::Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![1; 16],
        };
        let shape = shape_of(&[
            rawdoc! { "tags": ["a", "b"], "mixed": [1, "a"], "addr": { "city": "x" }, "u": uuid, "longs": [1, 2_i64] },
        ]);
        let ty = |path: &str| column_type(&shape.fields[path], MultiType::Widest);
        assert_eq!(ty("tags"), ColumnType::TextArray);
        assert_eq!(ty("mixed"), ColumnType::Jsonb);
        assert_eq!(ty("addr"), ColumnType::Jsonb);
        assert_eq!(ty("u"), ColumnType::Uuid);
        assert_eq!(ty("longs"), ColumnType::Int8Array);
        assert!(shape.fields["addr"]
            .document
            .as_ref()
            .expect("seen")
            .fields
            .contains_key("city"));
        assert_eq!(widest(&["long", "double"]), Some(ColumnType::Numeric));
    }

    #[test]
    fn geojson_is_kept_whole() {
        let shape = shape_of(&[
            rawdoc! { "loc": { "type": "Point", "coordinates": [1.5, 2.5] }, "addr": { "type": "home", "city": "x" } },
        ]);
        let inner = |path: &str| shape.fields[path].document.as_deref().expect("seen");
        assert!(geojson(inner("loc")));
        assert!(!geojson(inner("addr")));
    }

    #[test]
    fn a_shop_order_becomes_columns_a_typed_child_and_a_join_table() {
        let user = bson::oid::ObjectId::new();
        let product = bson::oid::ObjectId::new();
        let shape = shape_of(&[
            rawdoc! {
                "_id": bson::oid::ObjectId::new(),
                "userId": user,
                "createdAt": bson::DateTime::now(),
                "shipTo": { "city": "Porto", "zipCode": "4000" },
                "items": [ { "productId": product, "qty": 2, "options": [ { "name": "gift", "price": 1.5 } ] } ],
                "likedBy": [user],
                "note": "x",
            },
            rawdoc! {
                "_id": bson::oid::ObjectId::new(),
                "userId": user,
                "createdAt": bson::DateTime::now(),
                "shipTo": { "city": "Faro" },
                "items": [ { "productId": product, "qty": 1 } ],
                "likedBy": [],
            },
        ]);
        let found: Found = [
            (
                ("orders".to_string(), "userId".to_string()),
                "users".to_string(),
            ),
            (
                ("orders".to_string(), "items[].productId".to_string()),
                "products".to_string(),
            ),
            (
                ("orders".to_string(), "likedBy[]".to_string()),
                "users".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let proposer = Proposer {
            limits: Limits {
                depth: 2,
                width: 20,
                policy: MultiType::Widest,
            },
            references: &found,
            collection: "orders",
        };
        let (columns, children) = proposer.collection(&shape, "orders");
        let named: Vec<(&str, &str, bool)> = columns
            .iter()
            .map(|c| (c.name.as_deref().unwrap_or(""), c.path.as_str(), c.required))
            .collect();
        assert_eq!(
            named,
            [
                ("_id", "_id", false),
                ("created_at", "createdAt", true),
                ("note", "note", false),
                ("ship_to_city", "shipTo.city", true),
                ("ship_to_zip_code", "shipTo.zipCode", false),
                ("user_id", "userId", true),
            ]
        );
        assert_eq!(columns[5].references.as_deref(), Some("users"));
        let items = &children[0];
        assert_eq!(items.table.as_deref(), Some("order_items"));
        assert_eq!(items.parent_column.as_deref(), Some("order_id"));
        let item_columns: Vec<(&str, Option<&str>)> = items
            .columns
            .iter()
            .map(|c| (c.name.as_deref().unwrap_or(""), c.references.as_deref()))
            .collect();
        assert_eq!(
            item_columns,
            [("product_id", Some("products")), ("qty", None)]
        );
        assert_eq!(
            items.children[0].table.as_deref(),
            Some("order_item_options")
        );
        let likes = &children[1];
        assert_eq!(likes.table.as_deref(), Some("order_liked_by"));
        assert_eq!(likes.references.as_deref(), Some("users"));
        assert_eq!(likes.name.as_deref(), Some("user_id"));
    }

    #[test]
    fn singulars_are_rough_but_readable() {
        for (plural, one) in [
            ("orders", "order"),
            ("categories", "category"),
            ("boxes", "box"),
            ("address", "address"),
            ("status", "status"),
            ("users", "user"),
        ] {
            assert_eq!(singular_of(plural), one);
        }
    }
}
