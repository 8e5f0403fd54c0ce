//! Choosing collections by pattern: `--include` and `--exclude` over
//! `database.collection` names take exactly the matching collections of twenty in two
//! databases read by one run (each database's tables where the mapping's
//! `[databases]` puts them), `status` says what was left out and why, and a followed
//! run follows the collections created after it started that its patterns choose, and
//! only those.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Result};
use bson::doc;

use e2e::{assert_one_line_error, assert_success, TestEnv};

const LIMIT: Duration = Duration::from_secs(240);

/// The shop database's collections.
const SHOP: [&str; 10] = [
    "orders_2021",
    "orders_2022",
    "orders_2023",
    "orders_2024",
    "orders_2025",
    "orders_archive",
    "users",
    "users_old",
    "sessions",
    "events",
];

/// The operations database's collections.
const OPS: [&str; 10] = [
    "logs_1", "logs_2", "logs_3", "logs_4", "logs_5", "logs_6", "tmp_a", "tmp_b", "tmp_c", "tmp_d",
];

#[tokio::test(flavor = "multi_thread")]
async fn include_and_exclude_patterns_take_exactly_the_matching_collections() -> Result<()> {
    let mut env = TestEnv::new("selection").await?;
    let (shop, ops) = (env.db(), env.other_db("ops"));
    for (db, names) in [(&shop, SHOP), (&ops, OPS)] {
        for (i, name) in names.iter().enumerate() {
            db.collection(name)
                .insert_many((0..3).map(|n| doc! { "_id": n, "from": *name, "i": i as i32 }))
                .await?;
        }
    }
    let (d, e) = (shop.name().to_string(), ops.name().to_string());
    // Every command of the test reads both databases.
    env.mongo_database = format!("{d},{e}");
    let mapping = env.write_file(
        "mapping.toml",
        &format!(
            "[databases.\"{d}\"]\nschema = \"shop\"\n\n[databases.\"{e}\"]\nprefix = \"ops_\"\n"
        ),
    );
    let include = [
        format!(r"{d}\.orders_.*"),
        format!(r"{d}\.users"),
        format!(r"{e}\.logs_[1-3]"),
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
        &format!(
            "is chosen by --include 'nothing_here'; its collections: {d}.events, {d}.orders_2021"
        ),
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
    env.run_consumers("r1", 1, &["--mapping", &mapping], LIMIT)
        .await?;

    // Each database's tables where the mapping puts them, and nothing else.
    let chosen = [
        (&shop, "orders_2022", "shop.orders_2022"),
        (&shop, "orders_2023", "shop.orders_2023"),
        (&shop, "orders_2024", "shop.orders_2024"),
        (&shop, "orders_2025", "shop.orders_2025"),
        (&shop, "users", "shop.users"),
        (&ops, "logs_1", "public.ops_logs_1"),
        (&ops, "logs_2", "public.ops_logs_2"),
        (&ops, "logs_3", "public.ops_logs_3"),
    ];
    let pg = env.pg().await?;
    let landed = tables(&pg).await?;
    let mut expected: Vec<&str> = chosen.iter().map(|(_, _, table)| *table).collect();
    expected.sort_unstable();
    ensure!(landed == expected, "landed {landed:?}");
    for (db, collection, table) in chosen {
        let named = format!("{}.{collection}", db.name());
        e2e::compare::assert_exact_copy_to(db, &pg, collection, &named, table).await?;
    }

    let (code, text) = env.mongo2pg_report("r1", &["status"]).await?;
    ensure!(
        code == Some(0)
            && text.contains(&format!("chosen by --include '{}'", include[0]))
            && text.contains("8 collections; left out: ")
            && text.contains(&format!(
                "{d}.orders_archive (--exclude '.*_archive' matches it)"
            ))
            && text.contains(&format!(
                "{d}.orders_2021 (--exclude '{}' matches it)",
                exclude[1]
            ))
            && text.contains(&format!("{e}.logs_4 (no --include matches it)"))
            && text.matches(" matches it)").count() == 12,
        "status: {text}"
    );

    // verify reads each collection from its own database; finish makes their indexes.
    shop.collection::<bson::Document>("users")
        .create_index(mongodb::IndexModel::builder().keys(doc! { "i": 1 }).build())
        .await?;
    let (code, text) = env
        .mongo2pg_report("r1", &["verify", "--mapping", &mapping])
        .await?;
    ensure!(
        code == Some(0)
            && text
                .matches(": 3 documents in 1 ranges: 3 rows equal")
                .count()
                == 8
            && text.contains("holds exactly what the mapping makes of the source"),
        "verify: {text}"
    );
    let (code, text) = env
        .mongo2pg_report("r1", &["finish", "--mapping", &mapping])
        .await?;
    ensure!(code == Some(0), "finish: {text}");
    let indexed: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'shop' AND tablename = 'users' \
             AND indexname = 'users_i_1'",
            &[],
        )
        .await?
        .get(0);
    ensure!(indexed == 1, "finish: {text}");

    // infer proposes each database in a schema of its own.
    let (proposed, sql) = (
        env.write_file("inferred.toml", ""),
        env.write_file("inferred.sql", ""),
    );
    let (code, text) = env
        .mongo2pg_report(
            "r1",
            &[
                "infer",
                "--collection",
                &format!("{d}.users,{e}.logs_1"),
                "--out",
                &proposed,
                "--sql",
                &sql,
                "--force",
            ],
        )
        .await?;
    ensure!(code == Some(0), "infer: {text}");
    let proposed = std::fs::read_to_string(&proposed)?;
    ensure!(
        proposed.contains(&format!("[databases.{d}]\nschema = \"{d}\""))
            && proposed.contains(&format!("[databases.{e}]\nschema = \"{e}\""))
            && proposed.contains(&format!("[collections.\"{e}.logs_1\"]\ntable = \"logs_1\"")),
        "infer: {proposed}"
    );
    ensure!(
        std::fs::read_to_string(&sql)?
            .contains(&format!("CREATE TABLE IF NOT EXISTS \"{e}\".\"logs_1\"")),
        "infer's SQL"
    );

    // A followed run of the logs: a new log collection is one it lacks, a new other
    // one is not.
    let mut producer = env
        .command("producer", "r2")
        .args(["run", "--follow", "--include", &format!(r"{e}\.logs_.*")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut consumer = env
        .command("consumer", "r2")
        .args(["run", "--mapping", &mapping])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    first_cutover(&env, "r2").await?;
    ops.collection("logs_7")
        .insert_many((0..4).map(|n| doc! { "_id": n, "from": "logs_7" }))
        .await?;
    ops.collection("tmp_new")
        .insert_one(doc! { "_id": 1 })
        .await?;
    shop.collection("logs_8")
        .insert_one(doc! { "_id": 1 })
        .await?;
    let (code, text) = env
        .mongo2pg_report("r2", &["cutover", "--timeout", "60s", "--no-finish"])
        .await?;
    ensure!(code == Some(0), "cutover: {text}");
    e2e::compare::assert_exact_copy_to(&ops, &pg, "logs_7", &format!("{e}.logs_7"), "ops_logs_7")
        .await?;
    let mut expected: Vec<&str> = expected
        .into_iter()
        .chain([
            "public.ops_logs_4",
            "public.ops_logs_5",
            "public.ops_logs_6",
            "public.ops_logs_7",
        ])
        .collect();
    expected.sort_unstable();
    let landed = tables(&pg).await?;
    ensure!(
        landed == expected,
        "a collection the patterns do not choose is not followed: {landed:?}"
    );
    for child in [&mut producer, &mut consumer] {
        child.start_kill()?;
        child.wait().await?;
    }
    Ok(())
}

/// The tables of the test's database but the migration's own, as `schema.table`.
async fn tables(pg: &tokio_postgres::Client) -> Result<Vec<String>> {
    Ok(pg
        .query(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_schema IN ('public', 'shop') AND table_name NOT LIKE '\\_migrate%' \
             ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// `--mongodb-database '*'` reads every database but MongoDB's own, on a replica set of
/// the test's own (the shared one holds other tests' databases): their collections
/// land under each database's prefix, a database created while the run follows is
/// followed too when the patterns choose its collections, and so is a collection
/// renamed onto a chosen name.
#[tokio::test(flavor = "multi_thread")]
async fn every_database_is_read_and_one_created_later_is_followed() -> Result<()> {
    let mongo = e2e::private::PrivateMongo::start_replica_set("alldbs").await?;
    let services = e2e::Services {
        mongodb_uri: format!("mongodb://127.0.0.1:{}/?directConnection=true", mongo.port),
        ..e2e::Services::shared()
    };
    let mut env = TestEnv::on("alldbs", services).await?;
    env.mongo_database = "*".to_string();
    let client = env.mongo.clone();
    client
        .database("shop")
        .collection("orders")
        .insert_many((0..50).map(|n| doc! { "_id": n, "total": n * 3 }))
        .await?;
    client
        .database("crm")
        .collection("people")
        .insert_many((0..20).map(|n| doc! { "_id": format!("p{n}"), "name": format!("n{n}") }))
        .await?;
    client
        .database("crm")
        .collection("scratch")
        .insert_one(doc! { "_id": 1 })
        .await?;

    let mut producer = env
        .command("producer", "all")
        .args(["run", "--follow", "--exclude", r".*\.scratch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut consumer = env
        .command("consumer", "all")
        .args(["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    first_cutover(&env, "all").await?;
    // A change in a database read from the start, and a database that is new.
    client
        .database("shop")
        .collection::<bson::Document>("orders")
        .update_many(
            doc! { "_id": { "$lt": 10 } },
            doc! { "$set": { "paid": true } },
        )
        .await?;
    client
        .database("billing")
        .collection("invoices")
        .insert_many((0..7).map(|n| doc! { "_id": n, "amount": n * 100 }))
        .await?;
    client
        .database("billing")
        .collection("scratch")
        .insert_one(doc! { "_id": 1 })
        .await?;
    // A followed collection renamed away is gone under its name and followed under
    // the new one; a left-out collection renamed onto a chosen name joins the run with
    // its documents (which never passed through the stream), and changes after the
    // rename win over what was read.
    let admin = client.database("admin");
    admin
        .run_command(doc! { "renameCollection": "crm.people", "to": "crm.contacts" })
        .await?;
    admin
        .run_command(doc! { "renameCollection": "crm.scratch", "to": "crm.notes" })
        .await?;
    client
        .database("crm")
        .collection::<bson::Document>("contacts")
        .update_many(doc! {}, doc! { "$set": { "moved": true } })
        .await?;
    client
        .database("crm")
        .collection::<bson::Document>("notes")
        .insert_one(doc! { "_id": 2, "text": "after" })
        .await?;
    let (code, text) = env
        .mongo2pg_report("all", &["cutover", "--timeout", "60s", "--no-finish"])
        .await?;
    ensure!(code == Some(0), "cutover: {text}");
    let pg = env.pg().await?;
    for (database, collection, table) in [
        ("shop", "orders", "shop_orders"),
        ("billing", "invoices", "billing_invoices"),
        ("crm", "contacts", "crm_contacts"),
        ("crm", "notes", "crm_notes"),
    ] {
        let named = format!("{database}.{collection}");
        e2e::compare::assert_exact_copy_to(
            &client.database(database),
            &pg,
            collection,
            &named,
            table,
        )
        .await?;
    }
    let kept: i64 = pg
        .query_one("SELECT count(*) FROM crm_people", &[])
        .await?
        .get(0);
    ensure!(
        kept == 20,
        "a collection renamed away keeps its table's rows: {kept}"
    );
    let landed = tables(&pg).await?;
    ensure!(
        landed
            == [
                "public.billing_invoices",
                "public.crm_contacts",
                "public.crm_notes",
                "public.crm_people",
                "public.shop_orders"
            ],
        "only the chosen collections land: {landed:?}"
    );
    let (code, text) = env.mongo2pg_report("all", &["status"]).await?;
    ensure!(
        code == Some(0)
            && text.contains("crm.scratch (--exclude '.*\\.scratch' matches it)")
            && text.contains("gone from MongoDB while followed")
            && text.contains("crm.people (renamed to crm.contacts in MongoDB at cluster time"),
        "status: {text}"
    );
    for child in [&mut producer, &mut consumer] {
        child.start_kill()?;
        child.wait().await?;
    }
    drop(env);
    drop(mongo);
    Ok(())
}

/// The first `cutover` of a followed run that has just started: asked again until the
/// run exists and its snapshot has landed.
async fn first_cutover(env: &TestEnv, run: &str) -> Result<()> {
    let started = tokio::time::Instant::now();
    loop {
        let (code, text) = env
            .mongo2pg_report(run, &["cutover", "--timeout", "60s", "--no-finish"])
            .await?;
        if code == Some(0) {
            return Ok(());
        }
        ensure!(started.elapsed() < LIMIT, "first cutover: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
