//! A filter per collection on a followed run: the snapshot reads only the documents
//! the filter matches, and a writer moving documents into and out of it (updates,
//! replaces, inserts, deletes) leaves the table holding exactly what MongoDB's query
//! returns after cutover; `status` counts the filtered source and `verify` compares
//! against it; a consumer whose filter the producer did not read through is refused.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Result};
use bson::{doc, Document};
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use e2e::{assert_one_line_error, TestEnv};

const LIMIT: Duration = Duration::from_secs(240);
const KINDS: [&str; 4] = ["text", "image", "video", "spam"];
const FILTER: &str = r#"{"type": {"$in": ["text", "image"]}}"#;

fn post(n: i32, kind: &str) -> Document {
    doc! { "_id": format!("p{n:03}"), "type": kind, "n": n, "title": format!("post {n}") }
}

/// The filtered posts in MongoDB and the rows in PostgreSQL, by `_id`.
async fn both(env: &TestEnv) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let filter: serde_json::Value = serde_json::from_str(FILTER)?;
    let filter = bson::Document::try_from(filter.as_object().cloned().unwrap_or_default())?;
    let mongo: BTreeMap<String, String> = env
        .db()
        .collection::<Document>("posts")
        .find(filter)
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .map(|d| {
            let id = d.get_str("_id").unwrap_or_default().to_string();
            let row = format!(
                "{} {} {}",
                d.get_str("type").unwrap_or_default(),
                d.get_i32("n").unwrap_or_default(),
                d.get_str("title").unwrap_or_default()
            );
            (id, row)
        })
        .collect();
    let pg = env.pg().await?;
    let rows = pg
        .query(
            "SELECT _id, type || ' ' || n || ' ' || title FROM posts",
            &[],
        )
        .await?;
    let postgres = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok((mongo, postgres))
}

async fn cutover(env: &TestEnv) -> Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let (code, text) = env
            .mongo2pg_report("r1", &["cutover", "--timeout", "60s", "--no-finish"])
            .await?;
        if code == Some(0) {
            return Ok(());
        }
        ensure!(started.elapsed() < LIMIT, "cutover: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_holds_on_the_snapshot_and_as_documents_move_in_and_out() -> Result<()> {
    let env = TestEnv::new("filters").await?;
    let posts = env.db().collection::<Document>("posts");
    posts
        .insert_many((0..80).map(|n| post(n, KINDS[n as usize % 4])))
        .await?;
    let mapping = env.write_file(
        "filters.toml",
        &format!(
            r#"
[collections.posts]
filter = '{FILTER}'
columns = [
  {{ path = "_id", type = "text" }},
  {{ path = "type", type = "text" }},
  {{ path = "n", type = "int4" }},
  {{ path = "title", type = "text" }},
]
"#
        ),
    );
    let mut producer = env
        .command("producer", "r1")
        .args(["run", "--follow", "--mapping", &mapping])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut consumer = env
        .command("consumer", "r1")
        .args(["run", "--writers", "2", "--mapping", &mapping])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    cutover(&env).await?;
    let (mongo, postgres) = both(&env).await?;
    ensure!(
        mongo.len() == 40 && mongo == postgres,
        "snapshot: {mongo:?}\n{postgres:?}"
    );

    // A writer moving posts into and out of the filter.
    let mut rng = StdRng::seed_from_u64(25);
    for i in 0..200 {
        let n = rng.random_range(0..100);
        let id = format!("p{n:03}");
        let kind = KINDS[rng.random_range(0..4)];
        match i % 5 {
            0 | 1 => {
                posts
                    .update_one(
                        doc! { "_id": &id },
                        doc! { "$set": { "type": kind }, "$inc": { "n": 1 } },
                    )
                    .await?;
            }
            2 => {
                posts
                    .replace_one(doc! { "_id": &id }, post(n, kind))
                    .await?;
            }
            3 => {
                posts.delete_one(doc! { "_id": &id }).await?;
            }
            _ => {
                if posts.find_one(doc! { "_id": &id }).await?.is_none() {
                    posts.insert_one(post(n, kind)).await?;
                }
            }
        }
    }
    cutover(&env).await?;
    let (mongo, postgres) = both(&env).await?;
    ensure!(
        mongo == postgres,
        "after the writer: {mongo:?}\n{postgres:?}"
    );
    ensure!(mongo.len() > 10, "{} posts in the filter", mongo.len());

    let (code, text) = env.mongo2pg_report("r1", &["status"]).await?;
    ensure!(code == Some(0), "status: {text}");
    let (code, text) = env.mongo2pg_report("r1", &["verify"]).await?;
    ensure!(code == Some(0), "verify: {text}");
    // A row of a post the filter leaves out is a difference.
    let outside = posts
        .find_one(doc! { "type": "spam" })
        .await?
        .map(|d| d.get_str("_id").map(str::to_string))
        .transpose()?;
    if let Some(id) = outside {
        env.pg()
            .await?
            .execute(
                "INSERT INTO posts (_id, type, n, title) VALUES ($1, 'spam', 0, 'x')",
                &[&id],
            )
            .await?;
        let (code, text) = env.mongo2pg_report("r1", &["verify"]).await?;
        ensure!(
            code == Some(4),
            "verify with a row outside the filter: {text}"
        );
    }
    for child in [&mut producer, &mut consumer] {
        child.start_kill()?;
        child.wait().await?;
    }

    // A run whose producer read posts without the filter: its consumers are refused.
    e2e::assert_success(
        &env.producer("r2", &["run", "--collection", "posts"])
            .await?,
        "producer r2",
    );
    let refused = env
        .command("consumer", "r2")
        .args(["run", "--exit-when-done", "--mapping", &mapping])
        .output()
        .await?;
    assert_one_line_error(
        &refused,
        "run \"r2\"'s producer read \"posts\" without this mapping's filter",
    );
    Ok(())
}
