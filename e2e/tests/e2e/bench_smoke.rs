//! The benchmark at 10,000 documents, so that it keeps working: the real pipeline
//! against `psql \copy`, both shapes, the Python baseline and the tracing-overhead
//! run. It checks the results file's content, never a speed.

use std::path::Path;

use e2e::TestEnv;

/// Where scripts/services.sh and scripts/bench-deps.sh installed pymongo and asyncpg.
fn bench_pythonpath() -> String {
    let home = std::env::var("MONGO2PG_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cache/mongo2pg",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    format!("{home}/pybench:{home}/mongodb")
}

/// Runs `scripts/<script>` with `args` and the flags every benchmark takes to find the
/// binaries, this test's databases and its stream; what it printed. Panics with its
/// output when it fails.
async fn run_script(env: &TestEnv, script: &str, args: &[&str]) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = e2e::binary("producer")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let run = tokio::process::Command::new("python3")
        .arg(repo.join("scripts").join(script))
        .args(args)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .args([
            "--mongodb-database",
            &env.mongo_database,
            "--pg-database",
            &env.name,
            "--stream",
            &env.stream,
        ])
        .env("MONGODB_URI", &env.mongodb_uri)
        .env("NATS_URL", &env.nats_url)
        .env("DATABASE_URL", &env.database_url)
        .env("BENCH_PYTHONPATH", bench_pythonpath())
        .env("PYTHONPATH", bench_pythonpath())
        .output()
        .await
        .expect("bench");
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_benchmark_runs_and_reports_every_figure() {
    let env = TestEnv::new("bench").await.expect("env");
    let out = std::env::temp_dir().join(format!("{}.json", env.name));
    let out_arg = out.display().to_string();
    let stdout = run_script(
        &env,
        "bench.py",
        &[
            "--docs",
            "10000",
            "--consumers",
            "2",
            "--rounds",
            "2",
            "--trace",
            "--baseline",
            "--out",
            &out_arg,
        ],
    )
    .await;
    assert!(
        stdout.contains("machine: ")
            && stdout.contains("ratio")
            && stdout.contains("mongo2pg status on the 10000-document users run")
            && stdout.contains(
                "aim: flat end to end >= 1.0x psql \\copy (10000 documents, median of 2 round(s): "
            ),
        "{stdout}"
    );

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results file")).expect("json");
    let _ = std::fs::remove_file(&out);
    assert!(results["machine"]["cores"].as_u64().is_some_and(|n| n > 0));
    let runs = results["runs"].as_array().expect("runs");
    let shapes: Vec<(&str, u64)> = runs
        .iter()
        .filter_map(|r| Some((r["shape"].as_str()?, r["round"].as_u64()?)))
        .collect();
    assert_eq!(
        shapes,
        [("users", 1), ("flat", 1), ("users", 2), ("flat", 2)],
        "the shapes alternate, round by round"
    );
    // Each shape's verdict is its median round's ratio, from both rounds' ratios.
    let medians = results["medians"].as_array().expect("medians");
    assert_eq!(medians.len(), 2, "{medians:?}");
    for m in medians {
        let ratios: Vec<f64> = runs
            .iter()
            .filter(|r| r["shape"] == m["shape"])
            .filter_map(|r| r["ratio_to_psql_copy"].as_f64())
            .collect();
        assert_eq!(m["ratios"], serde_json::json!(ratios), "{m}");
        let median = m["ratio_to_psql_copy"].as_f64().expect("median");
        assert!(
            (median - (ratios[0] + ratios[1]) / 2.0).abs() < 0.002,
            "the median of two rounds is their mean: {m}"
        );
    }
    for r in runs {
        assert_eq!(r["documents"], 10000);
        for key in [
            "seconds",
            "docs_per_s",
            "mb_per_s",
            "psql_copy_seconds",
            "ratio_to_psql_copy",
            "our_cpu_us_per_doc",
            "mapping_us_per_doc",
            "status_seconds",
            "status_exact_seconds",
            // The key is built after the load by default, inside the run's time.
            "key_build_seconds",
        ] {
            assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {r}");
        }
        assert!(
            r["key_build_seconds"].as_f64() < r["seconds"].as_f64(),
            "the key's build is part of the run's seconds: {r}"
        );
        assert!(r["producer"]["peak_rss_mib"]
            .as_f64()
            .is_some_and(|v| v > 0.0));
        assert_eq!(r["consumers_detail"].as_array().map(Vec::len), Some(2));
        assert!(r["infra_cpu_s"]["postgres"].as_f64().is_some());
    }
    let baseline = &results["baseline"];
    assert!(
        baseline["seconds"].as_f64().is_some_and(|v| v > 0.0),
        "the Python baseline ran: {baseline}"
    );
    assert!(baseline["speedup"].as_f64().is_some_and(|v| v > 0.0));
    let tracing = &results["tracing"];
    assert!(
        tracing["spans"].as_u64().is_some_and(|n| n > 0),
        "the traced run exported spans: {tracing}"
    );
    assert!(tracing["overhead_percent"].as_f64().is_some());
}

/// The change path's benchmark (`scripts/bench.sh --live`) at a small size, so that it
/// keeps working: every figure reported, none judged.
#[tokio::test(flavor = "multi_thread")]
async fn the_live_benchmark_runs_and_reports_every_figure() {
    let env = TestEnv::new("bench_live").await.expect("env");
    let out = std::env::temp_dir().join(format!("{}-live.json", env.name));
    let out_arg = out.display().to_string();
    let charts = std::env::temp_dir().join(format!("{}-charts", env.name));
    let charts_arg = charts.display().to_string();
    let stdout = run_script(
        &env,
        "bench_live.py",
        &[
            "--docs",
            "2000",
            "--changes",
            "5000",
            "--rounds",
            "2",
            "--consumers",
            "2",
            "--rate",
            "200",
            "--seconds",
            "4",
            "--soak-seconds",
            "6",
            "--out",
            &out_arg,
            "--plot",
            &charts_arg,
        ],
    )
    .await;
    assert!(
        stdout.contains("changes/s")
            && stdout.contains("lag at ")
            && stdout.contains("round 2: written by MongoDB clients")
            && stdout
                .contains("aim: changes at >= 0.25x psql \\copy's rows/s (median of 2 round(s): "),
        "{stdout}"
    );
    // The charts are drawn from the processes' /metrics, scraped each second: every
    // line has points, and the counters' rates were not all zero.
    for (chart, legends) in [
        (
            "run-throughput.svg",
            &["documents published", "rows committed", "changes applied"][..],
        ),
        ("run-lag.svg", &["read lag", "apply lag"][..]),
        ("run-headroom.svg", &["headroom"][..]),
    ] {
        let svg = std::fs::read_to_string(charts.join(chart)).expect("chart");
        for legend in legends {
            assert!(svg.contains(&format!(">{legend}</text>")), "{chart}: {svg}");
        }
        let lines: Vec<&str> = svg
            .split("points=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or_default())
            .collect();
        assert!(
            lines.len() >= legends.len() && lines.iter().all(|l| l.split(' ').count() >= 5),
            "{chart}: every line has points: {svg}"
        );
        if chart == "run-throughput.svg" {
            // Each point is x,y in the picture: y above the axis (at 280 - 40 = 240)
            // is a rate above zero.
            assert!(
                lines[1].split(' ').any(|p| p
                    .split(',')
                    .nth(1)
                    .and_then(|y| y.parse::<f64>().ok())
                    .is_some_and(|y| y < 239.0)),
                "rows committed were plotted at zero throughout: {svg}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&charts);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results file")).expect("json");
    let _ = std::fs::remove_file(&out);
    for key in [
        "applied_per_s",
        "apply_seconds",
        "psql_copy_seconds",
        "ratio_to_psql_copy",
        "lag_median_s",
        "lag_max_s",
        "lag_rate_achieved",
    ] {
        assert!(
            results[key].as_f64().is_some_and(|v| v > 0.0),
            "{key} in {results}"
        );
    }
    // Each round against its own \copy of as many rows as changes (5,000 from a table of
    // 2,000: the script dies when \copy wrote another count); the verdict is their median.
    let rounds = results["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{results}");
    let ratios: Vec<f64> = rounds
        .iter()
        .map(|r| r["ratio_to_psql_copy"].as_f64().expect("ratio"))
        .collect();
    let median = results["ratio_to_psql_copy"].as_f64().expect("median");
    assert!(
        (median - (ratios[0] + ratios[1]) / 2.0).abs() < 0.002,
        "the verdict is the median of the rounds: {results}"
    );
    // The soak samples every process's memory: the producer and both consumers.
    let rss = &results["soak"]["rss"];
    for process in ["producer", "consumer-1", "consumer-2"] {
        for key in ["first_mb", "last_mb", "peak_mb"] {
            assert!(
                rss[process][key].as_f64().is_some_and(|v| v > 0.0),
                "{process} {key} in {results}"
            );
        }
    }
    assert!(stdout.contains("soak: "), "{stdout}");
}

/// The parallel snapshot's benchmark (`scripts/bench.sh --readers`) at a small size, so
/// that it keeps working: every figure reported, none judged.
#[tokio::test(flavor = "multi_thread")]
async fn the_readers_benchmark_runs_and_reports_every_figure() {
    let env = TestEnv::new("bench_readers").await.expect("env");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = e2e::binary("producer")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let out = std::env::temp_dir().join(format!("{}-readers.json", env.name));
    let run = tokio::process::Command::new("python3")
        .arg(repo.join("scripts/bench_readers.py"))
        .args([
            "--docs",
            "5000",
            "--readers-list",
            "1,2",
            "--rounds",
            "2",
            "--max-read-rate",
            "10000",
        ])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(&out)
        .args(["--mongodb-database", &env.mongo_database])
        .env("MONGODB_URI", &env.mongodb_uri)
        .env("NATS_URL", &env.nats_url)
        .env("DATABASE_URL", &env.database_url)
        .env("BENCH_PYTHONPATH", bench_pythonpath())
        .output()
        .await
        .expect("bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "readers bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("single-cursor scan")
            && stdout.contains("one pass, no ranges: ")
            && stdout.contains("ranges, --readers 2: ")
            && stdout.contains("aim: one range reader >= 0.9x the scan (median of 2 round(s): ")
            && stdout.contains("--readers 2 --max-read-rate 10000: read at ")
            && stdout.contains("x the limit (aim: within 5%: "),
        "{stdout}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results file")).expect("json");
    let _ = std::fs::remove_file(&out);
    let size = &results["sizes"][0];
    assert_eq!(size["documents"], 5000);
    let rounds = size["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{size}");
    let mut ratios = Vec::new();
    for measured in rounds {
        assert!(
            measured["scan"]["docs_per_s"]
                .as_f64()
                .is_some_and(|v| v > 0.0),
            "{measured}"
        );
        let runs = measured["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 2);
        for r in runs {
            for key in ["docs_per_s", "producer_cpu_s", "producer_peak_rss_mib"] {
                assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {r}");
            }
        }
        ratios.push(measured["one_reader_ratio"].as_f64().expect("ratio"));
    }
    let median = size["one_reader_ratio"].as_f64().expect("median");
    assert!(
        (median - (ratios[0] + ratios[1]) / 2.0).abs() < 0.002,
        "the verdict is the median of the rounds: {size}"
    );
}

/// Typed child tables against a jsonb child (`scripts/bench.sh --relational`) at a small
/// size, so that it keeps working: both landed whole, the ratio reported, not judged.
#[tokio::test(flavor = "multi_thread")]
async fn the_relational_benchmark_runs_and_reports_its_ratio() {
    let env = TestEnv::new("bench_relational").await.expect("env");
    let stdout = run_script(
        &env,
        "bench_relational.py",
        &["--docs", "3000", "--consumers", "2"],
    )
    .await;
    for figure in [
        "orders: 3000 with ",
        "jsonb child ",
        "typed child ",
        "typed child tables / jsonb child: ",
    ] {
        assert!(stdout.contains(figure), "{figure:?} not in {stdout}");
    }
}

/// Transforms against the same run untransformed (`scripts/bench.sh --transforms`) at
/// a small size, so that it keeps working: both landed whole, the ratio reported.
#[tokio::test(flavor = "multi_thread")]
async fn the_transforms_benchmark_runs_and_reports_its_ratio() {
    let env = TestEnv::new("bench_transforms").await.expect("env");
    let stdout = run_script(
        &env,
        "bench_transforms.py",
        &["--docs", "3000", "--consumers", "2"],
    )
    .await;
    for figure in [
        "users: 3000, 2 consumers",
        "plain ",
        "transformed ",
        "hash + 2 x encrypt / untransformed: ",
    ] {
        assert!(stdout.contains(figure), "{figure:?} not in {stdout}");
    }
}

/// `mongo2pg finish` against psql (`scripts/bench.sh --finish`) at a small size, so
/// that it keeps working: the four indexes built both ways, the ratio reported.
#[tokio::test(flavor = "multi_thread")]
async fn the_finish_benchmark_runs_and_reports_its_ratio() {
    let env = TestEnv::new("bench_finish").await.expect("env");
    let stdout = run_script(
        &env,
        "bench_finish.py",
        &["--docs", "2000", "--consumers", "2"],
    )
    .await;
    for figure in [
        "mongo2pg finish --jobs 2: ",
        "psql, the same statements one after another: ",
        "psql / finish: ",
    ] {
        assert!(stdout.contains(figure), "{figure:?} not in {stdout}");
    }
}

/// A run of several collections against `psql \copy` of each (`scripts/bench.sh
/// --tables`) at a small size, so that it keeps working: every row landed and every key
/// built (the script checks both), the ratio, the tail and the keys built early reported.
#[tokio::test(flavor = "multi_thread")]
async fn the_tables_benchmark_runs_and_reports_its_ratio() {
    let env = TestEnv::new("bench_tables").await.expect("env");
    let stdout = run_script(
        &env,
        "bench_tables.py",
        &["--docs", "3000", "--collections", "3", "--consumers", "2"],
    )
    .await;
    for figure in [
        "3000 flat users in 3 collections, 2 consumers",
        "keys built before the last batch",
        " of 3\n",
        "median: ratio ",
    ] {
        assert!(stdout.contains(figure), "{figure:?} not in {stdout}");
    }
}
