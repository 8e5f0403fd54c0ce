//! Running, rerunning and inspecting runs: status, requeue and restarts say what is
//! true and complete what they start.

use std::time::Duration;

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};

const CONSUMERS_LIMIT: Duration = Duration::from_secs(120);

/// Bug 13: `mongo2pg status | head -1` panicked on the closed pipe (exit 101).
#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_closes_the_pipe_early_is_no_panic() {
    let env = TestEnv::new("hard_pipe").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_one(doc! { "_id": 1 })
        .await
        .expect("insert");
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    let mut child = env
        .command("mongo2pg", "r")
        .arg("status")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("status");
    // The reader is gone before the report is written, as `| head -1` is once it has
    // its line.
    drop(child.stdout.take());
    let out = child.wait_with_output().await.expect("status ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Bug 7: `--restart --collection X` purged the whole run's manifest, so every other
/// collection showed source 0 and `status` said INCONSISTENT forever. Now only X's
/// checkpoint and totals are forgotten.
#[tokio::test(flavor = "multi_thread")]
async fn restarting_one_collection_keeps_the_others_totals() {
    let env = TestEnv::new("hard_restart_one").await.expect("env");
    for (name, count) in [("a", 30), ("b", 20)] {
        env.db()
            .collection::<Document>(name)
            .insert_many((0..count).map(|i| doc! { "_id": i, "c": name }))
            .await
            .expect("insert");
    }
    assert_success(
        &env.producer("r", &["run", "--batch-size", "10"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    assert_success(
        &env.producer(
            "r",
            &[
                "run",
                "--batch-size",
                "10",
                "--restart",
                "--collection",
                "a",
            ],
        )
        .await
        .expect("restart a"),
        "producer --restart --collection a",
    );
    let (code, text) = env.mongo2pg_report("r", &["status"]).await.expect("status");
    assert_eq!(code, Some(0), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(line("b").as_deref(), Some("b 20 20 20"), "{text}");
    assert_eq!(line("a").as_deref(), Some("a 30 30 30"), "{text}");
}

/// Bug 8 (second half): a dead-lettered batch could not be landed again once its
/// cause was fixed: publishing it again inside the dedupe window was dropped, and no
/// command sent it back. `mongo2pg requeue` does.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_land_after_their_cause_is_fixed_with_requeue() {
    let env = TestEnv::new("hard_requeue").await.expect("env");
    env.db()
        .collection::<Document>("events")
        .insert_many(
            (0..30).map(|i| doc! { "_id": i, "kind": if i < 10 { "bad" } else { "good" } }),
        )
        .await
        .expect("insert");
    let pg = env.pg().await.expect("pg");
    e2e::refuse_bad_events(&pg).await.expect("trigger");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "10"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 1, &["--max-deliver", "2"], CONSUMERS_LIMIT)
        .await
        .expect("consumers: the refused batch is dead-lettered");
    let count = |sql: &'static str| {
        let pg = &pg;
        async move { pg.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM events").await, 20);
    assert_eq!(count("SELECT count(*) FROM _migrate_dead_letters").await, 1);

    pg.batch_execute("DROP TRIGGER refuse ON events")
        .await
        .expect("the cause fixed");
    let out = env
        .command("mongo2pg", "r")
        .arg("requeue")
        .output()
        .await
        .expect("requeue");
    assert_success(&out, "mongo2pg requeue");
    assert!(
        e2e::stdout(&out).contains("1 dead letters published again"),
        "{}",
        e2e::stdout(&out)
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers land the requeued batch");
    assert_eq!(count("SELECT count(*) FROM events").await, 30);
    assert_eq!(count("SELECT count(*) FROM _migrate_dead_letters").await, 0);
    let (code, text) = env.mongo2pg_report("r", &["status"]).await.expect("status");
    assert_eq!(code, Some(0), "{text}");
}

/// Weak spot: typos passed as success. `status` of a run that does not exist reported
/// an empty run, and of a stream that does not exist created it. Now both are one
/// clear line and a non-zero exit, and nothing is created.
#[tokio::test(flavor = "multi_thread")]
async fn status_of_an_unknown_run_or_stream_says_so_and_creates_nothing() {
    let env = TestEnv::new("hard_status_typo").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_one(doc! { "_id": 1 })
        .await
        .expect("insert");
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    let out = env.mongo2pg("nope", &["status"]).await.expect("status");
    e2e::assert_one_line_error(&out, "run \"nope\" is unknown");
    let typo = format!("{}_TYPO", env.stream);
    let out = env
        .command("mongo2pg", "r")
        .arg("status")
        .env("NATS_STREAM", &typo)
        .output()
        .await
        .expect("status");
    e2e::assert_one_line_error(&out, &format!("has no stream \"{typo}\""));
    let js = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await.expect("nats"));
    assert!(
        js.get_stream(&typo).await.is_err(),
        "status created the mistyped stream"
    );
}

/// A run whose every document was landed already (here by an earlier run into the
/// same table) is complete: `status` exits 0 and `cleanup` takes it. It stayed
/// "incomplete" forever, its documents counted as already landed and not as landed.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_documents_were_all_landed_already_is_complete() {
    let env = TestEnv::new("hard_all_already").await.expect("env");
    let docs: Vec<Document> = (0..50).map(|i| doc! { "_id": i, "v": i }).collect();
    env.db()
        .collection::<Document>("again")
        .insert_many(&docs)
        .await
        .expect("insert");
    for run in ["first", "second"] {
        assert_success(&env.producer(run, &["run"]).await.expect("run"), "producer");
        env.run_consumers(run, 1, &[], CONSUMERS_LIMIT)
            .await
            .expect("consumers");
    }
    let (code, status) = env
        .mongo2pg_report("second", &["status"])
        .await
        .expect("status");
    assert!(
        status.contains("skipped as already landed: 50"),
        "the second run landed nothing itself: {status}"
    );
    assert_eq!(code, Some(0), "{status}");
    assert_success(
        &env.mongo2pg("second", &["cleanup"]).await.expect("cleanup"),
        "cleanup",
    );
}

/// `mongo2pg status --watch`: started before the run exists, it says so and keeps
/// reading; once the run is there, each reading shows the status and the rates since
/// the one before (rows landing while it watches show as rows/s); SIGTERM ends it with
/// the last reading's exit status, and a pipe gets frames without terminal codes.
#[tokio::test(flavor = "multi_thread")]
async fn status_watch_refreshes_the_status_with_its_rates() {
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncBufReadExt;

    let env = TestEnv::new("status_watch").await.expect("env");
    env.db()
        .collection::<Document>("items")
        .insert_many((0..3000).map(|i| doc! { "_id": i, "v": i }))
        .await
        .expect("insert");
    let mut watch = env
        .command("mongo2pg", "r")
        .args(["status", "--watch", "300ms"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("watch");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut lines = tokio::io::BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let collected = seen.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut seen) = collected.lock() {
                seen.push_str(&line);
                seen.push('\n');
            }
        }
    });
    let wait_for = |what: &'static str, test: fn(&str) -> bool| {
        let seen = seen.clone();
        async move {
            for _ in 0..300 {
                if test(&seen.lock().expect("lock")) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{what}:\n{}", seen.lock().expect("lock"));
        }
    };
    wait_for("the watch says the run cannot be read yet", |s| {
        s.contains("cannot read the run now")
    })
    .await;
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    wait_for("a reading of the published run", |s| {
        s.lines()
            .any(|l| l.starts_with("items ") && l.split_whitespace().nth(3) == Some("0"))
    })
    .await;
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    wait_for("rows landing, as a rate", |s| {
        s.lines().any(|l| {
            l.strip_prefix("since the last reading: ")
                .and_then(|rest| rest.split(", ").nth(1))
                .and_then(|landed| landed.split(' ').next())
                .and_then(|n| n.parse::<f64>().ok())
                .is_some_and(|rate| rate > 0.0)
        })
    })
    .await;
    wait_for("a complete reading", |s| s.contains("status: complete")).await;
    // A fast run is over in three readings: one more shows the watch goes on.
    wait_for("a reading after the run completed", |s| {
        s.matches("status: complete").count() >= 2
    })
    .await;
    let pid = watch.id().expect("pid").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(10), watch.wait())
        .await
        .expect("the watch stops on SIGTERM")
        .expect("status");
    let _ = reader.await;
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        status.code(),
        Some(0),
        "the last reading's verdict:\n{seen}"
    );
    assert!(
        seen.matches("mongo2pg status --run r, every 300ms").count() >= 4 && !seen.contains('\x1b'),
        "{seen}"
    );
}

/// `producer run --max-read-rate`: the snapshot is read no faster than the limit (3,000
/// documents at 1,000 a second take three seconds at least, whatever the machine), lands
/// exactly, and `status` says the limit; a limit that is no rate is one line.
#[tokio::test(flavor = "multi_thread")]
async fn the_read_rate_limit_holds_the_snapshot_back() {
    let env = TestEnv::new("read_rate").await.expect("env");
    env.db()
        .collection::<Document>("items")
        .insert_many((0..3000).map(|i| doc! { "_id": i, "v": i }))
        .await
        .expect("insert");
    let bad = env
        .producer("r", &["run", "--max-read-rate", "fast"])
        .await
        .expect("run");
    e2e::assert_one_line_error(&bad, "--max-read-rate \"fast\": give documents per second");
    let started = std::time::Instant::now();
    let run = env
        .producer("r", &["run", "--max-read-rate", "1000"])
        .await
        .expect("run");
    assert_success(&run, "producer");
    let elapsed = started.elapsed();
    // The rate it read at, from its first read to its last: never above the limit
    // (but for the 20 ms a reader may run ahead).
    let said = String::from_utf8_lossy(&run.stdout).to_string();
    let rate: f64 = said
        .split("read from MongoDB at ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no read rate in: {said}"));
    assert!(
        rate <= 1010.0 && said.contains("(--max-read-rate 1000 documents/s)"),
        "{said}"
    );
    // The last of 3,000 documents may be read at 2.999 s, less 20 ms of slack.
    assert!(
        elapsed >= Duration::from_millis(2950),
        "3000 documents at 1000/s read in {elapsed:?}"
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    e2e::compare::assert_exact_copy(&env, "items")
        .await
        .expect("exact copy");
    let (code, text) = env.mongo2pg_report("r", &["status"]).await.expect("status");
    assert!(
        code == Some(0)
            && text.contains(
                "snapshot reads limited to 1000 documents/s per producer (--max-read-rate)"
            ),
        "{text}"
    );
}

/// While the producer publishes, a consumer's watchers (the run's end, the keys after
/// the load) ask NATS nothing per settled batch: the run's last batch cannot have
/// settled yet, and with many consumers each settled batch cost NATS a request from
/// every one. Counted on the JetStream API subject of the stream's consumer info from
/// the first landed batch to the producer's exit (30 batches over six seconds), where
/// the throughput report alone asks every five seconds; then the run ends as before.
#[tokio::test(flavor = "multi_thread")]
async fn consumers_ask_nats_nothing_per_batch_while_the_producer_publishes() {
    let env = TestEnv::new("watch_quiet").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..3000).map(|i| doc! { "_id": i, "name": format!("n{i}") }))
        .await
        .expect("insert");
    let nats = async_nats::connect(&env.nats_url).await.expect("nats");
    let mut infos = nats
        .subscribe(format!("$JS.API.CONSUMER.INFO.{}.>", env.stream))
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    let quiet = std::process::Stdio::null;
    let mut consumer = env
        .command("consumer", "r")
        .args(["run", "--exit-when-done"])
        .stdout(quiet())
        .stderr(quiet())
        .spawn()
        .expect("consumer");
    let mut producer = env
        .command("producer", "r")
        .args(["run", "--batch-size", "100", "--max-read-rate", "500"])
        .stdout(quiet())
        .stderr(quiet())
        .spawn()
        .expect("producer");
    let pg = env.pg().await.expect("pg");
    let deadline = tokio::time::Instant::now() + CONSUMERS_LIMIT;
    loop {
        let landed = pg
            .query_one("SELECT count(*) FROM _migrate_ledger", &[])
            .await
            .map_or(0, |row| row.get::<_, i64>(0));
        if landed > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What the consumer asked while binding and starting up is not counted.
    let count_received = |infos: &mut async_nats::Subscriber| {
        let mut received = 0;
        while let Some(Some(_)) = futures::FutureExt::now_or_never(futures::StreamExt::next(infos))
        {
            received += 1;
        }
        received
    };
    count_received(&mut infos);
    let published = tokio::time::timeout(CONSUMERS_LIMIT, producer.wait())
        .await
        .expect("the producer exits")
        .expect("producer");
    assert!(published.success(), "producer: {published}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let asked = count_received(&mut infos);
    assert!(
        asked <= 3,
        "the consumer asked NATS for its consumer's info {asked} times while the producer published"
    );
    let consumed = tokio::time::timeout(CONSUMERS_LIMIT, consumer.wait())
        .await
        .expect("the consumer exits")
        .expect("consumer");
    assert!(consumed.success(), "consumer: {consumed}");
    let names: Vec<String> = pg
        .query(
            "SELECT doc->>'name' FROM users ORDER BY substr(doc->>'name', 2)::int",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        names,
        (0..3000).map(|i| format!("n{i}")).collect::<Vec<_>>(),
        "every document once"
    );
}
