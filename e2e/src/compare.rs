//! Comparing what landed with the source, by content.
//!
//! The checksum of a set of documents is the wrapping sum of a hash of each document's
//! canonical Extended JSON with its keys sorted: independent of row order and of key
//! order, sensitive to any value, any missing or any repeated document.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use anyhow::{ensure, Context, Result};
use bson::{doc, Bson, Document};
use futures::TryStreamExt;

use crate::TestEnv;

/// A value's JSON text with object keys sorted at every level.
pub fn canonical_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical_text(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(canonical_text)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        other => other.to_string(),
    }
}

/// A value's canonical Extended JSON as the specification writes it: `bson`'s, with its
/// two departures corrected (a subnormal double is a plain JSON number there, and a
/// NaN with its sign bit `"-NaN"`), as our writer does.
pub fn canonical_extjson(value: Bson) -> serde_json::Value {
    fn fix(value: serde_json::Value) -> serde_json::Value {
        match value {
            // Integers are the spec's own (`$minKey: 1`, a timestamp's `t` and `i`);
            // a floating number can only be a subnormal double.
            serde_json::Value::Number(n) if n.is_f64() => {
                let v = n.as_f64().unwrap_or_default();
                serde_json::json!({ "$numberDouble": format!("{v:e}") })
            }
            serde_json::Value::Object(map) => {
                if map.len() == 1 && map.get("$numberDouble") == Some(&"-NaN".into()) {
                    return serde_json::json!({ "$numberDouble": "NaN" });
                }
                map.into_iter().map(|(k, v)| (k, fix(v))).collect()
            }
            serde_json::Value::Array(items) => items.into_iter().map(fix).collect(),
            other => other,
        }
    }
    fix(value.into_canonical_extjson())
}

fn hash(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Count and checksum of a set of documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digest {
    pub count: u64,
    pub checksum: u64,
}

impl Digest {
    pub fn add(&mut self, json: &serde_json::Value) {
        self.count += 1;
        self.checksum = self.checksum.wrapping_add(hash(&canonical_text(json)));
    }
}

/// The source collection's digest.
pub async fn source_digest(env: &TestEnv, collection: &str) -> Result<Digest> {
    source_digest_in(&env.db(), collection).await
}

/// The digest of `collection` in `db`.
pub async fn source_digest_in(db: &mongodb::Database, collection: &str) -> Result<Digest> {
    let mut cursor = db.collection::<Document>(collection).find(doc! {}).await?;
    let mut digest = Digest::default();
    while let Some(doc) = cursor.try_next().await? {
        digest.add(&canonical_extjson(Bson::Document(doc)));
    }
    Ok(digest)
}

/// The digest of a default (`_id`, `doc`) target table plus the rejected documents of
/// the collection, and the number of `_id`s that appear more than once.
pub async fn target_digest(env: &TestEnv, table: &str, collection: &str) -> Result<(Digest, i64)> {
    target_digest_in(&env.pg().await?, table, collection).await
}

/// [`target_digest`] through a given connection.
pub async fn target_digest_in(
    pg: &tokio_postgres::Client,
    table: &str,
    collection: &str,
) -> Result<(Digest, i64)> {
    // `schema.table`, or a table of the search path.
    let table = table
        .split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".");
    let mut digest = Digest::default();
    for row in pg
        .query(&format!("SELECT doc::text FROM {table}"), &[])
        .await?
    {
        let json: serde_json::Value = serde_json::from_str(row.try_get(0)?)?;
        digest.add(&json);
    }
    let rejects = pg
        .query(
            "SELECT document::text FROM _migrate_rejects WHERE collection = $1",
            &[&collection],
        )
        .await
        .context("reading rejects")?;
    for row in rejects {
        let text: Option<String> = row.try_get(0)?;
        let json: serde_json::Value =
            serde_json::from_str(&text.context("a reject without its document")?)?;
        digest.add(&json);
    }
    let repeated: i64 = pg
        .query_one(
            &format!("SELECT count(*) FROM (SELECT _id FROM {table} GROUP BY _id HAVING count(*) > 1) AS d"),
            &[],
        )
        .await?
        .try_get(0)?;
    Ok((digest, repeated))
}

/// Asserts the target is exactly the source: rows + rejects == source documents, no
/// `_id` twice, and equal content checksums.
pub async fn assert_exact_copy(env: &TestEnv, collection: &str) -> Result<Digest> {
    assert_exact_copy_in(&env.db(), &env.pg().await?, collection).await
}

/// [`assert_exact_copy`] between a given database and connection.
pub async fn assert_exact_copy_in(
    db: &mongodb::Database,
    pg: &tokio_postgres::Client,
    collection: &str,
) -> Result<Digest> {
    assert_exact_copy_to(db, pg, collection, collection, collection).await
}

/// [`assert_exact_copy`] of collection `collection` of `db`, which the run calls
/// `named` (`database.collection` in a run of several databases), into `table`
/// (`schema.table` or a table of the search path).
pub async fn assert_exact_copy_to(
    db: &mongodb::Database,
    pg: &tokio_postgres::Client,
    collection: &str,
    named: &str,
    table: &str,
) -> Result<Digest> {
    let source = source_digest_in(db, collection).await?;
    let (target, repeated) = target_digest_in(pg, table, named).await?;
    ensure!(
        repeated == 0,
        "{repeated} _id values appear more than once in {collection}"
    );
    if target.count != source.count {
        // What the dead letters say is where a missing batch went, if it went there.
        let dead: Vec<String> = pg
            .query(
                "SELECT deliveries::text || ' deliveries: ' || reason FROM _migrate_dead_letters",
                &[],
            )
            .await
            .map(|rows| rows.iter().map(|row| row.get(0)).collect())
            .unwrap_or_default();
        anyhow::bail!(
            "{} rows + rejects in PostgreSQL for {} source documents; dead letters: {dead:?}",
            target.count,
            source.count
        );
    }
    ensure!(
        target.checksum == source.checksum,
        "content checksums differ: {target:?} vs {source:?}"
    );
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_ignores_key_order_only() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).expect("json");
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).expect("json");
        let c: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[2,1]},"b":1}"#).expect("json");
        assert_eq!(canonical_text(&a), canonical_text(&b));
        assert_ne!(canonical_text(&a), canonical_text(&c));
    }

    #[test]
    fn digests_see_a_missing_or_repeated_document() {
        let docs: Vec<serde_json::Value> = (0..3).map(|i| serde_json::json!({ "i": i })).collect();
        let mut all = Digest::default();
        docs.iter().for_each(|d| all.add(d));
        let mut repeated = Digest::default();
        [&docs[0], &docs[0], &docs[2]]
            .into_iter()
            .for_each(|d| repeated.add(d));
        assert_eq!(all.count, repeated.count);
        assert_ne!(all.checksum, repeated.checksum);
    }
}
