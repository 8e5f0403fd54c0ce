//! `mongo2pg cleanup` (issue #13): a complete run's messages, durable consumer,
//! dead-letter copies, state keys and blobs leave NATS, listed through the NATS API;
//! other runs on the same stream keep theirs; an incomplete run, or one consumers
//! are still bound to, is refused unless `--force`.

use std::time::Duration;

use async_nats::jetstream::{self, Context};
use bson::{doc, Document};
use e2e::{assert_success, TestEnv};
use futures::TryStreamExt;

/// What NATS holds of one run, read through the JetStream API.
#[derive(Debug, Default, PartialEq, Eq)]
struct Leftovers {
    batches: u64,
    durable_consumer: bool,
    state_keys: Vec<String>,
    blobs: Vec<String>,
}

impl Leftovers {
    fn none() -> Self {
        Leftovers::default()
    }
}

async fn leftovers(js: &Context, stream: &str, run: &str) -> Leftovers {
    let mut found = Leftovers::default();
    let Ok(batches) = js.get_stream(stream).await else {
        return found;
    };
    let info = batches
        .info_with_subjects(format!("{stream}.batch.{run}.>"))
        .await
        .expect("stream info")
        .try_collect::<Vec<_>>()
        .await
        .expect("subjects");
    found.batches = info.iter().map(|(_, count)| *count as u64).sum();
    found.durable_consumer = batches
        .consumer_info(format!("writers-{run}"))
        .await
        .is_ok();

    // The state bucket's stream, by subject: a purge marker would show here too.
    let kv = js
        .get_stream(format!("KV_{stream}_state"))
        .await
        .expect("state stream");
    let subjects = kv
        .info_with_subjects(format!("$KV.{stream}_state.{run}.>"))
        .await
        .expect("state info")
        .try_collect::<Vec<_>>()
        .await
        .expect("state subjects");
    found.state_keys = subjects.into_iter().map(|(subject, _)| subject).collect();
    found.state_keys.sort();

    let store = js
        .get_object_store(format!("{stream}_blobs"))
        .await
        .expect("blob store");
    let mut list = store.list().await.expect("list blobs");
    while let Some(info) = list.try_next().await.expect("blob") {
        if info.name.starts_with(&format!("{run}/")) {
            found.blobs.push(info.name);
        }
    }
    found.blobs.sort();
    found
}

async fn stream_exists(js: &Context, name: &str) -> bool {
    js.get_stream(name).await.is_ok()
}

async fn cleanup(env: &TestEnv, run: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["cleanup"];
    args.extend_from_slice(extra);
    env.mongo2pg(run, &args).await.expect("cleanup")
}

async fn wait_complete(env: &TestEnv, run: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = env
            .mongo2pg(run, &["status", "--exact"])
            .await
            .expect("status");
        if out.status.code() == Some(0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {run} not complete within 60 s: {}",
            e2e::stdout(&out)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_removes_a_complete_run_and_nothing_of_the_others() {
    let env = TestEnv::new("cleanup").await.expect("env");
    let nats = async_nats::connect(&env.nats_url).await.expect("nats");
    let js = jetstream::new(nats.clone());
    // A document larger than a message goes to the object store: each run has one.
    let big = "x".repeat(2 * nats.server_info().max_payload);
    for collection in ["users", "orders"] {
        let mut docs: Vec<Document> = (0..3000)
            .map(|i| doc! { "_id": i, "name": format!("{collection} {i}"), "n": i * 7 })
            .collect();
        docs.push(doc! { "_id": "big", "text": &big });
        env.db()
            .collection::<Document>(collection)
            .insert_many(docs)
            .await
            .expect("seed");
    }
    for (run, collection) in [("a", "users"), ("b", "orders"), ("c", "orders")] {
        let out = env
            .producer(
                run,
                &["run", "--collection", collection, "--batch-size", "500"],
            )
            .await
            .expect("producer");
        assert_success(&out, "producer");
        assert!(
            e2e::stdout(&out).contains(&format!("`mongo2pg cleanup --run {run}`")),
            "the end of a run says how to clean up: {}",
            e2e::stdout(&out)
        );
    }
    let a_before = leftovers(&js, &env.stream, "a").await;
    assert_eq!(a_before.batches, 7, "{a_before:?}");
    assert_eq!(a_before.blobs.len(), 1, "{a_before:?}");
    assert!(!a_before.state_keys.is_empty());

    // Nothing landed yet: cleanup would delete the batches.
    let out = cleanup(&env, "a", &[]).await;
    e2e::assert_one_line_error(&out, "run \"a\" is incomplete");
    assert_eq!(leftovers(&js, &env.stream, "a").await, a_before);

    env.run_consumers("a", 2, &[], Duration::from_secs(120))
        .await
        .expect("consumers of a");
    wait_complete(&env, "a").await;
    e2e::compare::assert_exact_copy(&env, "users")
        .await
        .expect("users landed");

    // A consumer still running on b: refused while it pulls.
    let mut bound = env
        .command("consumer", "b")
        .args(["run", "--writers", "1"])
        .spawn()
        .expect("consumer of b");
    wait_complete(&env, "b").await;
    let out = cleanup(&env, "b", &[]).await;
    e2e::assert_one_line_error(&out, "consumer processes are still bound to run \"b\"");
    bound.kill().await.expect("kill the consumer of b");
    bound.wait().await.expect("reap");
    // The server forgets a closed connection's pull requests once it sees it close.
    let stream = js.get_stream(&env.stream).await.expect("stream");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while stream
        .consumer_info("writers-b")
        .await
        .is_ok_and(|info| info.num_waiting > 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pull requests of a killed consumer still waiting after 40 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // a goes; b and c keep everything.
    let b_before = leftovers(&js, &env.stream, "b").await;
    let c_before = leftovers(&js, &env.stream, "c").await;
    let out = cleanup(&env, "a", &[]).await;
    assert_success(&out, "cleanup of a");
    let said = e2e::stdout(&out);
    assert!(said.contains("cleaned up run a"), "{said}");
    assert!(said.contains("1 blobs"), "{said}");
    assert_eq!(leftovers(&js, &env.stream, "a").await, Leftovers::none());
    assert_eq!(leftovers(&js, &env.stream, "b").await, b_before);
    assert_eq!(leftovers(&js, &env.stream, "c").await, c_before);
    assert_eq!(c_before.batches, 7, "{c_before:?}");
    assert_eq!(
        c_before.blobs.len(),
        1,
        "c stores its own copy of the big document: {c_before:?}"
    );
    // The target keeps what landed.
    e2e::compare::assert_exact_copy(&env, "users")
        .await
        .expect("users still there");
    let out = env.mongo2pg("a", &["status"]).await.expect("status");
    e2e::assert_one_line_error(&out, "run \"a\" is unknown");

    // b, now that its consumer is gone.
    let out = cleanup(&env, "b", &[]).await;
    assert_success(&out, "cleanup of b");
    assert_eq!(leftovers(&js, &env.stream, "b").await, Leftovers::none());

    // c never landed: refused, then forced.
    let out = cleanup(&env, "c", &[]).await;
    e2e::assert_one_line_error(&out, "run \"c\" is incomplete");
    assert_eq!(leftovers(&js, &env.stream, "c").await, c_before);
    let out = cleanup(&env, "c", &["--force"]).await;
    assert_success(&out, "forced cleanup of c");
    let said = e2e::stdout(&out);
    assert!(said.contains("7 batches"), "{said}");
    // c was the last run: the stream and its buckets are gone too.
    assert!(
        said.contains("no other run uses stream"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        env.stream.clone(),
        format!("{}_DLQ", env.stream),
        format!("KV_{}_state", env.stream),
        format!("OBJ_{}_blobs", env.stream),
    ] {
        assert!(!stream_exists(&js, &name).await, "{name} is left");
    }
    // And cleanup of what is gone says so.
    let out = cleanup(&env, "c", &[]).await;
    e2e::assert_one_line_error(&out, "has no stream");
}
