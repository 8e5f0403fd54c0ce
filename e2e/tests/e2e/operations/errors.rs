//! Permanent errors fail fast: a wrong password for any of the three servers, an
//! unknown database or collection, a malformed URI or mapping file, a duration no one
//! can wait for. Each exits non-zero within seconds with one line naming the problem,
//! and the secret appears nowhere in what was printed.

use std::process::Output;
use std::time::Duration;

use e2e::private::{PrivateMongo, PrivateNats, PrivatePostgres};
use e2e::TestEnv;

/// Permanent errors are said well within this; a retry loop would take minutes.
const FAST: Duration = Duration::from_secs(10);

/// A password no output may contain.
const SECRET: &str = "Sup3rSecretPw";

/// Runs `command`, then checks: non-zero exit within [`FAST`], one error line holding
/// `expected`, and [`SECRET`] in neither stdout nor stderr.
async fn fails_fast(command: tokio::process::Command, expected: &str) -> Output {
    e2e::assert_fails_fast(command, expected, SECRET, FAST).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_postgres_password_is_said_at_once_and_never_printed() {
    let env = TestEnv::new("errors_pg_password").await.expect("env");
    let pg = PrivatePostgres::start_with_password("errors", "the-right-one").expect("pg");
    let url = format!(
        "postgres://postgres:{SECRET}@127.0.0.1:{}/postgres",
        pg.port
    );
    let mut consumer = env.command("consumer", "r");
    consumer
        .args(["run", "--exit-when-done"])
        .env("DATABASE_URL", &url);
    fails_fast(consumer, "refused the login").await;
    let mut replay = env.command("mongo2pg", "r");
    replay.arg("replay").env("DATABASE_URL", &url);
    fails_fast(replay, "refused the login").await;
    let mut status = env.command("mongo2pg", "r");
    status.arg("status").env("DATABASE_URL", &url);
    fails_fast(status, "refused the login").await;
    // The password as a query parameter is hidden too.
    let mut query = env.command("consumer", "r");
    query.args(["run"]).env(
        "DATABASE_URL",
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?password={SECRET}",
            pg.port
        ),
    );
    fails_fast(query, "refused the login").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_postgres_database_or_a_malformed_url_is_said_at_once() {
    let env = TestEnv::new("errors_pg_database").await.expect("env");
    let mut url = url::Url::parse(&env.database_url).expect("url");
    url.set_path("no_such_database_here");
    let mut unknown = env.command("consumer", "r");
    unknown.arg("run").env("DATABASE_URL", url.as_str());
    fails_fast(unknown, "\"no_such_database_here\" does not exist").await;

    let mut malformed = env.command("consumer", "r");
    malformed.arg("run").env(
        "DATABASE_URL",
        format!("postgres://postgres:{SECRET}@127.0.0.1:notaport/x"),
    );
    fails_fast(malformed, "malformed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_mongodb_password_is_said_at_once_and_never_printed() {
    let env = TestEnv::new("errors_mongo_password").await.expect("env");
    let mongo = PrivateMongo::start_with_user("errors", "root", "the-right-one")
        .await
        .expect("mongod");
    let mut run = env.command("producer", "r");
    run.arg("run").env(
        "MONGODB_URI",
        format!(
            "mongodb://root:{SECRET}@127.0.0.1:{}/?directConnection=true",
            mongo.port
        ),
    );
    fails_fast(run, "refused the login").await;

    let mut malformed = env.command("producer", "r");
    malformed.arg("run").env(
        "MONGODB_URI",
        format!("mongodb://root:{SECRET}@127.0.0.1:27017/?authMechanism=NOPE"),
    );
    fails_fast(malformed, "malformed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_nats_password_is_said_at_once_and_never_printed() {
    let env = TestEnv::new("errors_nats_password").await.expect("env");
    let nats = PrivateNats::start_with_user("errors", "migrator", "the-right-one").expect("nats");
    env.db()
        .collection::<bson::Document>("users")
        .insert_one(bson::doc! { "_id": 1 })
        .await
        .expect("insert");
    let url = format!("nats://migrator:{SECRET}@127.0.0.1:{}", nats.port);
    let mut consumer = env.command("consumer", "r");
    consumer.arg("run").env("NATS_URL", &url);
    fails_fast(consumer, "refused the login").await;
    let mut producer = env.command("producer", "r");
    producer.arg("run").env("NATS_URL", &url);
    fails_fast(producer, "refused the login").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_collections_databases_and_bad_mappings_are_said_at_once() {
    let env = TestEnv::new("errors_names").await.expect("env");
    env.db()
        .collection::<bson::Document>("present")
        .insert_one(bson::doc! { "_id": 1 })
        .await
        .expect("insert");

    let mut collection = env.command("producer", "r");
    collection.args(["run", "--collection", "absent"]);
    fails_fast(collection, "collection \"absent\" does not exist").await;

    let mut database = env.command("producer", "r");
    database
        .arg("run")
        .env("MONGODB_DATABASE", "e2e_no_such_database");
    fails_fast(database, "\"e2e_no_such_database\" has no collections").await;

    let dir = std::env::temp_dir().join(format!("errors-mapping-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mapping = dir.join("m.toml");
    std::fs::write(
        &mapping,
        "[collections.present]\ncolums = [ { path = \"_id\", type = \"int4\" } ]\n",
    )
    .expect("write");
    let mut typo = env.command("consumer", "r");
    typo.args(["run", "--mapping"]).arg(&mapping);
    fails_fast(typo, "unknown field `colums`").await;
    std::fs::write(
        &mapping,
        "[collections.present]\ncolumns = [ { path = \"_id\", type = \"int4\" } ]\nmax_new_columns = 18446744073709551615\n",
    )
    .expect("write");
    let mut overflow = env.command("mongo2pg", "r");
    overflow.args(["verify", "--mapping"]).arg(&mapping);
    fails_fast(overflow, "lower max_new_columns").await;
    let _ = std::fs::remove_dir_all(&dir);

    let mut wait = env.command("consumer", "r");
    wait.args(["run", "--ack-wait", "99999999999999999999999s"]);
    fails_fast(wait, "--ack-wait").await;
}

/// A password holding an unencoded `/`, `?` or `#` cuts the URL's authority short, so
/// a URL parser sees no password: the whole of it was printed in the error line. Each
/// server's URL now fails in one line that holds no part of it and says to
/// percent-encode.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_with_unencoded_special_characters_is_never_printed() {
    let env = TestEnv::new("errors_unencoded").await.expect("env");
    let secret = "Sup3r/Secret?Pw#1";
    let pg_url = format!("postgres://postgres:{secret}@127.0.0.1:1/postgres");
    let mongo_url = format!("mongodb://admin:{secret}@127.0.0.1:1/?serverSelectionTimeoutMS=2000");
    let nats_url = format!("nats://user:{secret}@127.0.0.1:1");
    for (variable, url) in [
        ("DATABASE_URL", &pg_url),
        ("MONGODB_URI", &mongo_url),
        ("NATS_URL", &nats_url),
    ] {
        let mut status = env.command("mongo2pg", "r");
        status.arg("status").env(variable, url);
        let out = tokio::time::timeout(Duration::from_secs(60), status.output())
            .await
            .expect("status ended")
            .expect("status ran");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{variable}: {printed}");
        for part in ["Sup3r", "Secret", "Pw#1"] {
            assert!(
                !printed.contains(part),
                "{variable}: {part} printed: {printed}"
            );
        }
        assert_eq!(printed.trim().lines().count(), 1, "{variable}: {printed}");
        assert!(printed.contains("percent-encode"), "{variable}: {printed}");
    }
}
