//! MongoDB's indexes in PostgreSQL: each index read with `listIndexes`, its paths
//! found through the mapping (a column of the table, or of a child table), and
//! translated where PostgreSQL has the same thing; what has no counterpart is
//! reported with its reason, never silently dropped.

use bson::{Bson, Document};
use landing::identifier::{quote, quote_table};
use landing::mapping::TablePlan;
use mongodb::IndexModel;

use super::model::{index_name, locate, Index, Located, Translated};

/// A partial filter as SQL over `table`'s columns, for the operators that translate:
/// equality to a scalar, `$exists: true`, and `$gt`/`$gte`/`$lt`/`$lte` on numbers
/// and strings.
fn filter_sql(plan: &TablePlan, table: &str, filter: &Document) -> Result<String, String> {
    let mut parts = Vec::new();
    for (path, condition) in filter {
        let located = locate(plan, path)
            .filter(|l| l.table == table)
            .ok_or_else(|| format!("its filter reads {path:?}, which has no column of {table}"))?;
        let column = located.sql();
        let literal = |value: &Bson| match value {
            Bson::String(s) => Ok(format!("'{}'", s.replace('\'', "''"))),
            Bson::Int32(n) => Ok(n.to_string()),
            Bson::Int64(n) => Ok(n.to_string()),
            Bson::Double(n) if n.is_finite() => Ok(n.to_string()),
            Bson::Boolean(b) => Ok(b.to_string()),
            other => Err(format!(
                "its filter compares {path:?} to {other}, which is not translated"
            )),
        };
        match condition {
            Bson::Document(ops) if ops.keys().all(|k| k.starts_with('$')) => {
                for (op, value) in ops {
                    let sql = match (op.as_str(), value) {
                        ("$exists", Bson::Boolean(true)) => format!("{column} IS NOT NULL"),
                        ("$eq", v) => format!("{column} = {}", literal(v)?),
                        ("$gt", v) => format!("{column} > {}", literal(v)?),
                        ("$gte", v) => format!("{column} >= {}", literal(v)?),
                        ("$lt", v) => format!("{column} < {}", literal(v)?),
                        ("$lte", v) => format!("{column} <= {}", literal(v)?),
                        (op, _) => {
                            return Err(format!(
                                "its filter uses {op} on {path:?}, which is not translated"
                            ))
                        }
                    };
                    parts.push(sql);
                }
            }
            value => parts.push(format!("{column} = {}", literal(value)?)),
        }
    }
    Ok(parts.join(" AND "))
}

/// MongoDB's text search language as PostgreSQL's configuration.
fn language(mongo: Option<&str>) -> &str {
    match mongo.unwrap_or("english") {
        "none" => "simple",
        "english" | "en" => "english",
        "french" | "fr" => "french",
        "german" | "de" => "german",
        "spanish" | "es" => "spanish",
        "portuguese" | "pt" => "portuguese",
        "italian" | "it" => "italian",
        "dutch" | "nl" => "dutch",
        "russian" | "ru" => "russian",
        _ => "simple",
    }
}

/// Translates one of `collection`'s indexes through its plan.
pub(super) fn translate(
    collection: &str,
    plan: &TablePlan,
    model: &IndexModel,
) -> Option<Translated> {
    let options = model.options.clone().unwrap_or_default();
    let name = options.name.clone().unwrap_or_default();
    if name == "_id_" {
        return None; // The table's primary key.
    }
    let mut out = Translated {
        source: format!("{collection}.{name}"),
        index: None,
        notes: Vec::new(),
        blocked: false,
    };
    let keys: Vec<(&String, &Bson)> = model.keys.iter().collect();
    let kind = |value: &Bson| match value {
        Bson::String(s) => s.clone(),
        Bson::Int32(n) if *n < 0 => "desc".to_string(),
        Bson::Int64(n) if *n < 0 => "desc".to_string(),
        Bson::Double(n) if *n < 0.0 => "desc".to_string(),
        _ => "asc".to_string(),
    };
    if keys
        .iter()
        .any(|(_, v)| matches!(kind(v).as_str(), "2dsphere" | "2d" | "geoHaystack"))
    {
        super::geo::translate(plan, &name, &keys, &mut out);
        return Some(out);
    }
    if keys.iter().any(|(k, _)| k.contains("$**")) {
        out.notes
            .push("a wildcard index has no counterpart; index the paths you query".to_string());
        return Some(out);
    }
    if let Some(collation) = &options.collation {
        use mongodb::options::CollationStrength;
        if matches!(
            collation.strength,
            Some(CollationStrength::Primary | CollationStrength::Secondary)
        ) {
            out.notes.push("case-insensitive collation: PostgreSQL compares case-sensitively; use citext or a nondeterministic ICU collation for this column, then rebuild the index".to_string());
        }
    }
    let text = keys.iter().any(|(_, v)| kind(v) == "text");
    let located: Vec<(Located, String)> = if text {
        let weights = options.weights.clone().unwrap_or_default();
        let mut fields = Vec::new();
        for (path, weight) in &weights {
            match locate(plan, path) {
                Some(l) => fields.push((
                    l,
                    weight
                        .as_f64()
                        .or(weight.as_i32().map(f64::from))
                        .unwrap_or(1.0)
                        .to_string(),
                )),
                None => {
                    out.notes.push(format!("{path:?} has no column of its own and no expression reaches it (inside an array, say): the text index is built without it"));
                }
            }
        }
        fields
    } else {
        let mut fields = Vec::new();
        for (path, value) in &keys {
            match locate(plan, path) {
                Some(l) => fields.push((l, kind(value))),
                None => {
                    out.notes.push(format!(
                        "{path:?} has no column of its own and no expression reaches it (inside an array, say); no index built"
                    ));
                    return Some(out);
                }
            }
        }
        fields
    };
    let Some(table) = located.first().map(|(l, _)| l.table.clone()) else {
        return Some(out);
    };
    if located.iter().any(|(l, _)| l.table != table) {
        out.notes.push("its paths are in different tables (a document's and a child table's): no single index holds them".to_string());
        return Some(out);
    }
    for (l, _) in located.iter().filter(|(l, _)| l.inside.is_some()) {
        out.notes.push(format!(
            "kept in jsonb: an index on the expression {}, which queries must use as written",
            l.sql()
        ));
    }
    let child = located.iter().any(|(l, _)| l.child);
    let mut unique = options.unique.unwrap_or(false);
    if unique && child {
        out.notes.push("unique across documents in MongoDB, on an array's elements: here a plain index on the child table (a unique one would also refuse an element repeated within one document)".to_string());
        unique = false;
    }
    let mut conditions = Vec::new();
    if options.sparse.unwrap_or(false) {
        conditions.extend(
            located
                .iter()
                .map(|(l, _)| format!("{} IS NOT NULL", l.sql())),
        );
    }
    if let Some(filter) = &options.partial_filter_expression {
        match filter_sql(plan, &table, filter) {
            Ok(sql) if !sql.is_empty() => conditions.push(sql),
            Ok(_) => {}
            Err(reason) if unique => {
                out.notes.push(format!("a partial unique index, but {reason}: built without it, it could refuse rows MongoDB accepts, so none is built"));
                return Some(out);
            }
            Err(reason) => out.notes.push(format!("{reason}: built over every row")),
        }
    }
    if unique && !options.sparse.unwrap_or(false) && options.partial_filter_expression.is_none() {
        out.notes.push("MongoDB lets one document lack a unique field (a missing value indexes as null); PostgreSQL lets any number have NULL".to_string());
    }
    if let Some(expire) = options.expire_after {
        let column = located[0].0.sql();
        out.notes.push(format!(
            "TTL index: PostgreSQL does not expire rows; schedule DELETE FROM {} WHERE {column} < now() - interval '{} seconds' (pg_cron, say); the index below serves it",
            quote_table(&table),
            expire.as_secs()
        ));
    }
    let name_sql = index_name(&table, &name);
    let columns: Vec<String> = if text {
        let language = language(options.default_language.as_deref());
        let mut weights: Vec<String> = located.iter().map(|(_, w)| w.clone()).collect();
        weights.sort_by(|a, b| {
            b.parse::<f64>()
                .unwrap_or(0.0)
                .total_cmp(&a.parse::<f64>().unwrap_or(0.0))
        });
        weights.dedup();
        let vectors: Vec<String> = located
            .iter()
            .map(|(l, w)| {
                let vector = format!(
                    "to_tsvector('{language}'::regconfig, coalesce({}, ''))",
                    l.sql()
                );
                let rank = weights.iter().position(|x| x == w).unwrap_or(0).min(3);
                if weights.len() > 1 {
                    format!("setweight({vector}, '{}')", ["A", "B", "C", "D"][rank])
                } else {
                    vector
                }
            })
            .collect();
        vec![format!("({})", vectors.join(" || "))]
    } else {
        located
            .iter()
            .map(|(l, k)| format!("{}{}", l.sql(), if k == "desc" { " DESC" } else { "" }))
            .collect()
    };
    let using = if text {
        " USING gin"
    } else if located.iter().any(|(_, k)| k == "hashed") {
        " USING hash"
    } else {
        ""
    };
    let mut sql = format!(
        "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {}{using} ({})",
        if unique { "UNIQUE " } else { "" },
        quote(&name_sql),
        quote_table(&table),
        columns.join(", ")
    );
    if !conditions.is_empty() {
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    out.index = Some(Index {
        name: name_sql,
        table,
        sql,
        extension: None,
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use landing::mapping::MappingFile;
    use mongodb::options::IndexOptions;

    fn plan() -> TablePlan {
        let file: MappingFile = toml::from_str(
            r#"
            [collections.orders]
            columns = [
              { path = "_id", type = "text" },
              { path = "status", type = "text" },
              { path = "total", type = "numeric" },
              { path = "meta", type = "jsonb" },
            ]
            children = [ { path = "items", columns = [ { path = "sku", type = "text" } ] } ]
            "#,
        )
        .expect("parses");
        file.plan("orders")
    }

    fn sql(keys: bson::Document, options: IndexOptions) -> Translated {
        let model = IndexModel::builder().keys(keys).options(options).build();
        translate("orders", &plan(), &model).expect("translated")
    }

    #[test]
    fn paths_kept_in_jsonb_get_expression_indexes() {
        let t = sql(
            doc! { "meta.source": 1 },
            IndexOptions::builder().name("m".to_string()).build(),
        );
        assert_eq!(
            t.index.expect("built").sql,
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"orders_m\" ON \"orders\" ((\"meta\" #>> '{source}'))"
        );
        let t = sql(
            doc! { "coupon.code": 1 },
            IndexOptions::builder()
                .name("c".to_string())
                .unique(true)
                .build(),
        );
        assert!(
            t.index.expect("built").sql.contains("UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"orders_c\" ON \"orders\" ((\"_extra\" #>> '{coupon,code}'))"),
        );
        // Inside an array kept whole: no expression reaches every element.
        let t = sql(
            doc! { "items.color": 1 },
            IndexOptions::builder().name("x".to_string()).build(),
        );
        assert!(t.index.is_none(), "{t:?}");
    }

    #[test]
    fn filters_and_sparse_become_where_clauses_or_are_reported() {
        let partial = |filter| {
            sql(
                doc! { "total": -1 },
                IndexOptions::builder()
                    .name("p".to_string())
                    .partial_filter_expression(filter)
                    .build(),
            )
        };
        let t = partial(doc! { "status": "paid", "total": { "$gte": 10 } });
        assert!(t
            .index
            .expect("built")
            .sql
            .ends_with("(\"total\" DESC) WHERE \"status\" = 'paid' AND \"total\" >= 10"),);
        let t = partial(doc! { "status": { "$in": ["a", "b"] } });
        assert!(t.index.is_some() && t.notes[0].contains("$in"), "{t:?}");
        let t = sql(
            doc! { "status": 1 },
            IndexOptions::builder()
                .name("s".to_string())
                .sparse(true)
                .unique(true)
                .build(),
        );
        assert!(t
            .index
            .expect("built")
            .sql
            .ends_with("(\"status\") WHERE \"status\" IS NOT NULL"));
        let t = sql(
            doc! { "status": 1, "items.sku": 1 },
            IndexOptions::builder().name("two".to_string()).build(),
        );
        assert!(
            t.index.is_none() && t.notes[0].contains("different tables"),
            "{t:?}"
        );
        let t = sql(
            doc! { "loc": "2dsphere" },
            IndexOptions::builder().name("g".to_string()).build(),
        );
        // In _extra: GeoJSON read from it, for PostGIS.
        assert_eq!(
            t.index.expect("a GiST index").extension,
            Some("postgis"),
            "{:?}",
            t.notes
        );
    }
}
