//! MongoDB's geospatial indexes after the load: GeoJSON points with a `2dsphere`
//! index and legacy pairs with a `2d` index, migrated with `infer`'s mapping (GeoJSON
//! kept whole in jsonb, pairs as `float8[]`). Without PostGIS in the database `finish`
//! reports them with the statement to run; with it, it builds GiST indexes, and a
//! radius query over them returns the places MongoDB's `$centerSphere` returns.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use bson::{doc, Document};
use futures::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

use e2e::{assert_success, TestEnv};

/// Earth's radius as MongoDB's `$centerSphere` takes it, in km.
const EARTH_KM: f64 = 6378.1;

#[tokio::test(flavor = "multi_thread")]
async fn geospatial_indexes_become_postgis_gist_indexes_and_queries_agree() -> Result<()> {
    let env = TestEnv::new("geo_finish").await?;
    let places = env.db().collection::<Document>("places");
    // A grid a degree apart near the equator: neighbours are 111 km away, diagonals
    // 157 km, so a 135 km radius is far from every point on the sphere and the spheroid.
    let docs: Vec<Document> = (0..20)
        .flat_map(|x| (0..10).map(move |y| (x, y)))
        .map(|(x, y)| {
            let (lng, lat) = (f64::from(x), f64::from(y) - 5.0);
            doc! {
                "name": format!("p{x}_{y}"),
                "loc": { "type": "Point", "coordinates": [lng, lat] },
                "pos": [lng, lat],
            }
        })
        .collect();
    places.insert_many(docs).await?;
    places
        .create_indexes([
            IndexModel::builder()
                .keys(doc! { "loc": "2dsphere" })
                .build(),
            IndexModel::builder()
                .keys(doc! { "pos": "2d" })
                .options(IndexOptions::builder().build())
                .build(),
        ])
        .await?;
    let mapping = std::env::temp_dir().join(format!("{}-places.toml", env.name));
    let mapping = mapping.display().to_string();
    let sql = std::env::temp_dir().join(format!("{}-places.sql", env.name));
    let sql = sql.display().to_string();
    assert_success(
        &env.mongo2pg("r", &["infer", "--out", &mapping, "--sql", &sql, "--force"])
            .await?,
        "infer",
    );
    let statements = std::fs::read_to_string(&sql)?;
    std::fs::remove_file(&sql)?;
    ensure!(
        statements.contains("USING gist ((ST_GeomFromGeoJSON(\"loc\"::text)::geography))"),
        "the proposed schema carries the 2dsphere index as PostGIS:\n{statements}"
    );
    let written = std::fs::read_to_string(&mapping)?;
    ensure!(
        written.contains(r#"path = "loc""#)
            && written.contains(r#"type = "jsonb""#)
            && written.contains(r#"type = "float8[]""#),
        "GeoJSON kept whole, pairs as float8[]:\n{written}"
    );
    let consumer = env.spawn_consumer("r", &["--mapping", &mapping])?;
    assert_success(&env.producer("r", &["run"]).await?, "producer run");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        consumer.wait_with_output(),
    )
    .await
    .context("consumer finishes")??;
    assert_success(&output, "consumer");

    let s = env.db().name().to_string();
    let pg = env.pg().await?;
    pg.batch_execute("DROP EXTENSION IF EXISTS postgis").await?;
    let (code, text) = env.mongo2pg_report("r", &["finish"]).await?;
    ensure!(
        code == Some(4)
            && text
                .matches("needs the postgis extension, which this database does not have")
                .count()
                == 2
            && text.contains("USING gist ((ST_GeomFromGeoJSON(\"loc\"::text)::geography))"),
        "{text}"
    );

    let (code, text) = env.mongo2pg_report("r", &["status"]).await?;
    ensure!(
        code == Some(4)
            && text.contains(
                "FAILED places.loc_2dsphere (places_loc_2dsphere): needs the postgis extension"
            ),
        "status names the index waiting for PostGIS: {text}"
    );

    pg.batch_execute("CREATE EXTENSION postgis").await?;
    let (code, text) = env.mongo2pg_report("r", &["finish"]).await?;
    ensure!(
        code == Some(0) && text.contains("finish: 2 of 2 indexes built"),
        "{text}"
    );
    let (code, text) = env.mongo2pg_report("r", &["status"]).await?;
    ensure!(
        code == Some(0) && text.contains("finish: indexes 2/2 built"),
        "{text}"
    );
    let valid: i64 = pg
        .query_one(
            &format!("SELECT count(*) FROM pg_index i JOIN pg_am a ON a.oid = (SELECT relam FROM pg_class WHERE oid = i.indexrelid)
                      WHERE i.indrelid = '\"{s}\".places'::regclass AND i.indisvalid AND a.amname = 'gist'"),
            &[],
        )
        .await?
        .get(0);
    ensure!(valid == 2, "{valid} valid GiST indexes");

    // Within 135 km of (3, 0): MongoDB's answer and PostGIS's, by name.
    let (lng, lat, km) = (3.0, 0.0, 135.0);
    let mongo: BTreeSet<String> = places
        .find(doc! { "loc": { "$geoWithin": { "$centerSphere": [[lng, lat], km / EARTH_KM] } } })
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .iter()
        .map(|d| d.get_str("name").map(str::to_string))
        .collect::<Result<_, _>>()?;
    let query = format!(
        "SELECT name FROM \"{s}\".places WHERE ST_DWithin(ST_GeomFromGeoJSON(loc::text)::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, $3)"
    );
    let postgres: BTreeSet<String> = pg
        .query(&query, &[&lng, &lat, &(km * 1000.0)])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        mongo.len() == 5 && mongo == postgres,
        "MongoDB {mongo:?}, PostgreSQL {postgres:?}"
    );
    pg.batch_execute("SET enable_seqscan = off").await?;
    let plan: Vec<String> = pg
        .query(
            &format!(
                "EXPLAIN {}",
                query
                    .replace("$1", "3")
                    .replace("$2", "0")
                    .replace("$3", "135000")
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        plan.iter().any(|l| l.contains("places_loc_2dsphere")),
        "{plan:?}"
    );
    Ok(())
}
