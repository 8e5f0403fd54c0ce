//! Failure paths found by trying the tool as a hostile new user would (issue #12):
//! each test reproduces one bug and shows it fixed.

use std::time::Duration;

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};

const CONSUMERS_LIMIT: Duration = Duration::from_secs(120);

/// Bug 1: a child table that exists with other columns made the COPY fail and left the
/// connection out of step, so the dead-letter insert failed too and the batch was
/// redelivered forever. Now the batch is dead-lettered with PostgreSQL's reason and
/// the consumer finishes.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_child_table_copy_is_dead_lettered_instead_of_wedging_the_batch() {
    let env = TestEnv::new("hard_child_copy").await.expect("env");
    let docs: Vec<Document> = (0..20)
        .map(|i| doc! { "_id": i, "tags": ["a", format!("t{i}")] })
        .collect();
    env.db()
        .collection::<Document>("ppl2")
        .insert_many(&docs)
        .await
        .expect("insert");
    let pg = env.pg().await.expect("pg");
    pg.batch_execute("CREATE TABLE ppl2_tags (id int, tag text)")
        .await
        .expect("a child table with other columns");
    let mapping_arg = env.write_file(
        "m.toml",
        "[collections.ppl2]\ncolumns = [ { path = \"_id\", type = \"int4\" } ]\nchildren = [ { path = \"tags\", type = \"text\" } ]\n",
    );
    assert_success(
        &env.producer("r", &["run", "--batch-size", "10"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers(
        "r",
        1,
        &["--max-deliver", "2", "--mapping", &mapping_arg],
        CONSUMERS_LIMIT,
    )
    .await
    .expect("the consumer finishes: both batches are dead-lettered");
    let dead = pg
        .query(
            "SELECT reason, deliveries FROM _migrate_dead_letters ORDER BY stream_seq",
            &[],
        )
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 2, "each batch dead-lettered once");
    for row in &dead {
        let reason: String = row.get(0);
        assert!(
            reason.contains("ppl2_tags") && reason.contains("_parent"),
            "the reason names the table and the missing column: {reason}"
        );
        assert_eq!(row.get::<_, i64>(1), 2);
    }
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM ppl2", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0, "nothing of a failed batch lands");
}

/// Bug 11: `--help` printed the values of DATABASE_URL, NATS_URL and MONGODB_URI,
/// passwords included.
#[tokio::test(flavor = "multi_thread")]
async fn help_never_prints_the_values_of_secret_variables() {
    let env = TestEnv::new("hard_help").await.expect("env");
    for (binary, command) in [
        ("consumer", "run"),
        ("producer", "run"),
        ("producer", "status"),
    ] {
        let out = env
            .command(binary, "r")
            .args([command, "--help"])
            .env("DATABASE_URL", "postgres://u:HelpSecret1@db/x")
            .env("NATS_URL", "nats://u:HelpSecret2@nats:4222")
            .env("MONGODB_URI", "mongodb://u:HelpSecret3@mongo/")
            .output()
            .await
            .expect("help");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{binary} {command} --help");
        assert!(
            text.contains("DATABASE_URL") || text.contains("MONGODB_URI"),
            "{text}"
        );
        assert!(!text.contains("HelpSecret"), "{binary} {command}: {text}");
    }
}

/// Bug 12: with RUST_LOG=debug async-nats logged the NATS URL with its password, and a
/// token URL (`nats://TOKEN@host`) was printed whole in the connection error.
#[tokio::test(flavor = "multi_thread")]
async fn debug_logs_and_errors_never_print_a_nats_password_or_token() {
    let env = TestEnv::new("hard_nats_secret").await.expect("env");
    let port = e2e::private::free_port().expect("port");
    for url in [
        format!("nats://Tok3nSecret@127.0.0.1:{port}"),
        format!("nats://u:Passw0rdSecret@127.0.0.1:{port}"),
    ] {
        let out = env
            .command("consumer", "r")
            .arg("run")
            .env("NATS_URL", &url)
            .env("RUST_LOG", "debug")
            .output()
            .await
            .expect("consumer");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success());
        assert!(printed.contains("cannot reach NATS"), "{printed}");
        assert!(
            !printed.contains("Tok3nSecret") && !printed.contains("Passw0rdSecret"),
            "{printed}"
        );
    }
    // On a server that answers, with a password it accepts: debug logs of a real
    // connection never carry it.
    let nats =
        e2e::private::PrivateNats::start_with_user("hard", "u", "Passw0rdSecret").expect("nats");
    env.db()
        .collection::<Document>("users")
        .insert_one(doc! { "_id": 1 })
        .await
        .expect("insert");
    let out = env
        .command("producer", "r")
        .arg("run")
        .env(
            "NATS_URL",
            format!("nats://u:Passw0rdSecret@127.0.0.1:{}", nats.port),
        )
        .env("RUST_LOG", "debug")
        .output()
        .await
        .expect("producer");
    assert_success(&out, "producer through a password-protected NATS");
    let printed = String::from_utf8_lossy(&out.stderr);
    assert!(!printed.contains("Passw0rdSecret"), "{printed}");
}

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

/// Bugs 2 and 3: the consumer trusted the envelope over the subject (a message on run
/// A's subject claiming another run, or collection `sentinel`, landed rows there and
/// created tables), and a NUL byte in an envelope's collection or batch id made the
/// dead-letter insert fail, so the message came back forever. Now the subject decides
/// run and collection, a mismatch is a dead letter, and hostile names are kept.
#[tokio::test(flavor = "multi_thread")]
async fn envelopes_that_disagree_with_their_subject_or_hold_nul_bytes_are_dead_lettered() {
    use common::batch::{Doc, Envelope};
    use std::borrow::Cow;

    let env = TestEnv::new("hard_envelopes").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_one(doc! { "_id": 1, "name": "real" })
        .await
        .expect("insert");
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");

    let js = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await.expect("nats"));
    let doc = bson::rawdoc! { "_id": 99, "name": "forged" };
    let docs = || vec![Doc::Inline(Cow::Owned(doc.as_bytes().to_vec()))];
    let users = format!("{}.batch.r.users", env.stream);
    let forged = [
        (users.clone(), Envelope::new("other", "users", 0, docs())),
        (users.clone(), Envelope::new("r", "sentinel", 0, docs())),
        (
            format!("{}.batch.r.=00", env.stream),
            Envelope::new("r", "\0", 0, docs()),
        ),
        (users.clone(), {
            let mut e = Envelope::new("r", "users", 7, docs());
            e.batch_id = Cow::Borrowed("x\0y");
            e
        }),
    ];
    for (subject, envelope) in &forged {
        js.publish(subject.clone(), envelope.encode().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }

    let mut consumer = env
        .command("consumer", "r")
        .args(["run", "--writers", "1", "--max-deliver", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("consumer");
    let pg = env.pg().await.expect("pg");
    let deadline = std::time::Instant::now() + CONSUMERS_LIMIT;
    let dead = loop {
        let dead = pg
            .query(
                "SELECT reason, collection, batch_id FROM _migrate_dead_letters ORDER BY stream_seq",
                &[],
            )
            .await
            .unwrap_or_default();
        if dead.len() >= forged.len() {
            break dead;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} dead letters of {}",
            dead.len(),
            forged.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = consumer.start_kill();
    let _ = consumer.wait().await;

    let reasons: Vec<String> = dead.iter().map(|r| r.get(0)).collect();
    assert_eq!(dead.len(), forged.len(), "{reasons:?}");
    assert!(reasons[0].contains("names run \"other\""), "{reasons:?}");
    assert!(
        reasons[1].contains("collection \"sentinel\""),
        "{reasons:?}"
    );
    assert_eq!(dead[2].get::<_, Option<String>>(1).as_deref(), Some("\\0"));
    assert_eq!(
        dead[3].get::<_, Option<String>>(2).as_deref(),
        Some("x\\0y")
    );
    let users: Vec<i32> = pg
        .query("SELECT (doc->>'name') = 'real' FROM users", &[])
        .await
        .expect("users")
        .iter()
        .map(|r| i32::from(r.get::<_, bool>(0)))
        .collect();
    assert_eq!(users, [1], "only the real document landed");
    let sentinel: bool = pg
        .query_one("SELECT to_regclass('sentinel') IS NOT NULL", &[])
        .await
        .expect("regclass")
        .get(0);
    assert!(!sentinel, "no table made for a forged collection");
    let other: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_ledger WHERE run <> 'r'", &[])
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(other, 0, "no rows landed under a forged run");
}

/// Bug 4: a collection or mapping table named like a bookkeeping table got columns
/// added to the ledger and every document rejected. Now the names are refused: the
/// mapping with one clear line, the collection's batches as dead letters naming why,
/// and the ledger keeps its own columns.
#[tokio::test(flavor = "multi_thread")]
async fn bookkeeping_table_names_are_refused() {
    let env = TestEnv::new("hard_reserved").await.expect("env");
    env.db()
        .collection::<Document>("_migrate_ledger")
        .insert_many((0..5).map(|i| doc! { "_id": i }))
        .await
        .expect("insert");
    let mapping = env.write_file(
        "m.toml",
        "[collections.users]\ntable = \"_migrate_rejects\"\ncolumns = [ { path = \"_id\", type = \"int4\" } ]\n",
    );
    let out = env
        .command("consumer", "r")
        .args(["run", "--mapping", &mapping])
        .output()
        .await
        .expect("consumer");
    e2e::assert_one_line_error(&out, "keeps for its bookkeeping");

    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    // No retry can change the name: dead-lettered on its first delivery, not after
    // --max-deliver tries as if it might pass.
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("the consumer finishes: the batch is dead-lettered");
    let pg = env.pg().await.expect("pg");
    let dead = pg
        .query_one("SELECT reason, deliveries FROM _migrate_dead_letters", &[])
        .await
        .expect("one dead letter");
    let (reason, deliveries): (String, i64) = (dead.get(0), dead.get(1));
    assert!(reason.contains("keeps for its bookkeeping"), "{reason}");
    assert_eq!(deliveries, 1, "{reason}");
    let columns: Vec<String> = pg
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = '_migrate_ledger' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        columns,
        [
            "batch_id",
            "run",
            "collection",
            "seq",
            "target_table",
            "rows_written",
            "rows_rejected",
            "committed_at",
            "rows_already",
            "kind",
            "events"
        ]
    );
}

/// Bug 9 (connecting): a PostgreSQL that accepts TCP and never answers hung the
/// consumer, `status` and `verify` forever, `connect_timeout` ignored. Now a
/// connection attempt is bounded by `connect_timeout` (10 s when the URL sets none).
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_that_never_answers_is_given_up_on_after_connect_timeout() {
    let env = TestEnv::new("hard_silent_pg").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_one(doc! { "_id": 1 })
        .await
        .expect("insert");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/x?connect_timeout=3");
    for args in [&["run"][..], &["status"][..], &["verify"][..]] {
        let binary = if args == ["run"] {
            "consumer"
        } else {
            "producer"
        };
        let started = std::time::Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            env.command(binary, "r")
                .args(args)
                .env("DATABASE_URL", &url)
                .output(),
        )
        .await
        .expect("gave up instead of hanging")
        .expect("ran");
        let took = started.elapsed();
        e2e::assert_one_line_error(&out, "did not complete a connection within 3 s");
        assert!(
            took < Duration::from_secs(15),
            "{binary} {args:?} took {took:?}"
        );
    }
    silent.abort();
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

/// Bug 8 (in part): a batch published again within the stream's dedupe window was
/// dropped by the stream while the producer said "published". Now it says how many
/// the stream discarded.
#[tokio::test(flavor = "multi_thread")]
async fn the_producer_says_when_the_stream_discards_a_batch_as_a_duplicate() {
    let env = TestEnv::new("hard_discarded").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..25).map(|i| doc! { "_id": i }))
        .await
        .expect("insert");
    let first = env
        .producer("r", &["run", "--batch-size", "10"])
        .await
        .expect("run");
    assert_success(&first, "producer");
    assert!(
        !e2e::stdout(&first).contains("discarded"),
        "{}",
        e2e::stdout(&first)
    );
    let again = env
        .producer("r", &["run", "--batch-size", "10", "--restart"])
        .await
        .expect("run again");
    assert_success(&again, "producer --restart");
    let text = e2e::stdout(&again);
    assert!(
        text.contains(
            "users: 25 documents, 3 batches; 3 of them discarded by the stream as duplicates"
        ),
        "{text}"
    );
}

/// Bug 5 (when is a run done): `--exit-when-done` counted ledger rows, so after a
/// `--restart` with another batch size the earlier publication's batches made a
/// consumer stop at once while this publication's were still in the stream. Now the
/// stream must be drained too.
#[tokio::test(flavor = "multi_thread")]
async fn exit_when_done_waits_for_this_publications_batches_after_a_restart() {
    let env = TestEnv::new("hard_done_restart").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..2000).map(|i| doc! { "_id": i }))
        .await
        .expect("insert");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "500"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("first publication consumed");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "700", "--restart"])
            .await
            .expect("run again"),
        "producer --restart --batch-size 700",
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("second publication consumed");
    let js = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await.expect("nats"));
    let info = js
        .get_stream(&env.stream)
        .await
        .expect("stream")
        .consumer_info("writers-r")
        .await
        .expect("consumer info");
    assert_eq!(
        (info.num_pending, info.num_ack_pending),
        (0, 0),
        "the consumer said done with batches still in the stream"
    );
    let ledger: i64 = env
        .pg()
        .await
        .expect("pg")
        .query_one("SELECT count(*) FROM _migrate_ledger WHERE run = 'r'", &[])
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(
        ledger,
        4 + 3,
        "both publications' batches are in the ledger"
    );
}

/// Bugs 5 and 6: exactly-once depended on batch boundaries. Publishing a run again cut
/// into other batches (another `--batch-size`, a `--restart`, a document inserted
/// before the others meanwhile) landed every document twice where the mapping had no
/// `_id` column, and otherwise rejected all of them as duplicate keys, leaving `status`
/// INCONSISTENT. Now every table has a key from `_id`, and documents whose key is in
/// the table already are skipped and counted as such, never written twice or rejected.
#[tokio::test(flavor = "multi_thread")]
async fn every_document_lands_once_whatever_the_batch_boundaries() {
    let env = TestEnv::new("hard_boundaries").await.expect("env");
    for name in ["keyed", "unkeyed"] {
        env.db()
            .collection::<Document>(name)
            .insert_many((0..2000).map(|i| doc! { "_id": i, "name": format!("n{i}") }))
            .await
            .expect("insert");
    }
    let mapping_arg = env.write_file(
        "m.toml",
        "[collections.unkeyed]\ncolumns = [ { path = \"name\", type = \"text\" } ]\n",
    );
    assert_success(
        &env.producer("r", &["run", "--batch-size", "500"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 2, &["--mapping", &mapping_arg], CONSUMERS_LIMIT)
        .await
        .expect("first publication");
    // A document before all others shifts every batch's contents.
    for name in ["keyed", "unkeyed"] {
        env.db()
            .collection::<Document>(name)
            .insert_one(doc! { "_id": -1, "name": "first" })
            .await
            .expect("insert");
    }
    assert_success(
        &env.producer("r", &["run", "--batch-size", "700", "--restart"])
            .await
            .expect("run again"),
        "producer --restart --batch-size 700",
    );
    env.run_consumers("r", 2, &["--mapping", &mapping_arg], CONSUMERS_LIMIT)
        .await
        .expect("second publication");

    let pg = env.pg().await.expect("pg");
    for (table, name) in [("keyed", "doc->>'name'"), ("unkeyed", "name")] {
        let row = pg
            .query_one(
                &format!("SELECT count(*), count(DISTINCT {name}) FROM {table}"),
                &[],
            )
            .await
            .expect("count");
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            (2001, 2001),
            "{table}: every document once"
        );
    }
    let ledger = pg
        .query(
            "SELECT collection, sum(rows_written)::int8, sum(rows_rejected)::int8, sum(rows_already)::int8 FROM _migrate_ledger GROUP BY collection ORDER BY collection",
            &[],
        )
        .await
        .expect("ledger");
    let ledger: Vec<(String, i64, i64, i64)> = ledger
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        ledger,
        [
            ("keyed".to_string(), 2001, 0, 2000),
            ("unkeyed".to_string(), 2001, 0, 2000)
        ]
    );
    let (code, text) = env.mongo2pg_report("r", &["status"]).await.expect("status");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("skipped as already landed: 4000 documents"),
        "status says what the ledger skipped: {text}"
    );
    let (code, text) = env
        .mongo2pg_report("r", &["verify", "--mapping", &mapping_arg])
        .await
        .expect("verify");
    assert_eq!(code, Some(0), "{text}");
}

/// Bug 9 (stopping): a consumer waiting on a PostgreSQL that stopped answering only
/// logged "stop requested" on SIGTERM and never exited. Now a batch that does not
/// finish within the grace period after a stop is abandoned (never committed, left to
/// be delivered again) and the process exits.
#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_stops_on_sigterm_while_postgres_hangs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let env = TestEnv::new("hard_stop_hung").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..20_000).map(|i| doc! { "_id": i, "pad": "x".repeat(200) }))
        .await
        .expect("insert");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "200"])
            .await
            .expect("run"),
        "producer",
    );

    // A proxy in front of PostgreSQL that can stop passing bytes on, as a server that
    // stops answering would.
    let target = url::Url::parse(&env.database_url).expect("url");
    let upstream = format!(
        "{}:{}",
        target.host_str().unwrap_or("127.0.0.1"),
        target.port().unwrap_or(5432)
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let mut proxied = target.clone();
    proxied
        .set_port(Some(listener.local_addr().expect("addr").port()))
        .expect("port");
    let frozen = Arc::new(AtomicBool::new(false));
    let pumps_frozen = frozen.clone();
    let proxy = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            for (mut from, mut to) in [(client_read, server_write), (server_read, client_write)] {
                let frozen = pumps_frozen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0_u8; 16 * 1024];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        while frozen.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });

    let consumer = env
        .command("consumer", "r")
        .args(["run", "--writers", "2"])
        .env("DATABASE_URL", proxied.as_str())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("consumer");
    let pg = env.pg().await.expect("pg");
    let deadline = std::time::Instant::now() + CONSUMERS_LIMIT;
    loop {
        let landed: i64 = pg
            .query_one("SELECT count(*) FROM _migrate_ledger", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if landed >= 5 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nothing landed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    frozen.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = consumer.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(40), consumer.wait_with_output())
        .await
        .expect("the consumer exits while PostgreSQL hangs")
        .expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    proxy.abort();
}

/// Bug 9 (while running): a batch whose COPY PostgreSQL never answered held its writer
/// forever, kept alive by progress acks. Now a batch not landed within
/// `--batch-timeout` is given up (never committed, delivered again) and lands, once,
/// when PostgreSQL answers again. Here a session holding the table's lock stands in
/// for a server that stopped answering.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_postgres_never_answers_is_given_up_and_lands_later_once() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let env = TestEnv::new("hard_batch_timeout").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..60).map(|i| doc! { "_id": format!("u{i:02}"), "n": i * 7 }))
        .await
        .expect("insert");
    let pg = env.pg().await.expect("pg");
    pg.batch_execute("CREATE TABLE users (_id text PRIMARY KEY, doc jsonb)")
        .await
        .expect("table");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "20"])
            .await
            .expect("run"),
        "producer",
    );
    let locker = env.pg().await.expect("pg");
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let mut consumer = env
        .spawn_consumer("r", &["--batch-timeout", "2s", "--max-deliver", "100"])
        .expect("consumer");
    let stderr = consumer.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("not landed within --batch-timeout") {
                return;
            }
        }
        panic!("the consumer ended without giving up on a batch");
    })
    .await
    .expect("a batch is given up within 60 s");
    let committed: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_ledger", &[])
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(committed, 0, "nothing committed while the table is locked");
    locker.batch_execute("COMMIT").await.expect("unlock");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = tokio::time::timeout(CONSUMERS_LIMIT, consumer.wait())
        .await
        .expect("the consumer finishes once PostgreSQL answers")
        .expect("wait");
    assert!(status.success());
    let rows = pg
        .query(
            "SELECT _id, (doc->'n'->>'$numberInt')::int FROM users ORDER BY _id",
            &[],
        )
        .await
        .expect("rows");
    let found: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(String, i32)> = (0..60).map(|i| (format!("u{i:02}"), i * 7)).collect();
    assert_eq!(found, expected, "every document once, with its content");
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

/// An empty collection gets its table, as an application reading it expects; it got
/// none (no batch, so no consumer ever met it).
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_collection_gets_its_table() {
    let env = TestEnv::new("hard_empty").await.expect("env");
    env.db()
        .create_collection("nothing_yet")
        .await
        .expect("create");
    env.db()
        .collection::<Document>("something")
        .insert_one(doc! { "_id": 1 })
        .await
        .expect("insert");
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    let pg = env.pg().await.expect("pg");
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM nothing_yet", &[])
        .await
        .expect("the empty collection's table")
        .get(0);
    assert_eq!(rows, 0);
    let (code, text) = env.mongo2pg_report("r", &["status"]).await.expect("status");
    assert_eq!(code, Some(0), "{text}");
    e2e::compare::assert_exact_copy(&env, "something")
        .await
        .expect("the other collection");
}

/// A collection whose name holds a comma can be chosen (`--collection 'a\,b'`); it
/// was split into two names that did not exist.
#[tokio::test(flavor = "multi_thread")]
async fn a_collection_named_with_a_comma_can_be_chosen() {
    let env = TestEnv::new("hard_comma").await.expect("env");
    for name in ["a,b", "a", "b"] {
        env.db()
            .collection::<Document>(name)
            .insert_one(doc! { "_id": 1, "from": name })
            .await
            .expect("insert");
    }
    assert_success(
        &env.producer("r", &["run", "--collection", r"a\,b"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    let pg = env.pg().await.expect("pg");
    let landed: Vec<String> = pg
        .query("SELECT DISTINCT collection FROM _migrate_ledger", &[])
        .await
        .expect("ledger")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(landed, ["a,b"]);
    e2e::compare::assert_exact_copy(&env, "a,b")
        .await
        .expect("the collection with a comma");
}
