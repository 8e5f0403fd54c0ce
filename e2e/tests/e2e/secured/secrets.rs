//! Secrets stay secret: no help text, log line or error prints a password or token.

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};

/// Bug 11: `--help` printed the values of DATABASE_URL, NATS_URL and MONGODB_URI,
/// passwords included.
#[tokio::test(flavor = "multi_thread")]
async fn help_never_prints_the_values_of_secret_variables() {
    let env = TestEnv::new("hard_help").await.expect("env");
    for (binary, command) in [
        ("consumer", "run"),
        ("producer", "run"),
        ("mongo2pg", "status"),
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
