//! A server that stalls or a message that can never land: the batch is given up on,
//! retried or dead-lettered with its reason, and nothing wedges.

use std::time::Duration;

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};

const CONSUMERS_LIMIT: Duration = Duration::from_secs(120);

/// Bug 1: a child table COPY that failed (then: a child table with other columns; now
/// those get the plan's columns added, as a table does, so here a statement trigger
/// refuses every COPY) left the connection out of step, so the dead-letter insert
/// failed too and the batch was redelivered forever. Now the batch is dead-lettered
/// with PostgreSQL's reason and the consumer finishes.
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
    pg.batch_execute(
        "CREATE TABLE ppl2_tags (_parent int4, _position int4, value text, PRIMARY KEY (_parent, _position));
         CREATE FUNCTION refuse_copy() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'ppl2_tags takes no rows today'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON ppl2_tags FOR EACH STATEMENT EXECUTE FUNCTION refuse_copy();",
    )
    .await
    .expect("a child table that refuses every COPY");
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
            reason.contains("ppl2_tags takes no rows today"),
            "the reason is PostgreSQL's: {reason}"
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
            "mongo2pg"
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
