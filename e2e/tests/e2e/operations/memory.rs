//! A consumer's memory does not grow with the collection: its peak resident set while
//! landing 1,000,000 documents stays within 20% of its peak for 300,000.
//!
//! What bounds it: each writer holds at most `--prefetch` batches ahead of the one it
//! writes, and a batch is one message (its documents at most twice the server's
//! max_payload, packed). The measure is the peak of
//! the process's RSS sampled from /proc while it runs, not a timing.
//!
//! Why 300,000 and not fewer: a consumer's resident set climbs for its first seconds
//! (its writers' buffers grow to the largest batch, the allocator settles: 40 to 44-46
//! MiB over the first 3 s of a 1,000,000-document run, then flat within 2 MiB). A run of
//! 100,000 documents ended inside that climb, so its peak stood below the plateau and
//! the test failed once at x1.21 with nothing growing. 300,000 reach the plateau.

use std::time::Duration;

use e2e::{assert_success, TestEnv};

/// Peak RSS in KiB of a consumer landing `docs` flat users, sampled every 20 ms.
async fn consumer_peak_rss(env: &TestEnv, run: &str, docs: u64) -> u64 {
    let collection = format!("flat{docs}");
    let seeded = env
        .mongo2pg(
            run,
            &[
                "seed",
                "--count",
                &docs.to_string(),
                "--collection",
                &collection,
                "--shape",
                "flat",
            ],
        )
        .await
        .expect("seed");
    assert_success(&seeded, "seed");
    let produced = env
        .producer(run, &["run", "--collection", &collection])
        .await
        .expect("run");
    assert_success(&produced, "producer");

    let mut child = env.spawn_consumer(run, &[]).expect("consumer");
    let pid = child.id().expect("pid");
    let mut peak = 0;
    let status = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                let rss = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                    .unwrap_or(0);
                peak = peak.max(rss);
            }
            tokio::select! {
                status = child.wait() => break status,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    })
    .await
    .expect("the consumer finishes")
    .expect("exit status");
    assert!(status.success(), "consumer failed: {status}");

    let pg = env.pg().await.expect("pg");
    let rows: i64 = pg
        .query_one(&format!("SELECT count(*) FROM \"{collection}\""), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows as u64, docs);
    peak
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_memory_stays_flat_from_300k_to_1m_documents() {
    let env = TestEnv::new("memory").await.expect("env");
    let small = consumer_peak_rss(&env, "small", 300_000).await;
    let large = consumer_peak_rss(&env, "large", 1_000_000).await;
    eprintln!("consumer peak RSS: {small} KiB at 300,000 documents, {large} KiB at 1,000,000");
    assert!(small > 0 && large > 0, "RSS not measured");
    assert!(
        (large as f64) <= (small as f64) * 1.2,
        "peak RSS grew from {small} KiB to {large} KiB (> 20%)"
    );
}
