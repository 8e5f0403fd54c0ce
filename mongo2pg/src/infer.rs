//! `mongo2pg infer`: a mapping file and CREATE TABLE statements from a sample.
//!
//! `$sample` draws `--sample` documents spread over the collection. Every field path is
//! counted per BSON type (binary UUIDs apart from other binary), then each top-level
//! field becomes a column: one type maps to its PostgreSQL type (see docs/reference/mapping.md's type
//! table); an array whose elements share one scalar type becomes a PostgreSQL array;
//! subdocuments and anything else become jsonb. A field seen with several types
//! follows `--multi-type`:
//! - `widest` (default): the narrowest type holding all of them exactly (int + long →
//!   int8, int + double → float8, any mix with long or decimal → numeric, string +
//!   objectId → text), jsonb otherwise;
//! - `jsonb`: jsonb, always;
//! - `reject`: the most frequent type; documents with another type are rejected with
//!   the field named.
//!
//! Fields the sample missed are not lost: they land in `_extra`. The mapping is meant
//! for review: rename columns, flatten subdocuments by path, move arrays to child
//! tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bson::spec::BinarySubtype;
use bson::{doc, RawBsonRef, RawDocument, RawDocumentBuf};
use futures::TryStreamExt;
use landing::cell::type_name;
use landing::column_type::ColumnType;
use landing::identifier::Taken;
use landing::mapping::{
    CollectionMapping, ColumnMapping, InvalidMapping, MappingFile, Missing, DEFAULT_MAX_NEW_COLUMNS,
};

use crate::config::{InferConfig, MultiType};
use source::SourceError;

/// Why `infer` could not write its mapping.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// MongoDB could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The mapping could not be written as TOML.
    #[error("infer: cannot render the mapping as TOML: {0}")]
    Render(#[from] toml::ser::Error),
    /// The mapping inferred fails the checks every mapping passes: a bug of ours.
    #[error("infer wrote a mapping it cannot use ({0}); please report this")]
    Invalid(#[from] InvalidMapping),
    /// An output file could not be written.
    #[error("infer: cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
}

/// How often each type was seen at one path.
#[derive(Debug, Default, Clone)]
struct PathTypes {
    types: BTreeMap<&'static str, u64>,
    /// For arrays: the types of their elements.
    elements: BTreeMap<&'static str, u64>,
}

/// Top-level fields beyond which `infer` writes no columns for a collection (its keys
/// are data, not a schema); PostgreSQL allows 1,600 columns a table.
const MAX_INFERRED_COLUMNS: usize = 400;

/// Paths deeper than this are counted as their ancestor's subdocument only.
const MAX_DEPTH: usize = 16;

/// The type label a value is counted under: MongoDB's `$type` name, with UUIDs
/// (binary subtype 4) apart.
fn label(value: RawBsonRef<'_>) -> &'static str {
    match value {
        RawBsonRef::Binary(bin) if bin.subtype == BinarySubtype::Uuid && bin.bytes.len() == 16 => {
            "uuid"
        }
        other => type_name(other),
    }
}

fn walk(doc: &RawDocument, prefix: &str, depth: usize, paths: &mut BTreeMap<String, PathTypes>) {
    for (key, value) in doc.iter().flatten() {
        let path = if prefix.is_empty() {
            key.as_str().to_string()
        } else {
            format!("{prefix}.{}", key.as_str())
        };
        let entry = paths.entry(path.clone()).or_default();
        *entry.types.entry(label(value)).or_default() += 1;
        match value {
            RawBsonRef::Array(array) => {
                for element in array.into_iter().flatten() {
                    *entry.elements.entry(label(element)).or_default() += 1;
                }
            }
            RawBsonRef::Document(inner) if depth < MAX_DEPTH => {
                walk(inner, &path, depth + 1, paths)
            }
            _ => {}
        }
    }
}

/// The column type for one BSON type label; `None` when only jsonb can hold it.
fn scalar(label: &str) -> Option<ColumnType> {
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
fn widest(labels: &[&str]) -> Option<ColumnType> {
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

/// The column type for a top-level field's counts under a policy.
fn column_type(types: &PathTypes, policy: MultiType) -> ColumnType {
    let seen: Vec<&str> = types
        .types
        .keys()
        .copied()
        .filter(|l| !matches!(*l, "null" | "undefined"))
        .collect();
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
    if seen == ["array"] {
        let elements: Vec<&str> = types
            .elements
            .keys()
            .copied()
            .filter(|l| !matches!(*l, "null" | "undefined"))
            .collect();
        return pick(&elements, &types.elements)
            .and_then(ColumnType::array_of)
            .unwrap_or(ColumnType::Jsonb);
    }
    pick(&seen, &types.types).unwrap_or(ColumnType::Jsonb)
}

/// What `infer` found and wrote.
pub struct Inferred {
    /// The report printed: each field path with the types seen and how often.
    pub text: String,
}

/// Samples the collections, writes the mapping file and the `CREATE TABLE`
/// statements, and reports what it saw.
///
/// # Errors
/// [`InferError`] when MongoDB cannot be read or a file cannot be written.
pub async fn infer(config: &InferConfig) -> Result<Inferred, InferError> {
    let database = source::connect(&config.mongo).await?;
    let collections = source::collections(
        &database,
        &common::config::collection_names(&config.collections),
    )
    .await?;
    let mut file = MappingFile::default();
    let mut text = String::new();
    for collection in collections {
        let failed = |e: mongodb::error::Error| SourceError::read(collection.clone(), &e);
        let mut cursor = database
            .collection::<RawDocumentBuf>(&collection)
            .aggregate(vec![doc! { "$sample": { "size": config.sample } }])
            .with_type::<RawDocumentBuf>()
            .await
            .map_err(failed)?;
        let mut paths = BTreeMap::new();
        let mut sampled = 0_u64;
        while let Some(raw) = cursor.try_next().await.map_err(failed)? {
            sampled += 1;
            walk(&raw, "", 0, &mut paths);
        }
        let _ = writeln!(text, "{collection}: {sampled} documents sampled");
        for (path, types) in &paths {
            let seen: Vec<String> = types
                .types
                .iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect();
            let mut line = format!("  {path:<40} {}", seen.join(", "));
            if !types.elements.is_empty() {
                let elements: Vec<String> = types
                    .elements
                    .iter()
                    .map(|(l, n)| format!("{l} {n}"))
                    .collect();
                let _ = write!(line, "  (elements: {})", elements.join(", "));
            }
            if types.types.len() > 1 {
                line.push_str("  [several types]");
            }
            let _ = writeln!(text, "{line}");
        }
        let mut taken = Taken::default();
        taken.claim("_id");
        let mut columns = Vec::new();
        // `_id` first: it is the primary key.
        // A key with a dot cannot be named by a dotted path, nor can an empty key:
        // those fields stay whole in `_extra`.
        let top = paths
            .iter()
            .filter(|(path, _)| !path.contains('.') && !path.is_empty());
        let (ids, mut others): (Vec<_>, Vec<_>) = top.partition(|(path, _)| *path == "_id");
        // Keys that are data (a name per browser, per day, per user) make a field per
        // key: past a table's sensible width, they all stay in `_extra` as jsonb.
        if others.len() > MAX_INFERRED_COLUMNS {
            let _ = writeln!(
                text,
                "  {} top-level fields: more than {MAX_INFERRED_COLUMNS}, so they look like data used as keys; they stay whole in _extra (jsonb). Map the ones you need by hand",
                others.len()
            );
            others.clear();
        }
        for (path, types) in ids.into_iter().chain(others) {
            let name = if path == "_id" {
                path.clone()
            } else {
                taken.generate(path)
            };
            let ty = match column_type(types, config.multi_type) {
                // A jsonb key would merge `_id`s that differ only in key order: text
                // keeps every `_id` apart (see `Cell::id_text`).
                ColumnType::Jsonb if path == "_id" => ColumnType::Text,
                ty => ty,
            };
            columns.push(ColumnMapping {
                name: Some(name),
                path: path.clone(),
                ty,
            });
        }
        if columns.is_empty() {
            let _ = writeln!(text, "  (empty: no mapping written for {collection})");
            continue;
        }
        file.collections.insert(
            collection.clone(),
            CollectionMapping {
                table: None,
                columns,
                children: Vec::new(),
                json: Default::default(),
                legacy_uuid: None,
                missing: Missing::Null,
                new_fields: Default::default(),
                max_new_columns: DEFAULT_MAX_NEW_COLUMNS,
            },
        );
    }
    let mapping = toml::to_string(&file).map_err(InferError::from)?;
    file.check().map_err(InferError::from)?;
    let header = "# Written by `mongo2pg infer` from a sample: review before migrating.\n# Fields not listed land in each table's _extra jsonb column.\n\n";
    write_file(&config.out, &format!("{header}{mapping}"))?;
    let mut sql = String::new();
    for collection in file.collections.keys() {
        sql.push_str(&landing::schema::create_table_sql(&file.plan(collection)));
    }
    write_file(&config.sql, &sql)?;
    let _ = writeln!(
        text,
        "infer: wrote the mapping to {} and its tables to {}",
        config.out.display(),
        config.sql.display()
    );
    Ok(Inferred { text })
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), InferError> {
    std::fs::write(path, text).map_err(|source| InferError::Write {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    fn types_of(docs: &[RawDocumentBuf]) -> BTreeMap<String, PathTypes> {
        let mut paths = BTreeMap::new();
        for doc in docs {
            walk(doc, "", 0, &mut paths);
        }
        paths
    }

    #[test]
    fn several_types_follow_the_policy() {
        let paths = types_of(&[
            rawdoc! { "n": 1, "m": 1, "s": "a", "x": 1 },
            rawdoc! { "n": 2_i64, "m": 1.5, "s": bson::oid::ObjectId::new(), "x": "one" },
            rawdoc! { "n": bson::RawBson::Null, "x": "two" },
        ]);
        let ty = |path: &str, policy| column_type(&paths[path], policy);
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
        let paths = types_of(&[
            rawdoc! { "tags": ["a", "b"], "mixed": [1, "a"], "addr": { "city": "x" }, "u": uuid, "longs": [1, 2_i64] },
        ]);
        let ty = |path: &str| column_type(&paths[path], MultiType::Widest);
        assert_eq!(ty("tags"), ColumnType::TextArray);
        assert_eq!(ty("mixed"), ColumnType::Jsonb);
        assert_eq!(ty("addr"), ColumnType::Jsonb);
        assert_eq!(ty("u"), ColumnType::Uuid);
        assert_eq!(ty("longs"), ColumnType::Int8Array);
        assert!(paths.contains_key("addr.city"), "nested paths are reported");
        assert_eq!(widest(&["long", "double"]), Some(ColumnType::Numeric));
    }
}
