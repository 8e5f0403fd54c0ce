//! Kill anything, lose nothing: each test migrates 100,000 documents with 4 consumer
//! processes while something is killed or broken, then checks that the target is
//! exactly the source (rows + rejects == documents, no `_id` twice, equal content
//! checksums). Each is bounded in time and stops by itself; servers that are stopped
//! are private instances, never the machine's shared ones.

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::compare::assert_exact_copy;
use e2e::private::{PrivateNats, PrivatePostgres};
use e2e::{assert_success, Services, TestEnv};
use rand::Rng;
use tokio::process::Child;

const DOCS: &str = "100000";
const CONSUMERS: usize = 4;
const LIMIT: Duration = Duration::from_secs(300);

async fn seed(env: &TestEnv) {
    let out = env
        .mongo2pg("r", &["seed", "--count", DOCS, "--collection", "users"])
        .await
        .expect("seed");
    assert_success(&out, "seed");
}

fn consumers(env: &TestEnv) -> Vec<Child> {
    (0..CONSUMERS)
        .map(|_| env.spawn_consumer("r", &[]).expect("consumer"))
        .collect()
}

fn spawn_producer(env: &TestEnv, args: &[&str]) -> Child {
    env.command("producer", "r")
        .arg("run")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("producer")
}

/// Waits for every consumer to exit by itself (the run is done), successfully.
async fn finish(children: Vec<Child>) -> Result<()> {
    let outputs = tokio::time::timeout(
        LIMIT,
        futures::future::join_all(children.into_iter().map(Child::wait_with_output)),
    )
    .await
    .context("consumers did not finish in time")?;
    for output in outputs {
        assert_success(&output?, "consumer");
    }
    Ok(())
}

/// The end of every fault test: the producer succeeded, the consumers exited by
/// themselves, and the target is exactly the source.
async fn finish_run(env: &TestEnv, producer: Child, consumers: Vec<Child>) {
    assert_success(
        &producer.wait_with_output().await.expect("producer"),
        "producer",
    );
    finish(consumers).await.expect("consumers finish");
    assert_exact_copy(env, "users").await.expect("exact copy");
}

/// Batches committed so far in the env's ledger (0 before the table exists).
async fn committed_batches(env: &TestEnv) -> i64 {
    let Ok(pg) = env.pg().await else { return 0 };
    match pg
        .query_one("SELECT count(*) FROM _migrate_ledger", &[])
        .await
    {
        Ok(row) => row.get(0),
        Err(_) => 0,
    }
}

/// Batches the producer has checkpointed so far.
async fn published_batches(env: &TestEnv) -> u64 {
    let Ok(client) = async_nats::connect(&env.nats_url).await else {
        return 0;
    };
    let js = async_nats::jetstream::new(client);
    let Ok(kv) = js.get_key_value(format!("{}_state", env.stream)).await else {
        return 0;
    };
    match kv.get("r.checkpoint.users").await {
        Ok(Some(bytes)) => {
            common::run_state::Checkpoint::from_bytes(&bytes).map_or(0, |c| c.batches)
        }
        _ => 0,
    }
}

async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(LIMIT, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn send_signal(child: &Child, signal: &str) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_killed_at_random_moments_lose_and_duplicate_nothing() {
    let env = TestEnv::new("killconsumers").await.expect("env");
    seed(&env).await;
    let mut children = consumers(&env);
    // 100 batches of 1,000: every writer is busy with one while the run lasts, so a
    // kill lands in the middle of a batch.
    let producer = spawn_producer(&env, &["--batch-size", "1000"]);
    wait_until("batches to start landing", || async {
        committed_batches(&env).await >= 4
    })
    .await;

    let mut kills = 0;
    let mut kills_mid_run = 0;
    while kills < 6 {
        let pause = rand::rng().random_range(50..500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let victim = rand::rng().random_range(0..CONSUMERS);
        if committed_batches(&env).await < 100 {
            kills_mid_run += 1;
        }
        if kills == 3 {
            // Once gracefully: SIGTERM finishes the batch in hand and exits 0.
            send_signal(&children[victim], "-TERM");
            let out = tokio::time::timeout(LIMIT, children.remove(victim).wait_with_output())
                .await
                .expect("stops after SIGTERM")
                .expect("output");
            assert_success(&out, "consumer stopped by SIGTERM");
        } else {
            send_signal(&children[victim], "-KILL");
            let _ = children.remove(victim).wait().await;
        }
        children.insert(victim, env.spawn_consumer("r", &[]).expect("restart"));
        kills += 1;
    }
    assert!(
        kills_mid_run >= 3,
        "the run ended before the kills: the test proves nothing"
    );

    finish_run(&env, producer, children).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_killed_mid_run_resumes_from_its_checkpoint() {
    let env = TestEnv::new("killproducer").await.expect("env");
    seed(&env).await;
    let children = consumers(&env);
    // Small batches make the run long enough to kill in the middle.
    let mut producer = spawn_producer(&env, &["--batch-size", "100"]);
    wait_until("the producer to publish some batches", || async {
        published_batches(&env).await >= 50
    })
    .await;
    send_signal(&producer, "-KILL");
    let status = producer.wait().await.expect("producer exit");
    assert!(
        !status.success(),
        "the producer finished before it was killed"
    );
    let published = published_batches(&env).await;
    assert!(published < 1000, "killed after {published} of 1000 batches");

    let rerun = spawn_producer(&env, &["--batch-size", "100"])
        .wait_with_output()
        .await
        .expect("rerun");
    assert_success(&rerun, "producer rerun");
    let summary = e2e::stdout(&rerun);
    assert!(
        summary.contains("100000 documents, 1000 batches (resumed)"),
        "{summary}"
    );

    finish(children).await.expect("consumers finish");
    assert_exact_copy(&env, "users").await.expect("exact copy");
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_restarting_mid_run_loses_nothing() {
    let nats = PrivateNats::start("restart").expect("private nats");
    let services = Services {
        nats_url: nats.url(),
        ..Services::shared()
    };
    let mut nats = nats;
    let env = TestEnv::on("natsrestart", services).await.expect("env");
    seed(&env).await;
    let children = consumers(&env);
    let producer = spawn_producer(&env, &["--batch-size", "200"]);
    wait_until("some batches to land", || async {
        committed_batches(&env).await >= 20
    })
    .await;
    let landed = committed_batches(&env).await;
    assert!(landed < 500, "the run ended before the restart");
    nats.restart(Duration::from_secs(1)).expect("restart nats");

    finish_run(&env, producer, children).await;
}

/// A producer asked to stop while NATS is down stops within its grace (10 s of tries
/// once stopping), instead of first trying its NATS calls again for two minutes; run
/// again once NATS is back, it ends the run, and nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_producer_stopped_while_nats_is_down_ends_within_seconds() {
    let mut nats = PrivateNats::start("stopdown").expect("private nats");
    let services = Services {
        nats_url: nats.url(),
        ..Services::shared()
    };
    let env = TestEnv::on("stopdown", services).await.expect("env");
    seed(&env).await;
    let producer = spawn_producer(&env, &["--batch-size", "200"]);
    wait_until("some batches to be published", || async {
        published_batches(&env).await >= 20
    })
    .await;
    nats.stop();
    // Long enough for the producer to be trying its calls again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    send_signal(&producer, "-TERM");
    let stopping = std::time::Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(60), producer.wait_with_output())
        .await
        .expect("the producer did not stop within a minute")
        .expect("producer");
    let took = stopping.elapsed();
    let said = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        took < Duration::from_secs(30),
        "the producer took {took:?} to stop:\n{said}"
    );
    assert!(!stopped.status.success(), "{said}");
    assert!(said.contains("stopped by a signal"), "{said}");

    nats.start_again().expect("nats back");
    let children = consumers(&env);
    let producer = spawn_producer(&env, &["--batch-size", "200"]);
    finish_run(&env, producer, children).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarting_mid_run_loses_nothing() {
    let pg = PrivatePostgres::start("restart").expect("private postgres");
    let services = Services {
        admin_database_url: pg.admin_url(),
        ..Services::shared()
    };
    let env = TestEnv::on("pgrestart", services).await.expect("env");
    seed(&env).await;
    let children = consumers(&env);
    let producer = spawn_producer(&env, &["--batch-size", "200"]);
    wait_until("some batches to land", || async {
        committed_batches(&env).await >= 20
    })
    .await;
    assert!(
        committed_batches(&env).await < 500,
        "the run ended before the restart"
    );
    pg.restart(Duration::from_secs(1))
        .expect("restart postgres");

    finish_run(&env, producer, children).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_unknown_versions_are_dead_lettered_and_the_run_completes() {
    let env = TestEnv::new("garbage").await.expect("env");
    seed(&env).await;
    let children = consumers(&env);
    let producer = spawn_producer(&env, &[]);
    wait_until("the stream to exist", || async {
        published_batches(&env).await >= 1
    })
    .await;

    let client = async_nats::connect(&env.nats_url).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let subject = format!("{}.batch.r.users", env.stream);
    let mut future = common::batch::Envelope::new("r", "users", 0, vec![]);
    future.version = 99;
    // A packed batch cut short: its LZ4 block ends before its header's length.
    let docs = (0..100)
        .map(|i| {
            let doc = bson::rawdoc! { "_id": i, "name": "a name that repeats" };
            common::batch::Doc::Inline(doc.into_bytes().into())
        })
        .collect();
    let whole = common::compression::pack(
        common::batch::Envelope::new("r", "users", 1, docs).encode(),
        common::compression::Compression::Lz4,
    );
    let cut = whole[..whole.len() - 10].to_vec();
    for payload in [
        b"\x00\xffnot msgpack at all".to_vec(),
        future.encode(),
        cut.clone(),
    ] {
        js.publish(subject.clone(), payload.into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }

    assert_success(
        &producer.wait_with_output().await.expect("producer"),
        "producer",
    );
    // The run completes: the dead letters do not hold the consumers up.
    finish(children).await.expect("consumers finish");
    assert_exact_copy(&env, "users").await.expect("exact copy");

    let pg = env.pg().await.expect("pg");
    let rows = pg
        .query(
            "SELECT reason, payload FROM _migrate_dead_letters ORDER BY stream_seq",
            &[],
        )
        .await
        .expect("dead letters");
    let reasons: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("a compressed batch that does not decompress")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not a batch envelope")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("format version 99")),
        "{reasons:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.get::<_, Vec<u8>>(1) == future.encode()),
        "payload kept byte for byte"
    );
    assert!(
        rows.iter().any(|r| r.get::<_, Vec<u8>>(1) == cut),
        "a packed payload kept as it came"
    );
    let dlq = js
        .get_stream(format!("{}_DLQ", env.stream))
        .await
        .expect("dlq")
        .info()
        .await
        .expect("info")
        .state
        .messages;
    assert_eq!(dlq, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_producers_started_for_the_same_run_duplicate_nothing() {
    let env = TestEnv::new("twoproducers").await.expect("env");
    seed(&env).await;
    let children = consumers(&env);
    let first = spawn_producer(&env, &["--batch-size", "1000"]);
    let second = spawn_producer(&env, &["--batch-size", "1000"]);
    assert_success(
        &first.wait_with_output().await.expect("first"),
        "first producer",
    );
    assert_success(
        &second.wait_with_output().await.expect("second"),
        "second producer",
    );
    finish(children).await.expect("consumers finish");
    let digest = assert_exact_copy(&env, "users").await.expect("exact copy");
    assert_eq!(digest.count, 100_000);
    let pg = env.pg().await.expect("pg");
    let batches: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_ledger", &[])
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(batches, 100, "each batch committed once");
}

/// A stream at its limits (made beforehand with `max_msgs` and `discard: new`, as an
/// operator bounding NATS' disk would) is back-pressure: the producer waits, saying
/// so, while no consumer runs, and resumes when consumers make room; nothing is lost
/// and the run completes. Retried as a transient failure it would have failed the run
/// after about two minutes.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_stream_holds_the_producer_back_until_consumers_make_room() {
    let env = TestEnv::new("full_stream").await.expect("env");
    let out = env
        .mongo2pg("r", &["seed", "--count", "20000", "--collection", "users"])
        .await
        .expect("seed");
    assert_success(&out, "seed");
    let client = async_nats::connect(&env.nats_url).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: env.stream.clone(),
        subjects: vec![
            format!("{}.batch.>", env.stream),
            format!("{}.change.>", env.stream),
        ],
        retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        storage: async_nats::jetstream::stream::StorageType::File,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        max_messages: 4,
        duplicate_window: common::broker::DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
    .expect("a stream of at most 4 messages");

    let producer = spawn_producer(&env, &["--batch-size", "500", "--max-in-flight", "2"]);
    wait_until("the stream to fill", || async {
        published_batches(&env).await >= 4
    })
    .await;
    // Full, and no consumer: the producer waits instead of failing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(published_batches(&env).await, 4, "a full stream took more");
    let stream = js.get_stream(&env.stream).await.expect("stream");
    assert_eq!(stream.cached_info().state.messages, 4);

    let consumers = consumers(&env);
    let producer = tokio::time::timeout(LIMIT, producer.wait_with_output())
        .await
        .expect("the producer finishes once consumers drain the stream")
        .expect("producer");
    assert_success(&producer, "producer");
    let said = String::from_utf8_lossy(&producer.stderr);
    assert!(
        said.contains("the stream is full"),
        "the producer did not say it waited on a full stream: {said}"
    );
    finish(consumers).await.expect("consumers finish");
    assert_exact_copy(&env, "users").await.expect("exact copy");
}

mod finish;
mod stalls;
