//! Parallel snapshot inside one producer (`--readers N`): a collection whose `_id`s mix
//! seven BSON types is split into `_id` ranges read at once, and every document lands
//! exactly once, also when the producer is killed -9 in the middle of its ranges and
//! run again.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bson::{doc, Binary, Bson, Document};
use e2e::compare::assert_exact_copy;
use e2e::{assert_success, TestEnv};

const COLLECTION: &str = "mixed";
const DOCS: u64 = 24_000;
const LIMIT: Duration = Duration::from_secs(300);

/// `_id` number `n`, as one of seven BSON types in turn.
fn mixed_id(n: u64) -> Bson {
    match n % 7 {
        0 => Bson::ObjectId(bson::oid::ObjectId::from_bytes({
            let mut bytes = [0u8; 12];
            bytes[4..].copy_from_slice(&n.to_be_bytes());
            bytes
        })),
        1 => Bson::Int32(n as i32),
        2 => Bson::Int64(n as i64 * 1_000_003),
        3 => Bson::Double(n as f64 + 0.5),
        4 => Bson::String(format!("id-{n:08}")),
        5 => Bson::Binary(Binary {
            subtype: bson::spec::BinarySubtype::Uuid,
            bytes: {
                let mut bytes = [0u8; 16];
                bytes[8..].copy_from_slice(&n.to_be_bytes());
                bytes.to_vec()
            },
        }),
        _ => Bson::Document(doc! { "tenant": (n % 13) as i32, "n": n as i64 }),
    }
}

async fn seed(env: &TestEnv) -> Result<()> {
    seed_into(env, COLLECTION, DOCS).await
}

async fn seed_into(env: &TestEnv, name: &str, count: u64) -> Result<()> {
    let collection = env.db().collection::<Document>(name);
    let docs: Vec<Document> = (0..count)
        .map(|n| doc! { "_id": mixed_id(n), "n": n as i64, "name": format!("doc {n}") })
        .collect();
    for chunk in docs.chunks(4000) {
        collection.insert_many(chunk).await?;
    }
    Ok(())
}

/// A collection's recorded range boundaries, and how they were found.
async fn plan_of(env: &TestEnv, collection: &str) -> Result<(Vec<Bson>, String)> {
    let nats = async_nats::connect(&env.nats_url).await?;
    let kv = async_nats::jetstream::new(nats)
        .get_key_value(format!("{}_state", env.stream))
        .await?;
    let plan = kv
        .get(format!("r.plan.{collection}"))
        .await?
        .context("no range plan recorded")?;
    let plan: serde_json::Value = serde_json::from_slice(&plan)?;
    let method = plan["method"].as_str().unwrap_or_default().to_string();
    Ok((boundaries_in(&plan)?, method))
}

fn boundaries_in(plan: &serde_json::Value) -> Result<Vec<Bson>> {
    plan["boundaries"]
        .as_array()
        .context("no boundaries")?
        .iter()
        .map(|boundary| {
            let bytes = hex::decode(boundary.as_str().context("not a string")?)?;
            let mut doc: Document = bson::deserialize_from_slice(&bytes)?;
            doc.remove("_id").context("a boundary without _id")
        })
        .collect()
}

fn producer_args() -> Vec<&'static str> {
    vec![
        "run",
        "--collection",
        COLLECTION,
        "--readers",
        "3",
        "--batch-size",
        "500",
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_id_types_split_into_ranges_land_exactly_once() -> Result<()> {
    let env = TestEnv::new("parallel").await?;
    seed(&env).await?;
    let mut args = producer_args();
    args.extend(["--planner", "split-vector"]);
    let out = env.producer("r", &args).await?;
    assert_success(&out, "producer");
    let (bounds, method) = plan_of(&env, COLLECTION).await?;
    ensure!(method == "splitVector", "planned by {method}");
    ensure!(bounds.len() >= 7, "{} ranges: {bounds:?}", bounds.len() + 1);
    let types: std::collections::BTreeSet<_> = bounds
        .iter()
        .map(|b| format!("{:?}", b.element_type()))
        .collect();
    ensure!(
        types.len() >= 3,
        "the ranges cross type brackets: {types:?}"
    );
    env.run_consumers("r", 2, &[], LIMIT).await?;
    let digest = assert_exact_copy(&env, COLLECTION).await?;
    ensure!(digest.count == DOCS);

    // A rerun finds the collection published and publishes nothing again.
    let again = env.producer("r", &args).await?;
    assert_success(&again, "rerun");
    ensure!(
        String::from_utf8_lossy(&again.stdout).contains("(resumed)"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_killed_mid_range_resumes_each_range_from_its_checkpoint() -> Result<()> {
    let env = TestEnv::new("parallel_kill").await?;
    seed(&env).await?;
    let mut args = producer_args();
    args.extend(["--planner", "sample"]);
    let killed = env
        .command("producer", "r")
        .args(&args)
        .env("MIGRATE_CRASH_AT", "snapshot-batch:20")
        .output()
        .await?;
    ensure!(
        killed.status.signal() == Some(9),
        "the producer was not killed at its crash point: {killed:?}"
    );
    // Some ranges were partly published: the consumers land what is there meanwhile.
    let consumers: Vec<_> = (0..2)
        .map(|_| env.spawn_consumer("r", &[]))
        .collect::<Result<_>>()?;
    let resumed = env.producer("r", &args).await?;
    assert_success(&resumed, "resumed producer");
    let (bounds, method) = plan_of(&env, COLLECTION).await?;
    ensure!(
        method == "$sample" && bounds.len() >= 7,
        "{method}: {bounds:?}"
    );
    for consumer in consumers {
        let output = tokio::time::timeout(LIMIT, consumer.wait_with_output()).await??;
        assert_success(&output, "consumer");
    }
    let digest = assert_exact_copy(&env, COLLECTION).await?;
    ensure!(digest.count == DOCS);
    let pg = env.pg().await?;
    let batches: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_ledger", &[])
        .await?
        .try_get(0)?;
    ensure!(
        batches >= 48,
        "{batches} batches for {DOCS} documents of 500"
    );
    Ok(())
}

/// Three producer processes share one collection's ranges through leases; one is
/// killed -9 while it holds some. The others wait for its leases to expire, take its
/// ranges over from their checkpoints, and the run lands every document once.
///
/// The doomed producer starts alone: started with the others, it could find every
/// range taken before its sixth batch (its crash point) on a loaded machine, and end
/// without being killed. `producers_without_readers_share_the_collection` starts
/// producers at once.
#[tokio::test(flavor = "multi_thread")]
async fn three_producers_share_the_ranges_and_survive_one_killed() -> Result<()> {
    let env = TestEnv::new("parallel_three").await?;
    seed(&env).await?;
    let spawn = |crash: Option<&str>| {
        let mut command = env.command("producer", "r");
        command
            .args([
                "run",
                "--collection",
                COLLECTION,
                "--readers",
                "2",
                "--batch-size",
                "250",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(point) = crash {
            command.env("MIGRATE_CRASH_AT", point);
        }
        command.spawn()
    };
    let doomed = spawn(Some("snapshot-batch:6"))?;
    let killed = tokio::time::timeout(LIMIT, doomed.wait_with_output()).await??;
    ensure!(
        killed.status.signal() == Some(9),
        "the producer was not killed at its crash point: {killed:?}"
    );
    let survivors = [spawn(None)?, spawn(None)?];
    // While the survivors wait for the dead producer's leases, `status` shows ranges.
    let (_, status) = env.mongo2pg_report("r", &["status"]).await?;
    ensure!(status.contains("ranges"), "{status}");
    for survivor in survivors {
        let output = tokio::time::timeout(LIMIT, survivor.wait_with_output()).await??;
        assert_success(&output, "surviving producer");
    }
    env.run_consumers("r", 2, &[], LIMIT).await?;
    let digest = assert_exact_copy(&env, COLLECTION).await?;
    ensure!(digest.count == DOCS);
    let (code, status) = env.mongo2pg_report("r", &["status"]).await?;
    ensure!(code == Some(0), "status: {status}");
    ensure!(
        status.contains(" done, 0 in progress, 0 waiting"),
        "{status}"
    );
    let (bounds, _) = plan_of(&env, COLLECTION).await?;
    ensure!(bounds.len() >= 7, "{} ranges", bounds.len() + 1);
    Ok(())
}

/// Three collections published at once (`--concurrency 3`), each in ranges: every one
/// lands exactly, and each has its own plan.
#[tokio::test(flavor = "multi_thread")]
async fn collections_are_read_concurrently_each_in_ranges() -> Result<()> {
    let env = TestEnv::new("parallel_concurrent").await?;
    let names = ["first", "second", "third"];
    for name in names {
        seed_into(&env, name, 9_000).await?;
    }
    let out = env
        .producer(
            "r",
            &[
                "run",
                "--readers",
                "2",
                "--concurrency",
                "3",
                "--batch-size",
                "500",
            ],
        )
        .await?;
    assert_success(&out, "producer");
    env.run_consumers("r", 2, &[], LIMIT).await?;
    for name in names {
        let digest = assert_exact_copy(&env, name).await?;
        ensure!(digest.count == 9_000, "{name}");
    }
    let (code, status) = env.mongo2pg_report("r", &["status"]).await?;
    ensure!(code == Some(0), "{status}");
    ensure!(
        names.iter().all(|name| status
            .lines()
            .any(|line| line.starts_with(&format!("{name} ranges: "))
                && line.ends_with(" done, 0 in progress, 0 waiting"))),
        "{status}"
    );
    Ok(())
}

/// Ranges by arithmetic between the smallest and largest `_id`, for a collection of
/// integers and one of ObjectIds made over a year.
#[tokio::test(flavor = "multi_thread")]
async fn arithmetic_ranges_split_numbers_and_object_ids() -> Result<()> {
    let env = TestEnv::new("parallel_arith").await?;
    let numbers: Vec<Document> = (0..10_000i64)
        .map(|n| doc! { "_id": n * 7, "n": n })
        .collect();
    env.db()
        .collection::<Document>("numbers")
        .insert_many(numbers)
        .await?;
    let oids: Vec<Document> = (0..10_000u32)
        .map(|n| {
            let mut bytes = [0u8; 12];
            bytes[..4].copy_from_slice(&(1_700_000_000 + n * 3_153).to_be_bytes());
            bytes[8..].copy_from_slice(&n.to_be_bytes());
            doc! { "_id": bson::oid::ObjectId::from_bytes(bytes), "n": n }
        })
        .collect();
    env.db()
        .collection::<Document>("oids")
        .insert_many(oids)
        .await?;
    let out = env
        .producer(
            "r",
            &[
                "run",
                "--readers",
                "2",
                "--planner",
                "arithmetic",
                "--concurrency",
                "2",
            ],
        )
        .await?;
    assert_success(&out, "producer");
    env.run_consumers("r", 2, &[], LIMIT).await?;
    for name in ["numbers", "oids"] {
        let digest = assert_exact_copy(&env, name).await?;
        ensure!(digest.count == 10_000, "{name}");
        let (bounds, method) = plan_of(&env, name).await?;
        ensure!(
            method == "arithmetic" && bounds.len() >= 5,
            "{name}: {method} {bounds:?}"
        );
    }
    Ok(())
}

/// `--readers` far beyond the collection's ranges runs one reader per range: it spawned
/// a task per reader (1.6 GB in 12 s), ignored SIGTERM and never ended.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_readers_count_is_bounded_by_the_ranges() -> Result<()> {
    let env = TestEnv::new("par_huge_readers").await?;
    seed_into(&env, COLLECTION, 3_000).await?;
    let consumer = env.spawn_consumer("r", &[])?;
    let produced = tokio::time::timeout(
        Duration::from_secs(60),
        env.producer("r", &["run", "--readers", "18446744073709551615"]),
    )
    .await
    .context("the producer did not finish")??;
    assert_success(&produced, "producer run");
    let landed = tokio::time::timeout(LIMIT, consumer.wait_with_output()).await??;
    assert_success(&landed, "consumer");
    assert_exact_copy(&env, COLLECTION).await?;
    Ok(())
}

/// Ranges are the default: three producers started at once without `--readers` share
/// the collection's ranges instead of each reading it whole (as they did: 3 × the
/// documents read from MongoDB for one copy). MongoDB's profiler counts what was read:
/// every document once, give or take a range's first reply that a producer reads as
/// its lease is taken over (none here: nobody is killed).
#[tokio::test(flavor = "multi_thread")]
async fn producers_without_readers_share_the_collection() -> Result<()> {
    let env = TestEnv::new("par_shared").await?;
    seed(&env).await?;
    env.db()
        .run_command(
            doc! { "profile": 2, "filter": { "ns": format!("{}.{COLLECTION}", env.db().name()) } },
        )
        .await?;
    let spawn = || {
        env.command("producer", "r")
            .args([
                "run",
                "--collection",
                COLLECTION,
                "--range-docs",
                "2000",
                "--batch-size",
                "250",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
    };
    let producers = [spawn()?, spawn()?, spawn()?];
    for producer in producers {
        let output = tokio::time::timeout(LIMIT, producer.wait_with_output()).await??;
        assert_success(&output, "producer");
    }
    env.db().run_command(doc! { "profile": 0 }).await?;
    let profile = env.db().collection::<Document>("system.profile");
    let mut read = 0i64;
    // Finds and their getMores; the plan's `$sample` (an aggregate whose getMore
    // returns sampled `_id`s, each producer planning at once) is not a read of the
    // collection's documents.
    let mut entries = profile
        .find(doc! {
            "ns": format!("{}.{COLLECTION}", env.db().name()),
            "$or": [
                { "op": "query" },
                { "op": "getmore", "originatingCommand.find": { "$exists": true } },
            ],
        })
        .await?;
    while entries.advance().await? {
        let entry = entries.deserialize_current()?;
        read += entry
            .get("nreturned")
            .and_then(Bson::as_i32)
            .map_or(0, i64::from);
    }
    ensure!(
        read == DOCS as i64,
        "{read} documents read from MongoDB for {DOCS}"
    );
    let (bounds, method) = plan_of(&env, COLLECTION).await?;
    ensure!(method == "$sample", "planned by {method}");
    ensure!(bounds.len() >= 7, "{} ranges", bounds.len() + 1);
    env.run_consumers("r", 2, &[], LIMIT).await?;
    let digest = assert_exact_copy(&env, COLLECTION).await?;
    ensure!(digest.count == DOCS);
    Ok(())
}

/// A range reader claims and opens its next range while the current range's last reply
/// is read (by the documents read against the range's estimate), not once it has been
/// read: MongoDB reads on through the turn. Every document still lands once.
#[tokio::test(flavor = "multi_thread")]
async fn a_reader_opens_its_next_range_while_the_last_reply_is_read() -> Result<()> {
    let env = TestEnv::new("par_nearly").await?;
    seed(&env).await?;
    // Twelve ranges of about 2,000 documents, read 400 at a time: a range is nearly
    // read at 1,600.
    let output = env
        .command("producer", "r")
        .args([
            "run",
            "--collection",
            COLLECTION,
            "--readers",
            "1",
            "--range-docs",
            "2000",
            "--batch-size",
            "100",
        ])
        .env("RUST_LOG", "warn,producer::read_ahead=debug")
        .output()
        .await?;
    assert_success(&output, "producer");
    let log = String::from_utf8_lossy(&output.stderr);
    let (bounds, _) = plan_of(&env, COLLECTION).await?;
    let ranges = bounds.len() + 1;
    let nearly = log.matches("nearly read").count();
    // A range smaller than 1,600 documents is told only at its end.
    ensure!(
        nearly >= ranges / 2 && nearly <= ranges,
        "{nearly} of {ranges} ranges were nearly read before their end:\n{log}"
    );
    env.run_consumers("r", 2, &[], LIMIT).await?;
    let digest = assert_exact_copy(&env, COLLECTION).await?;
    ensure!(digest.count == DOCS);
    Ok(())
}
