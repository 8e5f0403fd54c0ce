//! MongoDB's geospatial indexes as PostGIS GiST indexes over an expression.
//!
//! A `2dsphere` index is on GeoJSON (`{type: "Point", coordinates: [lng, lat]}`, kept
//! in jsonb) or on a legacy pair `[lng, lat]` (a `double precision[]` column, or a
//! jsonb array), and measures on the sphere: its counterpart is a `geography`
//! expression, so that `ST_DWithin(<expression>, point, metres)` uses the index. A
//! `2d` index is on flat pairs: a `geometry` point. The expression is the one queries
//! must use as written; the index needs the PostGIS extension in the database, and
//! `finish` reports it instead of building it when the extension is not there.

use bson::Bson;
use landing::column_type::ColumnType;
use landing::identifier::{quote, quote_table};
use landing::mapping::TablePlan;

use super::model::{index_name, locate, Index, Located, Translated};

/// Fills `out` for a geospatial index `name` with `keys`.
pub(super) fn translate(
    plan: &TablePlan,
    name: &str,
    keys: &[(&String, &Bson)],
    out: &mut Translated,
) {
    let geo: Vec<(&String, &str)> = keys
        .iter()
        .filter_map(|(path, kind)| match kind {
            Bson::String(kind) if kind == "2dsphere" || kind == "2d" => {
                Some((*path, kind.as_str()))
            }
            _ => None,
        })
        .collect();
    let [(path, kind)] = geo[..] else {
        out.notes.push(
            "a geoHaystack index, or several geospatial keys: no counterpart is built".to_string(),
        );
        return;
    };
    for (other, _) in keys.iter().filter(|(p, _)| *p != path) {
        out.notes.push(format!(
            "{other:?} is left out of the GiST index (a B-tree index of its own serves it)"
        ));
    }
    let Some(located) = locate(plan, path) else {
        out.notes.push(format!(
            "{path:?} has no column of its own and no expression reaches it: no index built"
        ));
        return;
    };
    let Some(expression) = point(plan, &located, kind == "2dsphere") else {
        out.notes.push(format!(
            "{path:?} landed in a column PostGIS cannot read as a point or a shape (GeoJSON is kept in jsonb, a legacy pair in double precision[] or jsonb): no index built"
        ));
        return;
    };
    let query = if kind == "2dsphere" {
        format!("ST_DWithin({expression}, ST_MakePoint(lng, lat)::geography, metres)")
    } else {
        format!("ST_DWithin({expression}, ST_MakePoint(x, y), distance)")
    };
    out.notes.push(format!(
        "a geospatial index: a PostGIS GiST index on {expression}, which queries must use as written ({query})"
    ));
    let table = located.table.clone();
    let index = index_name(&table, name);
    out.index = Some(Index {
        sql: format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING gist (({expression}))",
            quote(&index),
            quote_table(&table)
        ),
        name: index,
        table,
        extension: Some("postgis"),
    });
}

/// The expression reading the located value as PostGIS's `geography` (on the
/// sphere) or `geometry` (flat).
fn point(plan: &TablePlan, located: &Located, sphere: bool) -> Option<String> {
    let ty = match &located.inside {
        Some(_) => ColumnType::Jsonb,
        None => plan
            .columns
            .iter()
            .find(|c| c.name == located.column)
            .map(|c| c.ty)?,
    };
    let cast = if sphere { "::geography" } else { "" };
    match ty {
        ColumnType::Jsonb => {
            let value = located.jsonb_sql();
            Some(if sphere {
                format!("ST_GeomFromGeoJSON({value}::text)::geography")
            } else {
                format!("ST_MakePoint(({value} ->> 0)::float8, ({value} ->> 1)::float8)")
            })
        }
        ColumnType::Float8Array => {
            let column = quote(&located.column);
            Some(if sphere {
                format!("ST_SetSRID(ST_MakePoint({column}[1], {column}[2]), 4326){cast}")
            } else {
                format!("ST_MakePoint({column}[1], {column}[2])")
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use landing::mapping::MappingFile;
    use mongodb::options::IndexOptions;
    use mongodb::IndexModel;

    fn translated(plan: &TablePlan, keys: bson::Document) -> Translated {
        let model = IndexModel::builder()
            .keys(keys.clone())
            .options(IndexOptions::builder().name("geo".to_string()).build())
            .build();
        super::super::indexes::translate("places", plan, &model).expect("translated")
    }

    #[test]
    fn geojson_in_jsonb_and_legacy_pairs_become_gist_expressions() {
        let file: MappingFile = toml::from_str(
            r#"
            [collections.places]
            columns = [
              { path = "_id", type = "text" },
              { path = "loc", type = "jsonb" },
              { path = "pos", type = "float8[]" },
              { path = "name", type = "text" },
            ]
            "#,
        )
        .expect("a mapping");
        let plan = file.plan("places");
        let t = translated(&plan, doc! { "loc": "2dsphere" });
        let index = t.index.expect("an index");
        assert_eq!(
            index.sql,
            r#"CREATE INDEX CONCURRENTLY IF NOT EXISTS "places_geo" ON "places" USING gist ((ST_GeomFromGeoJSON("loc"::text)::geography))"#
        );
        assert_eq!(index.extension, Some("postgis"));
        let t = translated(&plan, doc! { "pos": "2d", "name": 1 });
        assert_eq!(
            t.index.as_ref().expect("an index").sql,
            r#"CREATE INDEX CONCURRENTLY IF NOT EXISTS "places_geo" ON "places" USING gist ((ST_MakePoint("pos"[1], "pos"[2])))"#
        );
        assert!(
            t.notes.iter().any(|n| n.contains("\"name\" is left out")),
            "{t:?}"
        );
        // A text column holds no shape.
        let t = translated(&plan, doc! { "name": "2dsphere" });
        assert!(
            t.index.is_none() && t.notes[0].contains("cannot read"),
            "{t:?}"
        );
        // The default table: GeoJSON inside doc.
        let plan = MappingFile::default().plan("places");
        let t = translated(&plan, doc! { "loc": "2dsphere" });
        assert!(
            t.index.expect("an index").sql.contains(
                r#"USING gist ((ST_GeomFromGeoJSON(("doc" #> '{loc}')::text)::geography))"#
            ),
            "{:?}",
            t.notes
        );
    }
}
