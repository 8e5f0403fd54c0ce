//! Choosing collections by pattern: `--include` and `--exclude` over
//! `database.collection` names take exactly the matching collections of twenty, `status`
//! says what was left out and why, and a followed run follows the collections created
//! after it started that its patterns choose, and only those.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Result};
use bson::doc;

use e2e::{assert_one_line_error, assert_success, TestEnv};

const LIMIT: Duration = Duration::from_secs(240);

const COLLECTIONS: [&str; 20] = [
    "orders_2021",
    "orders_2022",
    "orders_2023",
    "orders_2024",
    "orders_2025",
    "orders_archive",
    "users",
    "users_old",
    "logs_1",
    "logs_2",
    "logs_3",
    "logs_4",
    "logs_5",
    "logs_6",
    "tmp_a",
    "tmp_b",
    "tmp_c",
    "tmp_d",
    "sessions",
    "events",
];

#[tokio::test(flavor = "multi_thread")]
async fn include_and_exclude_patterns_take_exactly_the_matching_collections() -> Result<()> {
    let env = TestEnv::new("selection").await?;
    let db = env.db();
    for (i, name) in COLLECTIONS.iter().enumerate() {
        db.collection(name)
            .insert_many((0..3).map(|n| doc! { "_id": n, "from": *name, "i": i as i32 }))
            .await?;
    }
    let d = db.name().to_string();
    let include = [
        format!(r"{d}\.orders_.*"),
        format!(r"{d}\.users"),
        format!(r"{d}\.logs_[1-3]"),
    ];
    let exclude = [r".*_archive".to_string(), r".*\.orders_2021".to_string()];

    // A pattern that is not one, and patterns that choose nothing: one line each.
    let bad = env
        .producer("r1", &["run", "--include", "orders_("])
        .await?;
    assert_one_line_error(&bad, "pattern \"orders_(\" is not a regular expression");
    let none = env
        .producer("r1", &["run", "--include", "nothing_here"])
        .await?;
    assert_one_line_error(
        &none,
        "is chosen by --include 'nothing_here'; its collections: events, logs_1",
    );

    let mut args = vec!["run".to_string()];
    for p in &include {
        args.extend(["--include".to_string(), p.clone()]);
    }
    for p in &exclude {
        args.extend(["--exclude".to_string(), p.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_success(&env.producer("r1", &args).await?, "producer");
    env.run_consumers("r1", 1, &[], LIMIT).await?;

    let chosen = [
        "logs_1",
        "logs_2",
        "logs_3",
        "orders_2022",
        "orders_2023",
        "orders_2024",
        "orders_2025",
        "users",
    ];
    let pg = env.pg().await?;
    let mut landed: Vec<String> = Vec::new();
    for name in COLLECTIONS {
        let exists: bool = pg
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("\"{name}\"")],
            )
            .await?
            .get(0);
        if exists {
            landed.push(name.to_string());
        }
    }
    landed.sort();
    ensure!(landed == chosen, "landed {landed:?}");
    for name in chosen {
        e2e::compare::assert_exact_copy(&env, name).await?;
    }

    let (code, text) = env.mongo2pg_report("r1", &["status"]).await?;
    ensure!(
        code == Some(0)
            && text.contains(&format!("chosen by --include '{}'", include[0]))
            && text.contains("8 collections; left out: ")
            && text.contains("orders_archive (--exclude '.*_archive' matches it)")
            && text.contains(&format!(
                "orders_2021 (--exclude '{}' matches it)",
                exclude[1]
            ))
            && text.contains("logs_4 (no --include matches it)")
            && text.matches(" matches it)").count() == 12,
        "status: {text}"
    );

    // A followed run of the logs: a new log collection is one it lacks, a new other
    // one is not.
    let mut producer = env
        .command("producer", "r2")
        .args(["run", "--follow", "--include", &format!(r"{d}\.logs_.*")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut consumer = env
        .command("consumer", "r2")
        .args(["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = tokio::time::Instant::now();
    loop {
        let (code, text) = env
            .mongo2pg_report("r2", &["cutover", "--timeout", "60s", "--no-finish"])
            .await?;
        if code == Some(0) {
            break;
        }
        ensure!(started.elapsed() < LIMIT, "first cutover: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    db.collection("logs_7")
        .insert_many((0..4).map(|n| doc! { "_id": n, "from": "logs_7" }))
        .await?;
    db.collection("tmp_new")
        .insert_one(doc! { "_id": 1 })
        .await?;
    let (code, text) = env
        .mongo2pg_report("r2", &["cutover", "--timeout", "60s", "--no-finish"])
        .await?;
    ensure!(code == Some(0), "cutover: {text}");
    e2e::compare::assert_exact_copy(&env, "logs_7").await?;
    let tmp_new: bool = pg
        .query_one("SELECT to_regclass('tmp_new') IS NOT NULL", &[])
        .await?
        .get(0);
    ensure!(
        !tmp_new,
        "a collection the patterns do not choose is not followed"
    );
    for child in [&mut producer, &mut consumer] {
        child.start_kill()?;
        child.wait().await?;
    }
    Ok(())
}
