//! Live migration under fire: a seeded collection, the producer following the change
//! stream, 3 consumer processes, and a random writer (inserts with ObjectId, integer,
//! string and UUID `_id`s; `$set`/`$inc`/`$unset`/`$push` updates; replaces; deletes;
//! delete-then-reinsert of one `_id`; multi-document transactions) writing all along,
//! while processes are killed -9 and started again. After `mongo2pg cutover`, every
//! MongoDB document must equal its row and no row may exist for a deleted document.
//!
//! One test kills a consumer, then the producer, from outside at arbitrary moments; the
//! others arm a named crash point (`MIGRATE_CRASH_AT`, see `common::crash`) so that the
//! process kills itself at one precise step of the hand-off, and check it did.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bson::{doc, Binary, Bson, Document};
use e2e::compare::canonical_text;
use e2e::TestEnv;
use futures::TryStreamExt;
use mongodb::options::ReplaceOptions;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::process::Child;

const COLLECTION: &str = "items";
const CONSUMERS: usize = 3;
const RUN: &str = "live";
/// How long the random writer keeps writing after the last restart.
const WRITE_AFTER: Duration = Duration::from_secs(4);
const LIMIT: Duration = Duration::from_secs(240);

/// One `_id` of each kind the writer uses, by number.
fn make_id(n: u64) -> Bson {
    match n % 4 {
        0 => Bson::ObjectId(bson::oid::ObjectId::from_bytes({
            let mut bytes = [0u8; 12];
            bytes[4..].copy_from_slice(&n.to_be_bytes());
            bytes
        })),
        1 => Bson::Int64(n as i64),
        2 => Bson::String(format!("s-{n}")),
        _ => Bson::Binary(Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: {
                let mut bytes = [0u8; 16];
                bytes[8..].copy_from_slice(&n.to_be_bytes());
                bytes.to_vec()
            },
        }),
    }
}

fn make_doc(n: u64, rng: &mut StdRng) -> Document {
    doc! {
        "_id": make_id(n),
        "n": n as i64,
        "name": format!("item {n}"),
        "score": rng.random_range(0..1000_i32),
        "tags": ["a", "b"],
        "nested": { "x": rng.random_range(0..100_i32), "y": "z" },
    }
}

async fn seed(env: &TestEnv, count: u64) -> Result<()> {
    let collection = env.db().collection::<Document>(COLLECTION);
    let mut rng = StdRng::seed_from_u64(7);
    let mut n = 0;
    while n < count {
        let chunk: Vec<Document> = (n..(n + 5000).min(count))
            .map(|i| make_doc(i, &mut rng))
            .collect();
        n += chunk.len() as u64;
        collection.insert_many(chunk).await?;
    }
    Ok(())
}

/// Writes at random until stopped; returns how many operations it made.
async fn random_writer(
    env_db: mongodb::Database,
    client: mongodb::Client,
    seeded: u64,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) -> Result<()> {
    let collection = env_db.collection::<Document>(COLLECTION);
    let mut rng = StdRng::seed_from_u64(rand::rng().random());
    let mut next_new = seeded;
    while !stop.load(Ordering::Relaxed) {
        // Half the changes hit 200 hot documents, so that one document's changes race
        // each other across batches and consumers.
        let pick = |rng: &mut StdRng| {
            if rng.random_bool(0.5) {
                rng.random_range(0..200)
            } else {
                rng.random_range(0..next_new)
            }
        };
        let n = pick(&mut rng);
        let id = make_id(n);
        match rng.random_range(0..100) {
            0..=14 => {
                collection.insert_one(make_doc(next_new, &mut rng)).await?;
                next_new += 1;
            }
            15..=29 => {
                collection
                    .update_one(doc! { "_id": &id }, doc! { "$set": { "score": rng.random_range(0..1000_i32), "nested.x": rng.random_range(0..100_i32) } })
                    .await?;
            }
            30..=39 => {
                collection
                    .update_one(doc! { "_id": &id }, doc! { "$inc": { "score": 1 } })
                    .await?;
            }
            40..=46 => {
                collection
                    .update_one(doc! { "_id": &id }, doc! { "$unset": { "name": "" } })
                    .await?;
            }
            47..=56 => {
                collection
                    .update_one(
                        doc! { "_id": &id },
                        doc! { "$push": { "tags": format!("t{}", rng.random_range(0..10)) } },
                    )
                    .await?;
            }
            57..=66 => {
                let mut replacement = make_doc(n, &mut rng);
                replacement.insert("replaced", true);
                collection
                    .replace_one(doc! { "_id": &id }, replacement)
                    .with_options(ReplaceOptions::builder().upsert(false).build())
                    .await?;
            }
            67..=78 => {
                collection.delete_one(doc! { "_id": &id }).await?;
            }
            79..=88 => {
                // Deleted, then present again under the same `_id`.
                collection.delete_one(doc! { "_id": &id }).await?;
                let mut again = make_doc(n, &mut rng);
                again.insert("reinserted", true);
                collection.insert_one(again).await?;
            }
            _ => {
                // A transaction: its events share one cluster time.
                let mut session = client.start_session().await?;
                session.start_transaction().await?;
                let other = make_id(pick(&mut rng));
                let outcome: mongodb::error::Result<()> = async {
                    collection
                        .update_one(doc! { "_id": &id }, doc! { "$set": { "txn": 1 } })
                        .session(&mut session)
                        .await?;
                    collection
                        .update_one(doc! { "_id": &id }, doc! { "$inc": { "txn": 1 } })
                        .session(&mut session)
                        .await?;
                    collection
                        .delete_one(doc! { "_id": &other })
                        .session(&mut session)
                        .await?;
                    collection
                        .insert_one(make_doc(next_new, &mut rng))
                        .session(&mut session)
                        .await?;
                    Ok(())
                }
                .await;
                match outcome {
                    Ok(()) => {
                        session.commit_transaction().await?;
                        next_new += 1;
                    }
                    // A write conflict with ourselves cannot happen (one writer), but a
                    // transient error may: drop the transaction.
                    Err(_) => {
                        let _ = session.abort_transaction().await;
                    }
                }
            }
        }
        ops.fetch_add(1, Ordering::Relaxed);
        if rng.random_range(0..20) == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    Ok(())
}

/// A process of the test, its output in a file.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(env: &TestEnv, name: &str, args: &[&str], crash: Option<&str>) -> Result<Proc> {
        Self::spawn_with(env, name, args, crash, &[])
    }

    fn spawn_with(
        env: &TestEnv,
        name: &str,
        args: &[&str],
        crash: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<Proc> {
        let binary = if name.starts_with("producer") {
            "producer"
        } else {
            "consumer"
        };
        let log = std::env::temp_dir().join(format!(
            "{}-{name}-{}.log",
            env.name,
            rand::rng().random::<u32>()
        ));
        let file = std::fs::File::create(&log)?;
        let mut command = env.command(binary, RUN);
        command.args(args).stdout(file.try_clone()?).stderr(file);
        if let Some(point) = crash {
            command.env("MIGRATE_CRASH_AT", point);
        }
        command.envs(vars.iter().copied());
        Ok(Proc {
            name: name.to_string(),
            child: command.spawn().context("spawning")?,
            log,
        })
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Waits for the process to kill itself at its crash point.
    async fn crashed(&mut self, within: Duration) -> Result<()> {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "{} did not reach its crash point: {}",
                    self.name,
                    self.output()
                )
            })??;
        ensure!(
            status.signal() == Some(9),
            "{} ended with {status} instead of being killed at its crash point: {}",
            self.name,
            self.output()
        );
        ensure!(
            self.output().contains("MIGRATE_CRASH_AT"),
            "no crash point message"
        );
        Ok(())
    }

    /// SIGTERM, then the exit status.
    async fn stop(&mut self) -> Result<std::process::ExitStatus> {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
        }
        Ok(tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await??)
    }
}

const PRODUCER_ARGS: &[&str] = &[
    "run",
    "--follow",
    "--collection",
    COLLECTION,
    "--batch-size",
    "1000",
];
const CONSUMER_ARGS: &[&str] = &["run", "--writers", "2", "--ack-wait", "5s"];

/// Where a scenario kills.
#[derive(Clone, Copy)]
enum Kill {
    /// A consumer, then the producer, from outside, while changes flow.
    FromOutside,
    /// The producer at a named crash point.
    Producer(&'static str),
    /// A consumer at a named crash point.
    Consumer(&'static str),
}

async fn live_migration(test: &str, seeded: u64, kill: Kill) -> Result<()> {
    live_migration_with(test, seeded, kill, PRODUCER_ARGS, CONSUMER_ARGS).await
}

async fn live_migration_with(
    test: &str,
    seeded: u64,
    kill: Kill,
    producer_args: &[&str],
    consumer_args: &[&str],
) -> Result<()> {
    let env = TestEnv::new(test).await?;
    seed(&env, seeded).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let writer_client = mongodb::Client::with_uri_str(&env.mongodb_uri).await?;
    let writer = tokio::spawn(random_writer(
        writer_client.database(&env.mongo_database),
        writer_client.clone(),
        seeded,
        stop.clone(),
        ops.clone(),
    ));
    let started = Instant::now();

    let producer_crash = match kill {
        Kill::Producer(point) => Some(point),
        _ => None,
    };
    let mut producer = Proc::spawn(&env, "producer", producer_args, producer_crash)?;
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        let crash = match kill {
            Kill::Consumer(point) if i == 0 => Some(point),
            _ => None,
        };
        consumers.push(Proc::spawn(
            &env,
            &format!("consumer{i}"),
            consumer_args,
            crash,
        )?);
    }
    let pg = env.pg().await?;
    let changes_landed = || async {
        pg.query_one(
            "SELECT count(*) FROM _migrate_ledger WHERE kind = 'changes'",
            &[],
        )
        .await
        .and_then(|row| row.try_get::<_, i64>(0))
        .unwrap_or(0)
    };
    match kill {
        Kill::FromOutside => {
            // Mid-snapshot, a consumer; once changes land, the producer.
            wait_for(
                || async { snapshot_batches(&pg).await > 3 },
                "snapshot batches to land",
            )
            .await?;
            consumers[1].kill().await;
            consumers[1] = Proc::spawn(&env, "consumer1-again", consumer_args, None)?;
            wait_for(
                || async { changes_landed().await > 5 },
                "change batches to land",
            )
            .await?;
            producer.kill().await;
            producer = Proc::spawn(&env, "producer-again", producer_args, None)?;
        }
        Kill::Producer(_) => {
            producer.crashed(LIMIT).await?;
            producer = Proc::spawn(&env, "producer-again", producer_args, None)?;
        }
        Kill::Consumer(_) => {
            consumers[0].crashed(LIMIT).await?;
            consumers[0] = Proc::spawn(&env, "consumer0-again", consumer_args, None)?;
        }
    }
    wait_for(
        || async { changes_landed().await > 2 },
        "change batches to land after the restart",
    )
    .await?;
    tokio::time::sleep(WRITE_AFTER).await;
    stop.store(true, Ordering::Relaxed);
    writer.await??;

    let cutover = env
        .command("mongo2pg", RUN)
        .args(["cutover", "--timeout", "120s"])
        .output()
        .await?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&cutover.stdout),
        String::from_utf8_lossy(&cutover.stderr)
    );
    if !cutover.status.success() {
        for proc in std::iter::once(&producer).chain(&consumers) {
            eprintln!("--- {}:\n{}", proc.name, proc.output());
        }
        bail!("cutover failed ({}): {report}", cutover.status);
    }
    ensure!(report.contains("caught up"), "cutover said: {report}");

    let differences = differences(&env, &pg).await?;
    if !differences.is_empty() {
        for proc in std::iter::once(&producer).chain(&consumers) {
            eprintln!("--- {}:\n{}", proc.name, proc.output());
        }
        bail!(
            "{} documents differ after {} writes in {:.0} s; the first: {:#?}",
            differences.len(),
            ops.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64(),
            &differences[..differences.len().min(5)]
        );
    }
    ensure!(ops.load(Ordering::Relaxed) > 500, "the writer barely wrote");
    let keyed: bool = pg
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
            &[&COLLECTION],
        )
        .await?
        .get(0);
    ensure!(keyed, "{COLLECTION} has no primary key at cutover");
    if !consumer_args.contains(&"--key-after-load=false") {
        let state: String = pg
            .query_one(
                "SELECT state FROM _migrate_keys WHERE target_table = $1",
                &[&COLLECTION],
            )
            .await?
            .get(0);
        ensure!(
            state == "built",
            "{COLLECTION}'s key after the load: {state}"
        );
    }

    // Where the run stands: streaming, caught up, the oplog's headroom known.
    let (code, status) = env.mongo2pg_report(RUN, &["status"]).await?;
    ensure!(code == Some(0), "status exit {code:?}: {status}");
    for expected in [
        "phase: streaming",
        "lag ",
        "0 events not yet landed",
        "oplog headroom: ",
    ] {
        ensure!(
            status.contains(expected),
            "status lacks {expected:?}: {status}"
        );
    }

    // SIGTERM ends following cleanly: the producer says what it followed.
    let status = producer.stop().await?;
    ensure!(
        status.success(),
        "producer stopped with {status}: {}",
        producer.output()
    );
    ensure!(
        producer.output().contains("followed the change stream"),
        "producer summary: {}",
        producer.output()
    );
    for consumer in &mut consumers {
        let status = consumer.stop().await?;
        ensure!(status.success(), "{} stopped with {status}", consumer.name);
    }

    // After cutover: cleanup removes the run, change batches and consumer included
    // (once the server has dropped the stopped consumers' pull requests).
    let mut cleaned = env.mongo2pg(RUN, &["cleanup"]).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cleaned.status.success() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cleaned = env.mongo2pg(RUN, &["cleanup"]).await?;
    }
    e2e::assert_success(&cleaned, "cleanup");
    let nats = async_nats::connect(&env.nats_url).await?;
    let jetstream = async_nats::jetstream::new(nats);
    ensure!(
        jetstream.get_stream(&env.stream).await.is_err(),
        "the stream outlived the cleanup of its only run"
    );
    Ok(())
}

async fn snapshot_batches(pg: &tokio_postgres::Client) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM _migrate_ledger WHERE kind = 'snapshot'",
        &[],
    )
    .await
    .and_then(|row| row.try_get::<_, i64>(0))
    .unwrap_or(0)
}

/// A connection to the test's database once its first snapshot batch has landed.
async fn first_snapshot_batch(env: &TestEnv) -> Result<tokio_postgres::Client> {
    let pg = env.pg().await?;
    wait_for(
        || async { snapshot_batches(&pg).await >= 1 },
        "the snapshot to land",
    )
    .await?;
    Ok(pg)
}

async fn wait_for<F, Fut>(mut check: F, what: &str) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while !check().await {
        ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Every document whose row differs, is missing, or has no document (a row left for a
/// deleted document), by `_id`; rejects count as landed.
async fn differences(env: &TestEnv, pg: &tokio_postgres::Client) -> Result<Vec<String>> {
    let mut source: BTreeMap<String, String> = BTreeMap::new();
    let mut cursor = env
        .db()
        .collection::<Document>(COLLECTION)
        .find(doc! {})
        .await?;
    while let Some(doc) = cursor.try_next().await? {
        let json = Bson::Document(doc).into_canonical_extjson();
        source.insert(canonical_text(&json["_id"]), canonical_text(&json));
    }
    let mut target: BTreeMap<String, String> = BTreeMap::new();
    let rows = pg
        .query(&format!("SELECT doc::text FROM \"{COLLECTION}\""), &[])
        .await?;
    let rejects = pg
        .query(
            "SELECT document::text FROM _migrate_rejects WHERE collection = $1",
            &[&COLLECTION],
        )
        .await?;
    for row in rows.iter().chain(&rejects) {
        let json: serde_json::Value = serde_json::from_str(row.try_get::<_, &str>(0)?)?;
        let key = canonical_text(&json["_id"]);
        if target.insert(key.clone(), canonical_text(&json)).is_some() {
            bail!("{key} landed twice");
        }
    }
    let mut differences = Vec::new();
    for (id, doc) in &source {
        match target.get(id) {
            None => differences.push(format!("missing {id}: {doc}")),
            Some(row) if row != doc => {
                differences.push(format!("differs {id}:\n  mongo {doc}\n  pg    {row}"))
            }
            Some(_) => {}
        }
    }
    for (id, row) in &target {
        if !source.contains_key(id) {
            differences.push(format!("deleted in MongoDB, still a row {id}: {row}"));
        }
    }
    Ok(differences)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_migration_survives_a_consumer_and_the_producer_killed() -> Result<()> {
    live_migration("live_outside", 50_000, Kill::FromOutside).await
}

/// The snapshot read in `_id` ranges by two readers (`--readers 2`), the start
/// position taken before any range, then the stream; the producer killed once changes
/// flow resumes ranges and stream alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_migration_with_the_snapshot_read_in_ranges() -> Result<()> {
    let mut args = PRODUCER_ARGS.to_vec();
    args.extend(["--readers", "2"]);
    live_migration_with(
        "live_ranges",
        20_000,
        Kill::FromOutside,
        &args,
        CONSUMER_ARGS,
    )
    .await
}

/// The table created with its primary key (`--key-after-load=false`; by default the
/// key is built once the snapshot has landed, before the first change lands, as every
/// other live migration here checks), a consumer killed mid-snapshot and the producer
/// once changes flow as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_migration_with_the_key_made_with_the_table() -> Result<()> {
    let mut args = CONSUMER_ARGS.to_vec();
    args.push("--key-after-load=false");
    live_migration_with(
        "live_key_during",
        20_000,
        Kill::FromOutside,
        PRODUCER_ARGS,
        &args,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_after_the_start_position_is_recorded() -> Result<()> {
    live_migration("live_start", 5_000, Kill::Producer("start-recorded")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_snapshot() -> Result<()> {
    live_migration("live_snapshot", 10_000, Kill::Producer("snapshot-batch:4")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_the_switch_from_snapshot_to_stream() -> Result<()> {
    live_migration("live_switch", 5_000, Kill::Producer("snapshot-done")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_between_publish_and_its_acknowledgement() -> Result<()> {
    live_migration("live_publish", 5_000, Kill::Producer("change-published:3")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_between_postgres_commit_and_nats_ack() -> Result<()> {
    live_migration("live_commit", 5_000, Kill::Consumer("change-committed:2")).await
}

/// A document near MongoDB's 16 MiB limit changing while followed (its event would pass
/// the limit with the document in it: it is read again by `_id`), one above NATS'
/// `max_payload` (object store), the change metrics, and a dropped collection stopping
/// the producer with the collection named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_documents_follow_and_a_dropped_collection_stops_the_producer() -> Result<()> {
    let env = TestEnv::new("live_large").await?;
    seed(&env, 100).await?;
    let port = e2e::private::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut producer = Proc::spawn(&env, "producer", PRODUCER_ARGS, None)?;
    let mut consumer_args = CONSUMER_ARGS.to_vec();
    consumer_args.extend(["--metrics-addr", &addr]);
    let mut consumer = Proc::spawn(&env, "consumer", &consumer_args, None)?;
    let cutover = |env: &TestEnv| {
        let mut command = env.command("mongo2pg", RUN);
        command.args(["cutover", "--timeout", "120s"]);
        command
    };
    let pg = first_snapshot_batch(&env).await?;
    let first = cutover(&env).output().await?;
    ensure!(first.status.success(), "first cutover: {first:?}");

    let items = env.db().collection::<Document>(COLLECTION);
    // A document of 16.6 MB, changed by a $set of 8.3 MB: the update event, with its
    // update description and the full document, would be 25 MB, past MongoDB's limit.
    let huge = "h".repeat(8_300_000);
    items
        .insert_one(doc! { "_id": "huge", "big": &huge })
        .await?;
    items
        .update_one(
            doc! { "_id": "huge" },
            doc! { "$set": { "note": "changed", "big2": "y".repeat(8_300_000) } },
        )
        .await?;
    items
        .insert_one(doc! { "_id": "two-megabytes", "big": "t".repeat(2_000_000) })
        .await?;
    items.delete_one(doc! { "_id": make_id(5) }).await?;

    let second = cutover(&env).output().await?;
    ensure!(
        second.status.success(),
        "cutover after large changes: {}{}",
        String::from_utf8_lossy(&second.stderr),
        producer.output()
    );
    let differences = differences(&env, &pg).await?;
    ensure!(
        differences.is_empty(),
        "{} differ: {:?}",
        differences.len(),
        differences
            .iter()
            .map(|d| d.chars().take(200).collect::<String>())
            .collect::<Vec<_>>()
    );
    // Each change's large document is an object of its own, deleted once landed: none
    // of the run's stays (they were named by content and kept until cleanup, every
    // version of a document updated often).
    let store = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await?)
        .get_object_store(format!("{}_blobs", env.stream))
        .await?;
    let mut listed = store.list().await?;
    let mut left = Vec::new();
    while let Some(info) = listed.try_next().await? {
        if info.name.starts_with(&format!("{RUN}/")) {
            left.push(info.name);
        }
    }
    ensure!(
        left.is_empty(),
        "large documents left after landing: {left:?}"
    );
    let metrics = e2e::scrape::metrics(port).await;
    let applied: u64 = metrics
        .lines()
        .find(|line| line.starts_with("mongo2pg_changes_applied_total{"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .context("no mongo2pg_changes_applied_total")?;
    ensure!(applied >= 4, "changes applied: {applied}");
    ensure!(
        metrics.contains("mongo2pg_change_apply_lag_seconds{"),
        "{metrics}"
    );

    // A dropped collection cannot be followed into the same table: said, not ignored.
    items.drop().await?;
    let status = tokio::time::timeout(Duration::from_secs(60), producer.child.wait()).await??;
    ensure!(
        status.code() == Some(1),
        "producer after the drop: {status}"
    );
    let said = producer.output();
    ensure!(
        said.contains("\"drop\"") && said.contains(&format!("{COLLECTION:?}")),
        "producer said: {said}"
    );
    consumer.stop().await?;
    Ok(())
}

/// Changes land through the mapping like the snapshot: typed columns, child tables, and
/// an update the mapping refuses goes to the rejects with its operation, leaving no
/// stale row; a later valid update lands it and removes the reject. `cutover` with no
/// consumer running says so and exits 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_land_through_the_mapping_and_refused_updates_are_rejects() -> Result<()> {
    let env = TestEnv::new("live_mapping").await?;
    let items = env.db().collection::<Document>(COLLECTION);
    items
        .insert_many([
            doc! { "_id": "a", "score": 1, "tags": ["x"] },
            doc! { "_id": "b", "score": 2, "tags": ["p", "q"] },
            doc! { "_id": "c", "score": 3, "tags": ["r"] },
        ])
        .await?;
    let mapping = env.write_file(
        "mapping.toml",
        "[collections.items]\ncolumns = [\n  { name = \"id\", path = \"_id\", type = \"text\" },\n  { path = \"score\", type = \"int4\" },\n]\nchildren = [ { path = \"tags\", type = \"text\" } ]\n",
    );
    let (collector, endpoint, server) = e2e::otlp::Collector::serve()?;
    let traced = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    let mut producer = Proc::spawn_with(&env, "producer", PRODUCER_ARGS, None, &traced)?;
    let mut consumer_args = CONSUMER_ARGS.to_vec();
    consumer_args.extend(["--mapping", &mapping]);
    let mut consumer = Proc::spawn_with(&env, "consumer", &consumer_args, None, &traced)?;
    let pg = first_snapshot_batch(&env).await?;
    let cutover = |timeout: &'static str| {
        let mut command = env.command("mongo2pg", RUN);
        command.args(["cutover", "--timeout", timeout]);
        command
    };
    ensure!(cutover("120s").output().await?.status.success());

    items
        .update_one(doc! { "_id": "a" }, doc! { "$push": { "tags": "y" } })
        .await?;
    items
        .update_one(doc! { "_id": "b" }, doc! { "$set": { "score": "high" } })
        .await?;
    items.delete_one(doc! { "_id": "c" }).await?;
    items
        .insert_one(doc! { "_id": "d", "score": 4, "tags": [] })
        .await?;
    // Caught up, but a document waits in the rejects: not a go (exit 4, one line
    // saying how many and how to land them).
    let refused = cutover("120s").output().await?;
    let said = String::from_utf8_lossy(&refused.stderr);
    ensure!(refused.status.code() == Some(4), "{refused:?}");
    ensure!(
        said.lines().count() == 1
            && said.contains("1 documents in _migrate_rejects")
            && said.contains("mongo2pg replay --run"),
        "{said}"
    );

    let rows = |sql: &'static str| {
        let pg = &pg;
        async move {
            let rows = pg.query(sql, &[]).await?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.try_get::<_, String>(0)?);
            }
            anyhow::Ok(out)
        }
    };
    let table = "SELECT id || ':' || coalesce(score::text, 'null') FROM items ORDER BY id";
    let children = "SELECT _parent || ':' || _position || ':' || value FROM items_tags ORDER BY 1";
    let rejects =
        "SELECT doc_id || ':' || operation || ':' || field FROM _migrate_rejects ORDER BY 1";
    ensure!(
        rows(table).await? == ["a:1", "d:4"],
        "{:?}",
        rows(table).await?
    );
    ensure!(
        rows(children).await? == ["a:0:x", "a:1:y"],
        "{:?}",
        rows(children).await?
    );
    ensure!(
        rows(rejects).await? == ["b:update:score"],
        "{:?}",
        rows(rejects).await?
    );

    items
        .update_one(doc! { "_id": "b" }, doc! { "$set": { "score": 5 } })
        .await?;
    ensure!(cutover("120s").output().await?.status.success());
    ensure!(
        rows(table).await? == ["a:1", "b:5", "d:4"],
        "{:?}",
        rows(table).await?
    );
    ensure!(
        rows(rejects).await?.is_empty(),
        "{:?}",
        rows(rejects).await?
    );
    ensure!(
        rows(children).await? == ["a:0:x", "a:1:y", "b:0:p", "b:1:q"],
        "{:?}",
        rows(children).await?
    );

    // Nobody applies changes: cutover waits, then says so in one line, exit 4.
    consumer.stop().await?;
    items
        .update_one(doc! { "_id": "a" }, doc! { "$set": { "score": 9 } })
        .await?;
    let waited = cutover("3s").output().await?;
    let said = String::from_utf8_lossy(&waited.stderr);
    ensure!(waited.status.code() == Some(4), "{waited:?}");
    ensure!(
        said.lines().count() == 1 && said.contains("not caught up within"),
        "{said}"
    );
    producer.stop().await?;

    // Each change batch's trace starts in the producer and continues in the consumer
    // that applied it (both flushed their spans when stopped).
    let spans = collector
        .spans
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    server.abort();
    let published: Vec<_> = spans
        .iter()
        .filter(|s| s.service == "producer" && s.name == "change_batch")
        .collect();
    ensure!(!published.is_empty(), "no change_batch span");
    let joined = published.iter().any(|batch| {
        spans.iter().any(|s| {
            s.service == "consumer"
                && s.name == "consume"
                && s.trace_id == batch.trace_id
                && s.attributes.get("batch_id") == batch.attributes.get("batch_id")
        })
    });
    ensure!(joined, "no consumer joined a change batch's trace");
    for name in ["arbitrate", "commit"] {
        ensure!(
            spans
                .iter()
                .any(|s| s.service == "consumer" && s.name == name),
            "no consumer {name} span"
        );
    }
    ensure!(
        spans
            .iter()
            .any(|s| s.service == "producer" && s.name == "follow"),
        "no follow span"
    );

    // Publishing a followed run's snapshot again could undo its changes: refused.
    let again = env
        .producer(
            RUN,
            &["run", "--follow", "--collection", COLLECTION, "--restart"],
        )
        .await?;
    e2e::assert_one_line_error(&again, "start a new --run");
    Ok(())
}

/// A run whose position has fallen out of the oplog: `status` says the history is lost
/// (exit 4), naming the collection and how to re-snapshot, and the producer stops at
/// once saying why instead of following from a gap. The checkpoint is moved back to a
/// cluster time older than any oplog entry, which is what a position overtaken by the
/// oplog looks like.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_position_lost_from_the_oplog_is_said_by_status_and_the_producer() -> Result<()> {
    let env = TestEnv::new("live_lost").await?;
    seed(&env, 100).await?;
    let mut producer = Proc::spawn(&env, "producer", PRODUCER_ARGS, None)?;
    let mut consumer = Proc::spawn(&env, "consumer", CONSUMER_ARGS, None)?;
    first_snapshot_batch(&env).await?;
    let caught_up = env.mongo2pg(RUN, &["cutover", "--timeout", "120s"]).await?;
    e2e::assert_success(&caught_up, "cutover");
    ensure!(producer.stop().await?.success(), "{}", producer.output());
    consumer.stop().await?;

    let nats = async_nats::connect(&env.nats_url).await?;
    let kv = async_nats::jetstream::new(nats)
        .get_key_value(format!("{}_state", env.stream))
        .await?;
    let key = format!("{RUN}.stream");
    let stored = kv.get(&key).await?.context("no stream checkpoint")?;
    let mut checkpoint: serde_json::Value = serde_json::from_slice(&stored)?;
    let data = checkpoint["resume_token"]["_data"]
        .as_str()
        .context("no token")?
        .to_string();
    // The token's cluster time is the 8 bytes after its type byte.
    let old = format!("{}{}{}", &data[..2], "0000000100000001", &data[18..]);
    checkpoint["resume_token"]["_data"] = serde_json::Value::String(old);
    checkpoint["read_until"] = serde_json::json!({ "time": 1, "increment": 1 });
    kv.put(&key, serde_json::to_vec(&checkpoint)?.into())
        .await?;

    let (code, status) = env.mongo2pg_report(RUN, &["status"]).await?;
    ensure!(code == Some(4), "status exit {code:?}: {status}");
    ensure!(
        status.contains("history lost")
            && status.contains(COLLECTION)
            && status.contains("new run"),
        "{status}"
    );
    let resumed = tokio::time::timeout(Duration::from_secs(60), env.producer(RUN, PRODUCER_ARGS))
        .await
        .context("the producer followed from a position the oplog no longer holds")??;
    e2e::assert_one_line_error(&resumed, "history lost");
    Ok(())
}

/// Two producers of one followed run: one holds the follower lease and streams the
/// changes, the other stands by, its clock 120 s ahead: it does not take a lease its
/// holder keeps renewing (it took it at once). The follower is killed -9; the standby
/// takes over from the checkpoint once it has seen the lease unrenewed, and nothing is
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_producer_takes_over_following_when_the_follower_is_killed() -> Result<()> {
    let env = TestEnv::new("live_standby").await?;
    seed(&env, 5_000).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let writer_client = mongodb::Client::with_uri_str(&env.mongodb_uri).await?;
    let writer = tokio::spawn(random_writer(
        writer_client.database(&env.mongo_database),
        writer_client.clone(),
        5_000,
        stop.clone(),
        ops.clone(),
    ));
    let logs = [("RUST_LOG", "producer=info")];
    let following = |p: &Proc| p.output().contains("following the change stream");
    let standing_by = |p: &Proc| p.output().contains("standing by to take over");
    let mut follower = Proc::spawn_with(&env, "producer-a", PRODUCER_ARGS, None, &logs)?;
    wait_for(
        || async { following(&follower) },
        "the first producer to follow",
    )
    .await?;
    let skewed = [
        ("RUST_LOG", "producer=info"),
        (common::crash::CLOCK_SKEW, "120000"),
    ];
    let mut standby = Proc::spawn_with(&env, "producer-b", PRODUCER_ARGS, None, &skewed)?;
    let mut consumers = Vec::new();
    for i in 0..2 {
        consumers.push(Proc::spawn(
            &env,
            &format!("consumer{i}"),
            CONSUMER_ARGS,
            None,
        )?);
    }
    wait_for(
        || async { standing_by(&standby) },
        "the second producer to stand by",
    )
    .await?;
    // Its log, written to a file, is plain text: no colour codes.
    ensure!(
        !standby.output().contains('\x1b'),
        "colour codes in a log file: {:?}",
        standby.output()
    );
    // Longer than a lease lasts: a healthy follower keeps it.
    tokio::time::sleep(Duration::from_secs(20)).await;
    ensure!(
        !standby.output().contains("follows the change stream now"),
        "the standby whose clock runs ahead took the lease of a healthy follower: {}",
        standby.output()
    );
    follower.kill().await;
    wait_for(
        || async { standby.output().contains("follows the change stream now") },
        "the standby to take over once the lease goes unrenewed",
    )
    .await?;
    tokio::time::sleep(WRITE_AFTER).await;
    stop.store(true, Ordering::Relaxed);
    writer.await??;

    let caught_up = env.mongo2pg(RUN, &["cutover", "--timeout", "120s"]).await?;
    e2e::assert_success(&caught_up, "cutover");
    let pg = env.pg().await?;
    let differences = differences(&env, &pg).await?;
    ensure!(
        differences.is_empty(),
        "{} documents differ; the first: {:#?}",
        differences.len(),
        &differences[..differences.len().min(5)]
    );
    let (_, status) = env.mongo2pg_report(RUN, &["status"]).await?;
    ensure!(status.contains("change stream followed by "), "{status}");
    ensure!(standby.stop().await?.success());
    for consumer in &mut consumers {
        consumer.stop().await?;
    }
    Ok(())
}

/// A follower resuming a backlog of small changes fills its change batches to the byte
/// limit (here a server with a 64 KiB `max_payload`): each envelope, with one change
/// record per document, must still fit. Counting only the documents' bytes, the
/// restarted producer died on "max payload size exceeded" and so did every rerun.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_of_small_changes_fills_batches_to_the_byte_limit_and_lands() -> Result<()> {
    let nats = e2e::private::PrivateNats::start_with_config("backlog", "max_payload: 65536\n")?;
    let mut services = e2e::Services::shared();
    services.nats_url = nats.url();
    let env = TestEnv::on("live_backlog", services).await?;
    seed(&env, 100).await?;
    let args = [
        "run",
        "--follow",
        "--collection",
        COLLECTION,
        "--batch-size",
        "100000",
    ];
    let mut producer = Proc::spawn(&env, "producer", &args, None)?;
    let mut consumer = Proc::spawn(&env, "consumer", CONSUMER_ARGS, None)?;
    let cutover = || async {
        env.command("mongo2pg", RUN)
            .args(["cutover", "--timeout", "120s"])
            .output()
            .await
    };
    let pg = first_snapshot_batch(&env).await?;
    let first = cutover().await?;
    ensure!(first.status.success(), "first cutover: {first:?}");
    ensure!(producer.stop().await?.success(), "{}", producer.output());

    // The backlog: 6,000 small inserts, then an update of each, while nobody follows.
    let items = env.db().collection::<Document>(COLLECTION);
    let docs: Vec<Document> = (0..6_000)
        .map(|i| doc! { "_id": format!("b{i}"), "v": i })
        .collect();
    items.insert_many(docs).await?;
    items
        .update_many(
            doc! { "v": { "$exists": true } },
            doc! { "$inc": { "v": 1 } },
        )
        .await?;

    let mut producer = Proc::spawn(&env, "producer-again", &args, None)?;
    let second = cutover().await?;
    if !second.status.success() {
        bail!(
            "cutover after the backlog: {}{}\n--- producer: {}",
            String::from_utf8_lossy(&second.stdout),
            String::from_utf8_lossy(&second.stderr),
            producer.output()
        );
    }
    let differences = differences(&env, &pg).await?;
    ensure!(
        differences.is_empty(),
        "{} differ, the first: {:?}",
        differences.len(),
        &differences[..differences.len().min(3)]
    );
    // The backlog travelled in batches cut by bytes, not one change a batch.
    let batches: i64 = pg
        .query_one(
            "SELECT count(*) FROM _migrate_ledger WHERE kind = 'changes'",
            &[],
        )
        .await?
        .get(0);
    ensure!(
        (12..=200).contains(&batches),
        "12,000 changes in {batches} batches"
    );

    // A change batch dead-lettered: caught up, but not a go (exit 4, one line).
    let client = async_nats::connect(nats.url()).await?;
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .publish(
            format!("{}.change.{RUN}.{COLLECTION}", env.stream),
            "not a batch".into(),
        )
        .await?
        .await?;
    wait_for(
        || async {
            pg.query_one("SELECT count(*) FROM _migrate_dead_letters", &[])
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) == 1)
        },
        "the garbage to be dead-lettered",
    )
    .await?;
    let refused = cutover().await?;
    let said = String::from_utf8_lossy(&refused.stderr);
    ensure!(refused.status.code() == Some(4), "{refused:?}");
    ensure!(
        said.lines().count() == 1
            && said.contains("0 documents in _migrate_rejects")
            && said.contains("1 batches in _migrate_dead_letters")
            && said.contains("mongo2pg requeue --run"),
        "{said}"
    );
    ensure!(producer.stop().await?.success(), "{}", producer.output());
    consumer.stop().await?;
    Ok(())
}

/// A followed run refuses what it could not follow, and records nothing before its
/// checks pass:
/// - `--follow` added to a run published without it (its start position would come
///   after the snapshot: the changes in between were lost while cutover said exit 0);
/// - another collection added to a followed run without `--follow` (snapshotted,
///   never followed);
/// - a `--follow` refused by a standalone mongod leaves the run as it was: the same run
///   without `--follow` then completes and its consumers exit by themselves (it was
///   marked "follow" already, so they waited forever and status failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followed_run_refuses_what_it_could_not_follow() -> Result<()> {
    let env = TestEnv::new("live_refuse").await?;
    seed(&env, 100).await?;
    env.db()
        .collection::<Document>("other")
        .insert_one(doc! { "_id": 1 })
        .await?;

    // --follow after a snapshot published without it.
    let plain = env
        .producer("plain", &["run", "--collection", COLLECTION])
        .await?;
    e2e::assert_success(&plain, "a run without --follow");
    // Accepted, it would follow until stopped: bounded.
    let refused_within = Duration::from_secs(60);
    let late = tokio::time::timeout(
        refused_within,
        env.producer("plain", &["run", "--follow", "--collection", COLLECTION]),
    )
    .await
    .context("--follow on a run published without it was accepted")??;
    e2e::assert_one_line_error(&late, "was published without --follow");

    // Another collection for a followed run, without --follow.
    let mut follower = Proc::spawn(&env, "producer", PRODUCER_ARGS, None)?;
    let client = async_nats::connect(&env.nats_url).await?;
    let kv = async_nats::jetstream::new(client)
        .get_key_value(format!("{}_state", env.stream))
        .await;
    let started = || async {
        match &kv {
            Ok(kv) => matches!(kv.get(format!("{RUN}.manifest")).await, Ok(Some(_))),
            Err(_) => false,
        }
    };
    wait_for(started, "the followed run to start").await?;
    let added = tokio::time::timeout(
        refused_within,
        env.producer(RUN, &["run", "--collection", "other"]),
    )
    .await
    .context("a collection added to a followed run was accepted")??;
    e2e::assert_one_line_error(&added, "would be snapshotted and never followed");
    ensure!(follower.stop().await?.success(), "{}", follower.output());

    // A standalone refuses --follow; nothing of the attempt stays.
    let standalone = e2e::private::PrivateMongo::start_standalone("refuse")?;
    let mut services = e2e::Services::shared();
    services.mongodb_uri = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        standalone.port
    );
    let env = TestEnv::on("live_standalone", services).await?;
    seed(&env, 50).await?;
    let refused = env.producer("s", &["run", "--follow"]).await?;
    e2e::assert_one_line_error(&refused, "--follow needs a replica set");
    let consumer = env.spawn_consumer("s", &[])?;
    let published = env.producer("s", &["run"]).await?;
    e2e::assert_success(&published, "the same run without --follow");
    let landed = tokio::time::timeout(LIMIT, consumer.wait_with_output())
        .await
        .context("the consumer did not exit by itself")??;
    e2e::assert_success(&landed, "consumer");
    let (code, status) = env.mongo2pg_report("s", &["status"]).await?;
    ensure!(code == Some(0), "status exit {code:?}: {status}");
    e2e::compare::assert_exact_copy(&env, COLLECTION).await?;
    Ok(())
}

/// `status`, `cleanup` and `cutover` agree on where a followed run stands:
/// - cleanup refuses while a producer follows (it deleted the stream under it);
/// - with nobody following and no cutover, status is incomplete (exit 3): changes
///   wait in the oplog where no count sees them (it said "0 events not yet landed",
///   exit 0);
/// - after cutover and SIGTERM, status says "cut over at …; producer stopped" (it
///   showed the phase "streaming" with a growing lag);
/// - cleanup --force of a run that never existed says so (it said it cleaned it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_cleanup_and_cutover_agree_on_a_followed_run() -> Result<()> {
    let env = TestEnv::new("live_agree").await?;
    seed(&env, 200).await?;
    let mut producer = Proc::spawn(&env, "producer", PRODUCER_ARGS, None)?;
    let mut consumer = Proc::spawn(&env, "consumer", CONSUMER_ARGS, None)?;
    first_snapshot_batch(&env).await?;
    let items = env.db().collection::<Document>(COLLECTION);
    items.insert_one(doc! { "_id": "new", "n": 1 }).await?;
    let caught_up = env.mongo2pg(RUN, &["cutover", "--timeout", "120s"]).await?;
    e2e::assert_success(&caught_up, "cutover");

    let refused = env.mongo2pg(RUN, &["cleanup"]).await?;
    e2e::assert_one_line_error(&refused, "is still followed by producer");

    // Nobody follows; changes are made, no cutover since them counts.
    ensure!(producer.stop().await?.success(), "{}", producer.output());
    let (code, status) = env.mongo2pg_report(RUN, &["status"]).await?;
    ensure!(
        code == Some(0),
        "cut over, then stopped: exit {code:?}: {status}"
    );
    ensure!(
        status.contains("cut over at ") && status.contains("producer stopped"),
        "{status}"
    );
    ensure!(!status.contains("phase: streaming"), "{status}");

    // A new run followed, then its producer stopped before any cutover.
    let args = ["run", "--follow", "--collection", COLLECTION];
    let mut second = env.command("producer", "second");
    let mut second = second
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut second_consumer = env.command("consumer", "second");
    let mut second_consumer = second_consumer
        .args(CONSUMER_ARGS)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    wait_for(
        || async {
            let (_, status) = env
                .mongo2pg_report("second", &["status"])
                .await
                .unwrap_or_default();
            status.contains("change stream followed by")
        },
        "the second run to follow",
    )
    .await?;
    if let Some(pid) = second.id() {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
    }
    second.wait().await?;
    items.delete_one(doc! { "_id": "new" }).await?;
    let (code, status) = env.mongo2pg_report("second", &["status"]).await?;
    ensure!(code == Some(3), "nobody follows: exit {code:?}: {status}");
    ensure!(status.contains("no producer follows"), "{status}");
    let _ = second_consumer.start_kill();

    let unknown = env.mongo2pg("never-was", &["cleanup", "--force"]).await?;
    e2e::assert_one_line_error(&unknown, "is unknown");
    consumer.stop().await?;
    Ok(())
}

/// `cutover` while the application goes on writing: here each change batch takes 0.7 s
/// to land (`MIGRATE_PAUSE_AT`, a slow PostgreSQL) on four writers while the producer
/// publishes one every 0.2 s, so the changes' consumer always has a batch in flight.
/// Cutover waited for a poll to see it with nothing left, which a steady stream of
/// writes may never give: it timed out. It now waits for the batches the stream held
/// once the producer had read past its start, and PostgreSQL then holds every write
/// committed before it, checked as soon as it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cutover_catches_up_while_writes_go_on() -> Result<()> {
    let env = TestEnv::new("live_steady").await?;
    seed(&env, 100).await?;
    let mut producer = Proc::spawn(&env, "producer", PRODUCER_ARGS, None)?;
    let mut consumer = Proc::spawn_with(
        &env,
        "consumer",
        &["run", "--writers", "4", "--ack-wait", "5s"],
        None,
        &[("MIGRATE_PAUSE_AT", "change-landing:700")],
    )?;
    let pg = first_snapshot_batch(&env).await?;
    let first = env
        .mongo2pg(RUN, &["cutover", "--no-finish", "--timeout", "120s"])
        .await?;
    e2e::assert_success(&first, "the first cutover");

    let items = env.db().collection::<Document>(COLLECTION);
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (items, written, stop) = (items.clone(), written.clone(), stop.clone());
        async move {
            let mut n: u64 = 0;
            while !stop.load(Ordering::SeqCst) {
                items
                    .insert_one(doc! { "_id": format!("w{n}"), "n": n as i64 })
                    .await?;
                n += 1;
                written.store(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(n)
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Every one of these was committed in MongoDB before cutover started.
    let before = written.load(Ordering::SeqCst);
    let started = Instant::now();
    let caught_up = env
        .mongo2pg(RUN, &["cutover", "--no-finish", "--timeout", "60s"])
        .await?;
    let took = started.elapsed();
    let ids: Vec<String> = (0..before).map(|n| format!("w{n}")).collect();
    let rows = pg
        .query(
            &format!("SELECT doc::text FROM \"{COLLECTION}\" WHERE doc->>'_id' = ANY($1)"),
            &[&ids],
        )
        .await?;
    stop.store(true, Ordering::SeqCst);
    let total = writer.await??;
    e2e::assert_success(&caught_up, "cutover while writes go on");
    ensure!(
        total > before + 5,
        "the writes went on during the cutover ({before} before it, {total} in all)"
    );
    let mut landed: Vec<i64> = Vec::new();
    for row in &rows {
        let json: serde_json::Value = serde_json::from_str(row.try_get::<_, &str>(0)?)?;
        let id = json["_id"].as_str().unwrap_or_default().to_string();
        let n = json["n"]["$numberLong"]
            .as_str()
            .and_then(|n| n.parse::<i64>().ok())
            .or_else(|| json["n"].as_i64());
        ensure!(
            n.map(|n| format!("w{n}")) == Some(id.clone()),
            "{id}: {json}"
        );
        landed.extend(n);
    }
    landed.sort_unstable();
    ensure!(
        landed == (0..before as i64).collect::<Vec<_>>(),
        "cutover returned after {took:?} with {} of the {before} writes made before it in PostgreSQL",
        landed.len()
    );
    ensure!(producer.stop().await?.success(), "{}", producer.output());
    consumer.stop().await?;
    Ok(())
}

/// A followed run of the whole database never says caught up while it lacks
/// something: a collection created after it started is followed (its documents land
/// before `cutover` says go), one dropped in MongoDB is named by `status` while the run
/// goes on; a target table dropped in PostgreSQL mid-run is not recreated to hold only
/// the later changes: the batch is dead-lettered with the reason and `cutover` fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followed_run_never_says_caught_up_while_it_lacks_something() -> Result<()> {
    let env = TestEnv::new("live_lacks").await?;
    seed(&env, 200).await?;
    let whole_database = ["run", "--follow", "--batch-size", "1000"];
    let mut producer = Proc::spawn(&env, "producer", &whole_database, None)?;
    let mut consumer = Proc::spawn(
        &env,
        "consumer",
        &["run", "--ack-wait", "5s", "--max-deliver", "2"],
        None,
    )?;
    let pg = first_snapshot_batch(&env).await?;
    let env = &env;
    let cutover = |timeout: &'static str| async move {
        env.mongo2pg_report(RUN, &["cutover", "--timeout", timeout])
            .await
    };
    let (code, said) = cutover("120s").await?;
    ensure!(
        code == Some(0),
        "cutover before anything is lacking: {said}"
    );

    let late = env.db().collection::<Document>("late");
    late.insert_many((0..3).map(|i| doc! { "_id": i, "v": format!("late {i}") }))
        .await?;
    let (code, said) = cutover("120s").await?;
    ensure!(code == Some(0), "a new collection followed: {said}");
    // Every document of `late` was written since the start: its inserts are the
    // whole of it.
    e2e::compare::assert_exact_copy(env, "late").await?;
    late.drop().await?;
    let (code, said) = cutover("120s").await?;
    ensure!(code == Some(0), "a dropped collection ends nothing: {said}");
    let (code, status) = env.mongo2pg_report(RUN, &["status"]).await?;
    ensure!(
        code == Some(0)
            && status.contains("gone from MongoDB while followed (not counted; their tables keep their rows): late (dropped in MongoDB at cluster time "),
        "exit {code:?}: {status}"
    );

    pg.batch_execute(&format!("DROP TABLE {COLLECTION}"))
        .await?;
    let items = env.db().collection::<Document>(COLLECTION);
    items
        .update_one(doc! {}, doc! { "$set": { "after_the_drop": true } })
        .await?;
    wait_for(
        || async {
            pg.query_one("SELECT count(*) FROM _migrate_dead_letters", &[])
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) > 0)
        },
        "the change batch to be dead-lettered",
    )
    .await?;
    let reason: String = pg
        .query_one("SELECT reason FROM _migrate_dead_letters", &[])
        .await?
        .get(0);
    ensure!(reason.contains("is gone although run"), "{reason}");
    let recreated: bool = pg
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&COLLECTION])
        .await?
        .get(0);
    ensure!(!recreated, "the dropped table was recreated");
    let (code, said) = cutover("60s").await?;
    ensure!(
        code == Some(4) && said.contains("_migrate_dead_letters"),
        "exit {code:?}: {said}"
    );
    producer.stop().await?;
    consumer.stop().await?;
    Ok(())
}

/// A snapshot batch dead-lettered during a followed run, requeued once changes have
/// landed, never lands a document over a newer change: the documents deleted
/// meanwhile stay deleted (they came back, 3,000 rows for 2,900 documents, under a
/// cutover that said exit 0), and the ones changed keep their change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_requeued_snapshot_batch_never_lands_over_a_change() -> Result<()> {
    let env = TestEnv::new("live_requeue").await?;
    let items = env.db().collection::<Document>(COLLECTION);
    items
        .insert_many((0..30).map(|i| {
            doc! { "_id": i, "kind": if i < 10 { "bad" } else { "good" }, "v": 0 }
        }))
        .await?;
    let pg = env.pg().await?;
    // The batch of the "bad" documents fails as a whole, every time, until the trigger
    // goes: it is dead-lettered.
    e2e::refuse_bad_documents(&pg, "items").await?;
    let args = [
        "run",
        "--follow",
        "--collection",
        COLLECTION,
        "--batch-size",
        "10",
    ];
    let mut producer = Proc::spawn(&env, "producer", &args, None)?;
    let mut consumer_args = CONSUMER_ARGS.to_vec();
    consumer_args.extend(["--max-deliver", "2"]);
    let mut consumer = Proc::spawn(&env, "consumer", &consumer_args, None)?;
    let dead = || async {
        pg.query_one("SELECT count(*) FROM _migrate_dead_letters", &[])
            .await
            .map_or(0, |row| row.get::<_, i64>(0))
    };
    wait_for(
        || async { dead().await == 1 },
        "the bad batch to be dead-lettered",
    )
    .await?;

    // Changes land meanwhile: the bad documents deleted (half) or made good (half).
    items.delete_many(doc! { "_id": { "$lt": 5 } }).await?;
    items
        .update_many(
            doc! { "_id": { "$gte": 5, "$lt": 10 } },
            doc! { "$set": { "kind": "good", "v": 1 } },
        )
        .await?;
    let held = env.mongo2pg(RUN, &["cutover", "--timeout", "120s"]).await?;
    ensure!(
        held.status.code() == Some(4),
        "a dead letter is not a go: {held:?}"
    );

    // The cause fixed, the batch requeued: it lands only where no change did.
    pg.batch_execute("DROP TRIGGER refuse ON items").await?;
    let requeued = env.command("mongo2pg", RUN).arg("requeue").output().await?;
    e2e::assert_success(&requeued, "mongo2pg requeue");
    wait_for(|| async { dead().await == 0 }, "the requeue").await?;
    let caught_up = env.mongo2pg(RUN, &["cutover", "--timeout", "120s"]).await?;
    if !caught_up.status.success() {
        bail!(
            "cutover: {}\n--- producer: {}\n--- consumer: {}",
            String::from_utf8_lossy(&caught_up.stderr),
            producer.output(),
            consumer.output()
        );
    }
    let differences = differences(&env, &pg).await?;
    ensure!(differences.is_empty(), "{differences:#?}");
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM items", &[])
        .await?
        .get(0);
    ensure!(rows == 25, "{rows} rows for 25 documents");
    ensure!(producer.stop().await?.success(), "{}", producer.output());
    consumer.stop().await?;
    Ok(())
}

/// `verify --repair` during a followed run lands through the version rule: a document
/// it read, then deleted in MongoDB and its delete landed before the repair commits,
/// stays deleted. The repair used to land it again, and verify then called the target
/// exact. (A pause point holds the repair between its read and its landing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repair_never_brings_back_a_document_deleted_meanwhile() -> Result<()> {
    let env = TestEnv::new("live_repair").await?;
    let items = env.db().collection::<Document>(COLLECTION);
    items
        .insert_many((0..20).map(|i| doc! { "_id": format!("d{i}"), "v": i }))
        .await?;
    let mut producer = Proc::spawn(&env, "producer", PRODUCER_ARGS, None)?;
    let mut consumer = Proc::spawn(&env, "consumer", CONSUMER_ARGS, None)?;
    let pg = first_snapshot_batch(&env).await?;
    items
        .update_one(doc! { "_id": "d1" }, doc! { "$set": { "v": 100 } })
        .await?;
    let caught_up = env.mongo2pg(RUN, &["cutover", "--timeout", "120s"]).await?;
    e2e::assert_success(&caught_up, "cutover");

    // A difference for the repair to find: d7's row altered by hand.
    pg.execute(
        "UPDATE items SET doc = '{\"_id\":\"d7\",\"v\":{\"$numberInt\":\"-1\"}}' WHERE _id = 'd7'",
        &[],
    )
    .await?;
    let mut repair = env.command("mongo2pg", RUN);
    let repair = repair
        .args([
            "verify",
            "--repair",
            "--collection",
            COLLECTION,
            "--range-size",
            "5",
        ])
        .env("MIGRATE_PAUSE_AT", "repair-read:4000")
        .output();
    let deleted = async {
        // Once the repair has read d7, d7 is deleted and its delete lands.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        items.delete_one(doc! { "_id": "d7" }).await?;
        wait_for(
            || async {
                pg.query_one("SELECT count(*) FROM items WHERE _id = 'd7'", &[])
                    .await
                    .is_ok_and(|row| row.get::<_, i64>(0) == 0)
            },
            "the delete to land",
        )
        .await
    };
    let (repaired, deleted) = tokio::join!(repair, deleted);
    deleted?;
    let repaired = repaired?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&repaired.stdout),
        String::from_utf8_lossy(&repaired.stderr)
    );
    ensure!(said.contains("MIGRATE_PAUSE_AT=repair-read"), "{said}");
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM items WHERE _id = 'd7'", &[])
        .await?
        .get(0);
    ensure!(rows == 0, "the repair brought d7 back: {said}");
    let caught_up = env.mongo2pg(RUN, &["cutover", "--timeout", "120s"]).await?;
    e2e::assert_success(&caught_up, "cutover");
    let differences = differences(&env, &pg).await?;
    ensure!(differences.is_empty(), "{differences:#?}");
    ensure!(producer.stop().await?.success(), "{}", producer.output());
    consumer.stop().await?;
    Ok(())
}

/// Writes at random like [`random_writer`] through failovers: a write refused while
/// the replica set elects a new primary ends one writer, and another goes on with new
/// `_id`s of its own.
async fn writer_through_failovers(
    db: mongodb::Database,
    client: mongodb::Client,
    seeded: u64,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) -> Result<()> {
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let start = seeded + round * 1_000_000;
        if random_writer(db.clone(), client.clone(), start, stop.clone(), ops.clone())
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        round += 1;
    }
    Ok(())
}

/// A followed run under a fault: a seeded collection, a random writer, one producer
/// and two consumers that must ride the fault out (never restarted), then cutover and
/// every document compared with its row.
struct Scenario {
    env: TestEnv,
    /// Connected anew when a fault (a restarted server) broke it.
    pg: tokio::sync::Mutex<tokio_postgres::Client>,
    producer: Proc,
    consumers: Vec<Proc>,
    writer: tokio::task::JoinHandle<Result<()>>,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
}

impl Scenario {
    /// Seeds `seeded` documents and starts the writer (through failovers when
    /// `failovers`), the producer (with `producer_vars`) and two consumers (with
    /// `consumer_vars`).
    async fn start(
        env: TestEnv,
        seeded: u64,
        failovers: bool,
        producer_vars: &[(&str, &str)],
        consumer_vars: &[(&str, &str)],
    ) -> Result<Self> {
        seed(&env, seeded).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let client = mongodb::Client::with_uri_str(&env.mongodb_uri).await?;
        let db = client.database(&env.mongo_database);
        let writer = if failovers {
            tokio::spawn(writer_through_failovers(
                db,
                client,
                seeded,
                stop.clone(),
                ops.clone(),
            ))
        } else {
            tokio::spawn(random_writer(db, client, seeded, stop.clone(), ops.clone()))
        };
        let args = [
            "run",
            "--follow",
            "--collection",
            COLLECTION,
            "--batch-size",
            "500",
        ];
        let producer = Proc::spawn_with(&env, "producer", &args, None, producer_vars)?;
        let mut consumers = Vec::new();
        for i in 0..2 {
            let name = format!("consumer{i}");
            consumers.push(Proc::spawn_with(
                &env,
                &name,
                CONSUMER_ARGS,
                None,
                consumer_vars,
            )?);
        }
        let pg = tokio::sync::Mutex::new(env.pg().await?);
        Ok(Scenario {
            env,
            pg,
            producer,
            consumers,
            writer,
            stop,
            ops,
        })
    }

    /// Ledger rows of `kind`; 0 while PostgreSQL cannot be read.
    async fn landed(&self, kind: &str) -> i64 {
        let mut pg = self.pg.lock().await;
        if pg.is_closed() {
            match self.env.pg().await {
                Ok(fresh) => *pg = fresh,
                Err(_) => return 0,
            }
        }
        pg.query_one(
            "SELECT count(*) FROM _migrate_ledger WHERE kind = $1",
            &[&kind],
        )
        .await
        .and_then(|row| row.try_get::<_, i64>(0))
        .unwrap_or(0)
    }

    /// Waits until more than `more` batches of `kind` landed after `now`; shows every
    /// process's log when they do not.
    async fn until_landed(&self, snapshot: bool, more: i64, what: &str) -> Result<()> {
        let kind = if snapshot { "snapshot" } else { "changes" };
        let count = || self.landed(kind);
        let from = if snapshot { 0 } else { count().await };
        let waited = wait_for(|| async { count().await > from + more }, what).await;
        if waited.is_err() {
            self.show_logs();
        }
        waited
    }

    fn show_logs(&self) {
        for proc in std::iter::once(&self.producer).chain(&self.consumers) {
            eprintln!("--- {}:\n{}", proc.name, proc.output());
        }
    }

    /// Stops the writer, cuts over, and checks the same producer is still there and
    /// every document equals its row; then stops everything.
    async fn finish(mut self) -> Result<()> {
        tokio::time::sleep(WRITE_AFTER).await;
        self.stop.store(true, Ordering::Relaxed);
        (&mut self.writer).await??;
        let caught_up = self
            .env
            .command("mongo2pg", RUN)
            .args(["cutover", "--timeout", "180s"])
            .output()
            .await?;
        if !caught_up.status.success() {
            self.show_logs();
            bail!("cutover: {}", String::from_utf8_lossy(&caught_up.stderr));
        }
        ensure!(
            self.producer.child.try_wait()?.is_none(),
            "the producer did not ride the fault out: {}",
            self.producer.output()
        );
        let pg = self.env.pg().await?;
        let differences = differences(&self.env, &pg).await?;
        ensure!(
            differences.is_empty(),
            "{} documents differ after {} writes; the first: {:#?}",
            differences.len(),
            self.ops.load(Ordering::Relaxed),
            &differences[..differences.len().min(5)]
        );
        ensure!(
            self.producer.stop().await?.success(),
            "{}",
            self.producer.output()
        );
        for consumer in &mut self.consumers {
            consumer.stop().await?;
        }
        Ok(())
    }
}

/// A three-member replica set loses its primary (kill -9) during the snapshot, and
/// its next primary steps down while changes flow, with a random writer throughout:
/// the same producer and consumers ride both out (the snapshot reads again after its
/// last document, the change stream resumes from its checkpoint), and after cutover
/// every document equals its row. Snapshot reads are majority reads: a write the dead
/// primary had acknowledged alone is rolled back, and must not have been read either.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_set_failing_over_twice_loses_and_duplicates_nothing() -> Result<()> {
    let mut replica_set = e2e::private::PrivateReplicaSet::start("failover").await?;
    let mut services = e2e::Services::shared();
    services.mongodb_uri = replica_set.uri();
    let env = TestEnv::on("live_failover", services).await?;
    let run = Scenario::start(env, 20_000, true, &[], &[]).await?;
    run.until_landed(true, 3, "snapshot batches to land")
        .await?;
    let killed = replica_set.kill_primary().await?;
    run.until_landed(
        false,
        5,
        "change batches to land after the primary was killed",
    )
    .await?;
    let stepped_down = replica_set.step_down().await?;
    ensure!(killed != stepped_down, "the dead member cannot step down");
    run.until_landed(false, 3, "change batches to land after the step-down")
        .await?;
    run.finish().await
}

/// Reading from secondaries (`readPreference=secondary` in the producer's URI: no read
/// of the migration goes to the primary) on a three-member replica set, with a random
/// writer on the primary throughout: the snapshot in two readers' ranges, each read as
/// of the run's start position on whichever secondary serves it (so none misses a
/// document written before it), and the change stream; after cutover every document
/// equals its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reading_from_secondaries_loses_nothing() -> Result<()> {
    let replica_set = e2e::private::PrivateReplicaSet::start("secondaries").await?;
    let mut services = e2e::Services::shared();
    // The test itself reads the primary; the migration's processes, the secondaries.
    services.mongodb_uri = replica_set.uri();
    services.env.push((
        "MONGODB_URI".to_string(),
        format!("{}&readPreference=secondary", replica_set.uri()),
    ));
    let env = TestEnv::on("live_secondaries", services).await?;
    let run = Scenario::start(env, 20_000, false, &[("READERS", "2")], &[]).await?;
    run.until_landed(true, 3, "snapshot batches to land")
        .await?;
    run.until_landed(false, 3, "change batches to land").await?;
    run.finish().await?;
    drop(replica_set);
    Ok(())
}

/// A three-node NATS JetStream cluster, the run's streams and buckets at three
/// replicas (`--stream-replicas 3`), a random writer throughout: one node is killed
/// during the snapshot, another while changes flow, then the stream's leader; each
/// comes back. The same producer and consumers ride it out, and after cutover every
/// document equals its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_cluster_losing_a_node_then_its_leader_loses_nothing() -> Result<()> {
    let mut cluster = e2e::private::PrivateNatsCluster::start("m2p").await?;
    let mut services = e2e::Services::shared();
    services.nats_url = cluster.url();
    services
        .env
        .push(("NATS_STREAM_REPLICAS".to_string(), "3".to_string()));
    let env = TestEnv::on("live_nats_cluster", services).await?;
    let stream = env.stream.clone();
    let run = Scenario::start(env, 20_000, false, &[], &[]).await?;
    let down = Duration::from_secs(3);
    run.until_landed(true, 3, "snapshot batches to land")
        .await?;
    tokio::task::block_in_place(|| cluster.nodes[0].restart(down))?;
    run.until_landed(false, 5, "change batches to land after node 0 came back")
        .await?;
    tokio::task::block_in_place(|| cluster.nodes[1].restart(down))?;
    run.until_landed(false, 3, "change batches to land after node 1 came back")
        .await?;
    let client = async_nats::connect(common::broker::server_urls(&cluster.url())).await?;
    let jetstream = async_nats::jetstream::new(client);
    // Node 1 has just come back: the cluster may still be electing, and a request of
    // this test's own times out then as the migration's do (which retry). Ask again.
    let asked = tokio::time::Instant::now();
    let (info, leader) = loop {
        let answer = async {
            let mut stream = jetstream.get_stream(&stream).await?;
            let info = stream.info().await?.clone();
            anyhow::Ok(info)
        }
        .await;
        let leader = answer
            .as_ref()
            .ok()
            .and_then(|info| info.cluster.as_ref()?.leader.clone());
        match (answer, leader) {
            (Ok(info), Some(leader)) => break (info, leader),
            (answer, _) if asked.elapsed() > Duration::from_secs(60) => {
                anyhow::bail!("the stream has no leader after 60 s: {answer:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    ensure!(info.config.num_replicas == 3, "{:?}", info.config);
    let leader = cluster.index_of(&leader).context("an unknown leader")?;
    tokio::task::block_in_place(|| cluster.nodes[leader].restart(down))?;
    run.until_landed(
        false,
        3,
        "change batches to land after the leader came back",
    )
    .await?;
    run.finish().await
}

/// PostgreSQL restarted (crash stop) while change batches are applied, with a random
/// writer throughout: the consumers' transactions in flight are lost and their batches
/// delivered again, and after cutover every document equals its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarting_while_changes_are_applied_loses_nothing() -> Result<()> {
    let postgres = e2e::private::PrivatePostgres::start("live_restart")?;
    let services = e2e::Services {
        admin_database_url: postgres.admin_url(),
        ..e2e::Services::shared()
    };
    let env = TestEnv::on("live_pg_restart", services).await?;
    let run = Scenario::start(env, 5_000, false, &[], &[]).await?;
    run.until_landed(false, 5, "change batches to land").await?;
    tokio::task::block_in_place(|| postgres.restart(Duration::from_secs(2)))?;
    run.until_landed(false, 3, "change batches to land after the restart")
        .await?;
    run.finish().await
}

/// The address (`host:port`) of a URL, and the URL pointed at a local port instead.
fn through(url: &str, port: u16) -> Result<(String, String)> {
    let mut parsed = url::Url::parse(url)?;
    let upstream = format!(
        "{}:{}",
        parsed.host_str().context("a host")?,
        parsed.port().context("a port")?
    );
    parsed
        .set_port(Some(port))
        .map_err(|()| anyhow::anyhow!("cannot set the port of {url}"))?;
    Ok((upstream, parsed.to_string()))
}

/// The network between the consumers and PostgreSQL, and between the producer and
/// MongoDB, drops every byte for 30 s while changes flow (connections neither reset
/// nor closed: silence), with a random writer throughout. Nothing wedges: once traffic
/// flows again the same processes go on, and after cutover every document equals its
/// row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_seconds_of_dropped_traffic_wedge_nothing() -> Result<()> {
    let env = TestEnv::new("live_proxy").await?;
    let mongo_proxy = e2e::proxy::Proxy::start(&through(&env.mongodb_uri, 1)?.0).await?;
    let pg_proxy = e2e::proxy::Proxy::start(&through(&env.database_url, 1)?.0).await?;
    let (_, proxied_mongo) = through(&env.mongodb_uri, mongo_proxy.port)?;
    let (_, proxied_pg) = through(&env.database_url, pg_proxy.port)?;
    let run = Scenario::start(
        env,
        5_000,
        false,
        &[("MONGODB_URI", proxied_mongo.as_str())],
        &[("DATABASE_URL", proxied_pg.as_str())],
    )
    .await?;
    run.until_landed(false, 5, "change batches to land").await?;
    mongo_proxy.drop_traffic();
    pg_proxy.drop_traffic();
    tokio::time::sleep(Duration::from_secs(30)).await;
    mongo_proxy.restore();
    pg_proxy.restore();
    run.until_landed(false, 3, "change batches to land once traffic flows again")
        .await?;
    run.finish().await
}

mod change_order;
