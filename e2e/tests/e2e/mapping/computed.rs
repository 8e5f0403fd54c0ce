//! Computed columns: CEL expressions over the document fill typed columns (text, int,
//! bool, jsonb, timestamptz) with exactly the values the test computes itself; a
//! document the expression fails on is a reject naming the column; `verify` computes
//! them the same way.

use std::time::Duration;

use anyhow::{ensure, Result};
use bson::{doc, DateTime, Document};

use e2e::TestEnv;

const LIMIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread")]
async fn computed_columns_hold_what_their_expressions_give() -> Result<()> {
    let env = TestEnv::new("computed").await?;
    let people = env.db().collection::<Document>("people");
    let docs: Vec<Document> = (0..30_i32)
        .map(|n| {
            let mut d = doc! {
                "_id": format!("x{n:02}"),
                "first": format!("First{n}"),
                "last": format!("Last{n}"),
                "age": 10 + n,
                "pets": (0..n % 4).map(|p| doc! { "name": format!("pet{p}"), "legs": 4_i32 }).collect::<Vec<_>>(),
                "born": DateTime::from_millis(1_000_000_000_000 + i64::from(n) * 86_400_000),
            };
            if n == 29 {
                d.remove("last");
            }
            d
        })
        .collect();
    people.insert_many(&docs).await?;
    let mapping = env.write_file(
        "computed.toml",
        r#"
[collections.people]
columns = [
  { path = "_id", type = "text" },
  { path = "age", type = "int4" },
]
computed = [
  { name = "full_name", type = "text", expression = 'doc.first + " " + doc.last' },
  { name = "adult", type = "bool", expression = "doc.age >= 18" },
  { name = "pet_count", type = "int4", expression = "doc.pets.size()" },
  { name = "summary", type = "jsonb", expression = '{"legs": doc.pets.map(p, p.legs), "old": doc.age > 30}' },
  { name = "born_at", type = "timestamptz", expression = "doc.born" },
]
"#,
    );
    e2e::assert_success(&env.producer("r1", &["run"]).await?, "producer");
    env.run_consumers("r1", 1, &["--mapping", &mapping], LIMIT)
        .await?;
    let pg = env.pg().await?;
    let rows = pg
        .query(
            "SELECT _id, full_name, adult, pet_count, summary::text, (extract(epoch FROM born_at) * 1000)::int8, _extra::text
             FROM people ORDER BY _id",
            &[],
        )
        .await?;
    ensure!(rows.len() == 29, "{} rows", rows.len());
    for (row, n) in rows.iter().zip(0_i32..) {
        let age = 10 + n;
        ensure!(
            row.get::<_, String>(1) == format!("First{n} Last{n}"),
            "x{n:02}: name"
        );
        ensure!(row.get::<_, bool>(2) == (age >= 18), "x{n:02}: adult");
        ensure!(row.get::<_, i32>(3) == n % 4, "x{n:02}: pets");
        let summary: serde_json::Value = serde_json::from_str(&row.get::<_, String>(4))?;
        let legs: Vec<i64> = (0..n % 4).map(|_| 4).collect();
        ensure!(
            summary == serde_json::json!({ "legs": legs, "old": age > 30 }),
            "x{n:02}: {summary}"
        );
        ensure!(
            row.get::<_, i64>(5) == 1_000_000_000_000 + i64::from(n) * 86_400_000,
            "x{n:02}: born_at"
        );
        // Computed columns read fields; the fields still land where they would.
        let extra: String = row.get(6);
        ensure!(
            extra.contains("\"first\"") && extra.contains("\"pets\""),
            "{extra}"
        );
    }
    let reject = pg
        .query_one("SELECT doc_id, field, error FROM _migrate_rejects", &[])
        .await?;
    let (id, field, error): (String, String, String) =
        (reject.get(0), reject.get(1), reject.get(2));
    ensure!(
        id == "x29" && field == "full_name" && error.contains("the expression failed"),
        "{id} {field} {error}"
    );
    let (code, text) = env.mongo2pg_report("r1", &["verify"]).await?;
    ensure!(
        code == Some(5) && text.contains("29 rows equal, 1 in _migrate_rejects; 0 ranges differ"),
        "verify: {text}"
    );
    Ok(())
}
