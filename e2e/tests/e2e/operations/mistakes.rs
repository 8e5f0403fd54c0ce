//! Mistakes a user makes on the command line that used to pass as success or as the
//! wrong error (issue #12, weak spots): a mistyped run, a consumer waiting for a
//! producer that never comes, a run name reused on another database, views and
//! `mongodb+srv://` URIs.

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `mongo2pg replay` and `mongo2pg requeue` of a run that never reached the database
/// said "0 rejects landed" and exited 0. Now: one line naming the run, non-zero.
#[tokio::test(flavor = "multi_thread")]
async fn replay_and_requeue_of_an_unknown_run_say_so() {
    let env = TestEnv::new("mis_unknown_run").await.expect("env");
    for command in ["replay", "requeue"] {
        let out = env
            .command("mongo2pg", "no-such-run")
            .arg(command)
            .output()
            .await
            .expect(command);
        e2e::assert_one_line_error(&out, "run \"no-such-run\" has landed nothing");
    }
    // A run that landed, with nothing to replay, is no error.
    env.db()
        .collection::<Document>("users")
        .insert_one(doc! { "_id": 1 })
        .await
        .expect("insert");
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    env.run_consumers("r", 1, &[], std::time::Duration::from_secs(60))
        .await
        .expect("consumer");
    let out = env
        .command("mongo2pg", "r")
        .arg("replay")
        .output()
        .await
        .expect("replay");
    assert_success(&out, "replay of a run without rejects");
    assert!(e2e::stdout(&out).contains("0 rejects landed"));
    let out = env
        .command("mongo2pg", "r")
        .args(["replay", "--collection", "userz"])
        .output()
        .await
        .expect("replay");
    e2e::assert_one_line_error(&out, "collection \"userz\"");
}

/// `--exit-when-done` for a run no producer has announced waited without a word.
/// Now it says what it waits for, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_waiting_for_a_producer_that_never_came_says_so() {
    let env = TestEnv::new("mis_no_producer").await.expect("env");
    let mut child = env
        .command("consumer", "never-published")
        .args(["run", "--exit-when-done", "--writers", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("consumer");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let said = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("no producer has announced this run yet") {
                return Some(line);
            }
        }
        None
    })
    .await
    .expect("the consumer says it waits for a producer within 30 s")
    .expect("the line");
    assert!(
        said.contains("producer run --run never-published"),
        "{said}"
    );
    child.kill().await.expect("kill");
}

/// A run name reused with another MongoDB database was "published (resumed)": two
/// sources mixed under one run. Now it is refused, naming both; `--restart` publishes
/// the run again from the new source.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_name_reused_on_another_database_is_refused() {
    let env = TestEnv::new("mis_other_source").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..5).map(|i| doc! { "_id": format!("u{i}") }))
        .await
        .expect("insert");
    let other_name = format!("{}_other", env.db().name());
    let other = env.db().client().database(&other_name);
    other
        .collection::<Document>("users")
        .insert_many((0..7).map(|i| doc! { "_id": format!("u{i}"), "other": true }))
        .await
        .expect("insert into the other database");

    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    env.run_consumers("r", 1, &[], std::time::Duration::from_secs(60))
        .await
        .expect("consumer");
    let out = env
        .producer("r", &["run", "--mongodb-database", &other_name])
        .await
        .expect("run on the other database");
    e2e::assert_one_line_error(&out, "run \"r\" reads database");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(env.db().name()) && stderr.contains(&other_name),
        "{stderr}"
    );

    let out = env
        .producer(
            "r",
            &["run", "--mongodb-database", &other_name, "--restart"],
        )
        .await
        .expect("restart on the other database");
    assert_success(&out, "producer --restart");
    env.run_consumers("r", 1, &[], std::time::Duration::from_secs(60))
        .await
        .expect("consumer");
    let pg = env.pg().await.expect("pg");
    let rows = pg
        .query("SELECT _id, doc->>'other' FROM users ORDER BY _id", &[])
        .await
        .expect("rows");
    let found: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // The first five landed from the first source; the restart's seven documents of
    // the other one found _id 0-4 landed already and added 5 and 6.
    let expected: Vec<(String, Option<String>)> = (0..7)
        .map(|i| (format!("u{i}"), (i >= 5).then(|| "true".to_string())))
        .collect();
    assert_eq!(found, expected);
    other.drop().await.expect("drop the other database");
}

/// Views were migrated as tables without a word, and MongoDB's system collections
/// skipped silently. Now both are named in a warning; a view asked for by name is
/// refused with what to do instead.
#[tokio::test(flavor = "multi_thread")]
async fn views_are_named_not_migrated_silently() {
    let env = TestEnv::new("mis_views").await.expect("env");
    let db = env.db();
    db.collection::<Document>("users")
        .insert_many((0..3).map(|i| doc! { "_id": i, "active": i % 2 == 0 }))
        .await
        .expect("insert");
    db.run_command(doc! {
        "create": "active_users",
        "viewOn": "users",
        "pipeline": [ { "$match": { "active": true } } ],
    })
    .await
    .expect("a view");

    let out = env.producer("r", &["run"]).await.expect("run");
    assert_success(&out, "producer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("views are not migrated") && stderr.contains("active_users"),
        "{stderr}"
    );
    let text = e2e::stdout(&out);
    assert!(
        text.contains("users") && !text.contains("active_users"),
        "{text}"
    );

    let out = env
        .producer("r2", &["run", "--collection", "active_users"])
        .await
        .expect("run");
    e2e::assert_one_line_error(&out, "\"active_users\" in database");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a view"));
}

/// `mongodb+srv://` URIs were refused as malformed: the driver's DNS resolver was
/// off. Now the SRV record is looked up; a name with none is "cannot reach".
#[tokio::test(flavor = "multi_thread")]
async fn mongodb_srv_uris_are_looked_up() {
    let env = TestEnv::new("mis_srv").await.expect("env");
    let out = env
        .command("producer", "r")
        .arg("run")
        .env(
            "MONGODB_URI",
            "mongodb+srv://u:SrvSecret@cluster0.example.invalid/",
        )
        .output()
        .await
        .expect("run");
    e2e::assert_one_line_error(&out, "cannot reach MongoDB at mongodb+srv://");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("malformed"), "{stderr}");
    assert!(!stderr.contains("SrvSecret"), "{stderr}");
}

/// Settings that silently did something else are refused in one line: a batch given
/// no time at all (`--batch-timeout 0s` dead-lettered every healthy batch), a batch size
/// no message can hold (past 2^31 it showed the driver's debug text), a variable set
/// both directly and through its `_FILE` (the variable silently won), a NATS token
/// beside a user and password (the token silently won).
#[tokio::test(flavor = "multi_thread")]
async fn settings_that_would_silently_do_something_else_are_refused() {
    let env = TestEnv::new("mistakes_settings").await.expect("env");
    let file = env.write_file("url", "postgres://somewhere/else");
    /// Binary, arguments, variables, what the error line says.
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "consumer",
            vec!["run", "--batch-timeout", "0s"],
            vec![],
            "must be longer than zero",
        ),
        (
            "producer",
            vec!["run", "--batch-size", "4294967296"],
            vec![],
            "a batch holds from 1 to",
        ),
        (
            "mongo2pg",
            vec!["status"],
            vec![("DATABASE_URL_FILE", file.as_str())],
            "both DATABASE_URL and DATABASE_URL_FILE are set",
        ),
        (
            "mongo2pg",
            vec!["status"],
            vec![
                ("NATS_TOKEN", "t0ken"),
                ("NATS_USER", "u"),
                ("NATS_PASSWORD", "p"),
            ],
            "cannot be used with",
        ),
        // The missing argument is named (the line stopped before it).
        (
            "mongo2pg",
            vec!["status"],
            vec![("NATS_PASSWORD", "p")],
            "required arguments were not provided: --nats-user <NATS_USER>",
        ),
    ];
    for (binary, args, vars, expected) in cases {
        let out = env
            .command(binary, "r")
            .args(&args)
            .envs(vars.iter().copied())
            .output()
            .await
            .expect("ran");
        e2e::assert_one_line_error(&out, expected);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
