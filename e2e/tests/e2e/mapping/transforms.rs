//! Field transforms for private data, on a followed run: each transform's exact
//! output (HMAC against Python's `hmac`, AES-GCM values opened with the key, fields a
//! legacy application encrypted with Salsa20, AES-256-CBC and AES-256-GCM re-encrypted,
//! a bucket URL rewritten, a card masked, a number redacted), the same on the
//! snapshot and the change path; a value a transform refuses is a reject naming the
//! field and the reason, holding none of the transformed fields; `replay` lands it
//! once the source is fixed; `verify` compares encrypted columns by their plaintext;
//! no key is ever printed.

use std::process::Stdio;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use bson::{doc, Document};
use cbc::cipher::{block_padding::Pkcs7, BlockModeEncrypt, KeyIvInit, StreamCipher};

use e2e::{assert_success, stdout, TestEnv};

const LIMIT: Duration = Duration::from_secs(240);

/// The target key (`encrypt`, `hash`), given in the environment.
const PII: [u8; 32] = [0x11; 32];
/// The legacy application's keys, in files.
const SALSA: [u8; 32] = [0x22; 32];
const CBC: [u8; 32] = [0x33; 32];
const VAULT: [u8; 32] = [0x44; 32];
/// A key the mapping does not know: a value sealed with it does not open.
const WRONG: [u8; 32] = [0x55; 32];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn salsa(plain: &str) -> String {
    let nonce: [u8; 8] = rand::random();
    let mut body = plain.as_bytes().to_vec();
    salsa20::Salsa20::new(&SALSA.into(), &nonce.into()).apply_keystream(&mut body);
    b64(&[&nonce[..], &body].concat())
}

fn cbc(plain: &str) -> String {
    let iv: [u8; 16] = rand::random();
    let body = cbc::Encryptor::<aes::Aes256>::new(&CBC.into(), &iv.into())
        .encrypt_padded_vec::<Pkcs7>(plain.as_bytes());
    // The IV after the ciphertext, in hex: the mapping says so.
    hex::encode([&body[..], &iv[..]].concat())
}

fn gcm_seal(key: &[u8; 32], plain: &str) -> Vec<u8> {
    let nonce: [u8; 12] = rand::random();
    let sealed = aes_gcm::Aes256Gcm::new(key.into())
        .encrypt(&nonce.into(), plain.as_bytes())
        .expect("seals");
    [&nonce[..], &sealed].concat()
}

fn gcm_open(key: &[u8; 32], sealed: &[u8]) -> Result<String> {
    ensure!(sealed.len() > 28, "{} bytes", sealed.len());
    let (nonce, body) = sealed.split_at(12);
    let nonce: [u8; 12] = nonce.try_into()?;
    let plain = aes_gcm::Aes256Gcm::new(key.into())
        .decrypt(&nonce.into(), body)
        .map_err(|_| anyhow::anyhow!("does not open with the key"))?;
    Ok(String::from_utf8(plain)?)
}

/// A user; `vault_key` seals the vault field (WRONG makes a reject).
fn user(n: i32, vault_key: &[u8; 32]) -> Document {
    doc! {
        "_id": format!("u{n:02}"),
        "name": format!("User {n}"),
        "email": format!("  User{n}@Example.COM "),
        "card": format!("4111 1111 1111 {:04}", 1000 + n),
        "ssn": format!("078-05-{:04}", 1120 + n),
        "avatar": format!("s3://old-bucket/avatars/{n}.png"),
        "secret": format!("diary of user {n}"),
        "salsa": salsa(&format!("salsa secret {n}")),
        "cbc": cbc(&format!("cbc secret {n}")),
        "vault": b64(&gcm_seal(vault_key, &format!("vault secret {n}"))),
    }
}

/// The plaintexts a document holds in its transformed fields: none may reach a
/// reject, a dead letter or a log.
fn private_values(doc: &Document) -> Vec<String> {
    [
        "email", "card", "ssn", "secret", "avatar", "salsa", "cbc", "vault",
    ]
    .iter()
    .filter_map(|f| doc.get_str(f).ok().map(|v| v.trim().to_string()))
    .collect()
}

fn mapping(env: &TestEnv) -> String {
    let salsa = env.write_file("salsa.key", "");
    std::fs::write(&salsa, SALSA).expect("raw key file");
    let cbc = env.write_file("cbc.key", &hex::encode(CBC));
    let vault = env.write_file("vault.key", &b64(&VAULT));
    env.write_file(
        "transforms.toml",
        &format!(
            r#"
[keys]
pii = {{ env = "PII_KEY" }}
salsa = {{ file = "{salsa}" }}
cbc = {{ file = "{cbc}" }}
vault = {{ file = "{vault}" }}

[collections.users]
columns = [
  {{ path = "_id", type = "text" }},
  {{ path = "name", type = "text" }},
  {{ path = "email", type = "text", transform = [{{ kind = "trim" }}, {{ kind = "lowercase" }}, {{ kind = "hash", key = "pii" }}] }},
  {{ path = "card", type = "text", transform = {{ kind = "mask", keep = 4 }} }},
  {{ path = "ssn", type = "text", transform = {{ kind = "redact" }} }},
  {{ path = "avatar", type = "text", transform = {{ kind = "replace", pattern = "^s3://old-bucket/", with = "https://cdn.example.com/", required = true }} }},
  {{ path = "secret", type = "bytea", transform = {{ kind = "encrypt", key = "pii" }} }},
  {{ path = "salsa", type = "bytea", transform = {{ kind = "reencrypt", key = "pii", from = {{ cipher = "salsa20", key = "salsa" }} }} }},
  {{ path = "cbc", type = "bytea", transform = {{ kind = "reencrypt", key = "pii", from = {{ cipher = "aes-256-cbc", key = "cbc", nonce = "suffix", encoding = "hex" }} }} }},
  {{ path = "vault", type = "bytea", transform = {{ kind = "reencrypt", key = "pii", from = {{ cipher = "aes-256-gcm", key = "vault" }} }} }},
]
"#
        ),
    )
}

/// HMAC-SHA-256 of each value under `key`, by Python's standard library: the
/// reference the `hash` column must equal.
fn python_hmac(key: &[u8], values: &[String]) -> Result<Vec<String>> {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg("import hashlib, hmac, sys\nkey = bytes.fromhex(sys.argv[1])\nfor v in sys.argv[2:]:\n    print(hmac.new(key, v.encode(), hashlib.sha256).hexdigest())")
        .arg(hex::encode(key))
        .args(values)
        .output()?;
    ensure!(output.status.success(), "{output:?}");
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

/// Cutover until it says `wanted` (or succeeds, when `wanted` is empty).
async fn cutover_until(env: &TestEnv, wanted: &str) -> Result<String> {
    let started = tokio::time::Instant::now();
    loop {
        let (code, text) = env
            .mongo2pg_report("r1", &["cutover", "--timeout", "60s", "--no-finish"])
            .await?;
        if (wanted.is_empty() && code == Some(0)) || (!wanted.is_empty() && text.contains(wanted)) {
            return Ok(text);
        }
        ensure!(started.elapsed() < LIMIT, "waiting for {wanted:?}: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transforms_give_exact_values_and_keep_private_data_out_of_rejects() -> Result<()> {
    let env = TestEnv::new("transforms").await?;
    let users = env.db().collection::<Document>("users");
    let mut docs: Vec<Document> = (0..9).map(|n| user(n, &VAULT)).collect();
    docs.push(user(9, &WRONG));
    users.insert_many(&docs).await?;
    let mapping = mapping(&env);
    let pii = hex::encode(PII);

    // Without the key in its environment, a consumer stops at once, saying which.
    let output = env
        .command("consumer", "r1")
        .args(["run", "--mapping", &mapping])
        .output()
        .await?;
    let said = format!(
        "{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        !output.status.success()
            && said.contains("key \"pii\": the environment variable PII_KEY is not set")
            && said.trim().lines().count() == 1,
        "{said}"
    );

    // What the daemons print goes to files (a pipe nobody reads would fill and
    // block them), read at the end.
    let logs = [
        env.write_file("producer.log", ""),
        env.write_file("consumer.log", ""),
    ];
    let log = |i: usize| -> Result<Stdio> {
        let file = std::fs::OpenOptions::new().append(true).open(&logs[i])?;
        Ok(Stdio::from(file))
    };
    let mut producer = env
        .command("producer", "r1")
        .args(["run", "--follow"])
        .env("RUST_LOG", "info")
        .stdout(log(0)?)
        .stderr(log(0)?)
        .spawn()?;
    let mut consumer = env
        .command("consumer", "r1")
        .args(["run", "--writers", "2", "--mapping", &mapping])
        .env("PII_KEY", &pii)
        .env("RUST_LOG", "info")
        .stdout(log(1)?)
        .stderr(log(1)?)
        .spawn()?;
    // The snapshot: u09's vault was sealed with another key.
    cutover_until(&env, "1 documents in _migrate_rejects").await?;

    // The change path: a new user, a changed email, an avatar outside the bucket (a
    // reject), a new user whose vault does not open (a reject).
    users.insert_one(user(10, &VAULT)).await?;
    users
        .update_one(
            doc! { "_id": "u01" },
            doc! { "$set": { "email": "New.Address@Example.org" } },
        )
        .await?;
    users
        .update_one(
            doc! { "_id": "u02" },
            doc! { "$set": { "avatar": "ftp://elsewhere/2.png" } },
        )
        .await?;
    users.insert_one(user(11, &WRONG)).await?;
    cutover_until(&env, "3 documents in _migrate_rejects").await?;

    // The rejects name the field and the reason, and hold none of the private values.
    let pg = env.pg().await?;
    let rejects = pg
        .query(
            "SELECT doc_id, field, error, excerpt, withheld, raw_bson, coalesce(document::text, ''), operation
             FROM _migrate_rejects WHERE run = 'r1' ORDER BY doc_id",
            &[],
        )
        .await?;
    let got: Vec<(String, String)> = rejects.iter().map(|r| (r.get(0), r.get(1))).collect();
    ensure!(
        got == [
            ("u02".to_string(), "avatar".to_string()),
            ("u09".to_string(), "vault".to_string()),
            ("u11".to_string(), "vault".to_string())
        ],
        "{got:?}"
    );
    let source_now: Vec<Document> = {
        use futures::TryStreamExt;
        users.find(doc! {}).await?.try_collect().await?
    };
    let private: Vec<String> = source_now.iter().flat_map(private_values).collect();
    for reject in &rejects {
        let (error, excerpt): (String, Option<String>) = (reject.get(2), reject.get(3));
        let withheld: Vec<String> = reject.get(4);
        let (raw, document): (Vec<u8>, String) = (reject.get(5), reject.get(6));
        let holds = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
        ensure!(
            excerpt.is_none(),
            "an excerpt of a transformed field: {excerpt:?}"
        );
        ensure!(
            withheld.len() == 8 && withheld.contains(&"vault".to_string()),
            "{withheld:?}"
        );
        ensure!(
            error.contains("does not decrypt with this key")
                || error.contains("does not match the required pattern"),
            "{error}"
        );
        for value in &private {
            ensure!(
                !holds(value) && !document.contains(value) && !error.contains(value),
                "a reject holds {value:?}: {error} {document}"
            );
        }
        ensure!(
            holds("User "),
            "the untransformed fields are kept: {document}"
        );
    }
    let operation: Option<String> = rejects[2].get(7);
    ensure!(operation.as_deref() == Some("insert"), "{operation:?}");

    // Fixed at the source, the rejects are read again from MongoDB and land. The
    // consumer waits meanwhile, so that replay, not the fixes' change events, lands
    // them.
    consumer.start_kill()?;
    consumer.wait().await?;
    users
        .update_one(
            doc! { "_id": "u02" },
            doc! { "$set": { "avatar": "s3://old-bucket/fixed.png" } },
        )
        .await?;
    for id in ["u09", "u11"] {
        let vault = b64(&gcm_seal(&VAULT, &format!("vault secret {id}")));
        users
            .update_one(doc! { "_id": id }, doc! { "$set": { "vault": vault } })
            .await?;
    }
    let replayed = env
        .command("mongo2pg", "r1")
        .args(["replay"])
        .env("PII_KEY", &pii)
        .output()
        .await?;
    assert_success(&replayed, "replay");
    ensure!(
        stdout(&replayed).contains("3 rejects landed, 0 still rejected"),
        "{}",
        stdout(&replayed)
    );
    let mut consumer = env
        .command("consumer", "r1")
        .args(["run", "--writers", "2", "--mapping", &mapping])
        .env("PII_KEY", &pii)
        .env("RUST_LOG", "info")
        .stdout(log(1)?)
        .stderr(log(1)?)
        .spawn()?;
    cutover_until(&env, "").await?;

    // Every row as the transforms make it from MongoDB's documents now.
    let source_now: Vec<Document> = {
        use futures::TryStreamExt;
        users
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await?
            .try_collect()
            .await?
    };
    let emails: Vec<String> = source_now
        .iter()
        .map(|d| d.get_str("email").map(|e| e.trim().to_lowercase()))
        .collect::<Result<_, _>>()?;
    let digests = python_hmac(&PII, &emails)?;
    let rows = pg
        .query(
            "SELECT _id, name, email, card, ssn, avatar, secret, salsa, cbc, vault, _extra::text FROM users ORDER BY _id",
            &[],
        )
        .await?;
    ensure!(
        rows.len() == 12 && source_now.len() == 12,
        "{} rows",
        rows.len()
    );
    for ((row, source), digest) in rows.iter().zip(&source_now).zip(&digests) {
        let id: String = row.get(0);
        let n: i32 = id[1..].parse()?;
        ensure!(id == source.get_str("_id")?, "{id}");
        ensure!(row.get::<_, String>(2) == *digest, "{id}: email digest");
        let card: String = row.get(3);
        ensure!(
            card == format!("{}{:04}", "*".repeat(15), 1000 + n),
            "{id}: {card}"
        );
        ensure!(
            row.get::<_, Option<String>>(4).is_none(),
            "{id}: ssn redacted"
        );
        let avatar: String = row.get(5);
        let expected =
            source
                .get_str("avatar")?
                .replacen("s3://old-bucket/", "https://cdn.example.com/", 1);
        ensure!(avatar == expected, "{id}: {avatar}");
        let opened = |i: usize| gcm_open(&PII, &row.get::<_, Vec<u8>>(i));
        ensure!(opened(6)? == format!("diary of user {n}"), "{id}: secret");
        ensure!(opened(7)? == format!("salsa secret {n}"), "{id}: salsa");
        ensure!(opened(8)? == format!("cbc secret {n}"), "{id}: cbc");
        let vault = if n == 9 || n == 11 {
            format!("vault secret {id}")
        } else {
            format!("vault secret {n}")
        };
        ensure!(opened(9)? == vault, "{id}: vault");
        ensure!(row.get::<_, Option<String>>(10).is_none(), "{id}: _extra");
    }
    ensure!(
        digests[1] == python_hmac(&PII, &["new.address@example.org".to_string()])?[0],
        "the change path hashes as the snapshot does"
    );

    // verify opens encrypted columns to compare them; a value changed in the target
    // is named, its plaintext not shown.
    let verify = |env: &TestEnv| {
        let mut command = env.command("mongo2pg", "r1");
        command.args(["verify"]).env("PII_KEY", &pii);
        command
    };
    let output = verify(&env).output().await?;
    ensure!(
        output.status.code() == Some(0),
        "verify: {}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    pg.execute(
        "UPDATE users SET secret = $1 WHERE _id = 'u03'",
        &[&gcm_seal(&PII, "a forged diary")],
    )
    .await?;
    let output = verify(&env).output().await?;
    let text = format!(
        "{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        output.status.code() == Some(4)
            && text.contains("column \"secret\": its decrypted value differs (not shown)")
            && !text.contains("forged")
            && !text.contains("diary of user 3"),
        "verify: {text}"
    );

    // No key in anything a process printed.
    for child in [&mut producer, &mut consumer] {
        child.start_kill()?;
        tokio::time::timeout(LIMIT, child.wait())
            .await
            .context("stopped")??;
    }
    let mut printed = String::new();
    for file in &logs {
        printed.push_str(&std::fs::read_to_string(file)?);
        std::fs::remove_file(file)?;
    }
    ensure!(
        printed.contains("consumer started"),
        "the logs were read: {printed}"
    );
    for key in [hex::encode(PII), hex::encode(CBC), b64(&VAULT), b64(&SALSA)] {
        ensure!(
            !printed.contains(&key) && !text.contains(&key),
            "a key was printed"
        );
    }
    for value in source_now.iter().flat_map(private_values) {
        ensure!(!printed.contains(&value), "{value:?} was logged");
    }
    Ok(())
}

/// A batch of a transformed collection that cannot land is dead-lettered without its
/// transformed fields; once the cause is fixed, `requeue` reads its documents again
/// from MongoDB and they land transformed.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_keeps_no_private_value_and_requeue_reads_it_again() -> Result<()> {
    let env = TestEnv::new("transforms_dead").await?;
    let accounts = env.db().collection::<Document>("accounts");
    let docs: Vec<Document> = (0..5)
        .map(|n| {
            doc! {
                "_id": format!("a{n}"),
                "name": format!("Account {n}"),
                "email": format!("owner{n}@example.com"),
                "secret": format!("pin {n:04}"),
            }
        })
        .collect();
    accounts.insert_many(&docs).await?;
    let mapping = env.write_file(
        "dead.toml",
        r#"
[keys]
pii = { env = "PII_KEY" }

[collections.accounts]
columns = [
  { path = "_id", type = "text" },
  { path = "name", type = "text" },
  { path = "email", type = "text", transform = { kind = "hash", key = "pii" } },
  { path = "secret", type = "bytea", transform = { kind = "encrypt", key = "pii" } },
]
"#,
    );
    // The table as the mapping makes it, with a trigger that refuses every batch.
    let ddl = env
        .mongo2pg("r1", &["schema", "--mapping", &mapping])
        .await?;
    assert_success(&ddl, "schema");
    let pg = env.pg().await?;
    pg.batch_execute(&stdout(&ddl)).await?;
    pg.batch_execute(
        r#"CREATE FUNCTION refuse_accounts() RETURNS trigger AS $$
           BEGIN RAISE EXCEPTION 'refused by trigger'; END $$ LANGUAGE plpgsql;
           CREATE TRIGGER refuse AFTER INSERT ON accounts REFERENCING NEW TABLE AS new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION refuse_accounts();"#,
    )
    .await?;
    let pii = hex::encode(PII);
    assert_success(&env.producer("r1", &["run"]).await?, "producer");
    let mut consumer = env
        .command("consumer", "r1")
        .args([
            "run",
            "--mapping",
            &mapping,
            "--max-deliver",
            "2",
            "--ack-wait",
            "5s",
        ])
        .env("PII_KEY", &pii)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = tokio::time::Instant::now();
    let row = loop {
        // The consumer makes the table as it starts.
        if let Ok(Some(row)) = pg
            .query_opt(
                "SELECT payload, withheld, reason FROM _migrate_dead_letters WHERE run = 'r1'",
                &[],
            )
            .await
        {
            break row;
        }
        ensure!(started.elapsed() < LIMIT, "no dead letter");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (payload, withheld, reason): (Vec<u8>, Vec<String>, String) =
        (row.get(0), row.get(1), row.get(2));
    let holds = |needle: &str| {
        payload
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    ensure!(withheld == ["email", "secret"], "{withheld:?}");
    ensure!(reason.contains("refused by trigger"), "{reason}");
    ensure!(holds("Account 3"), "the other fields are kept");
    for doc in &docs {
        for field in ["email", "secret"] {
            ensure!(!holds(doc.get_str(field)?), "the dead letter holds {field}");
        }
    }

    pg.batch_execute("DROP TRIGGER refuse ON accounts").await?;
    let requeued = env.mongo2pg("r1", &["requeue"]).await?;
    assert_success(&requeued, "requeue");
    let started = tokio::time::Instant::now();
    while pg
        .query_one("SELECT count(*) FROM accounts", &[])
        .await?
        .get::<_, i64>(0)
        < 5
    {
        ensure!(started.elapsed() < LIMIT, "the requeued batch did not land");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let emails: Vec<String> = docs
        .iter()
        .map(|d| d.get_str("email").map(str::to_string))
        .collect::<Result<_, _>>()?;
    let digests = python_hmac(&PII, &emails)?;
    let rows = pg
        .query("SELECT email, secret FROM accounts ORDER BY _id", &[])
        .await?;
    for ((row, digest), n) in rows.iter().zip(&digests).zip(0..) {
        ensure!(row.get::<_, String>(0) == *digest, "a{n}: email");
        ensure!(
            gcm_open(&PII, &row.get::<_, Vec<u8>>(1))? == format!("pin {n:04}"),
            "a{n}: secret"
        );
    }
    consumer.start_kill()?;
    consumer.wait().await?;
    Ok(())
}

/// Transforms on a child table's columns: each element's card encrypted and its
/// coupon code hashed; a reject keeps no element's card; `verify` opens the child
/// rows' ciphertexts to compare them.
#[tokio::test(flavor = "multi_thread")]
async fn child_table_columns_are_transformed_and_withheld_from_rejects() -> Result<()> {
    let env = TestEnv::new("transforms_child").await?;
    let orders = env.db().collection::<Document>("orders");
    let order = |n: i32, bad: bool| {
        doc! {
            "_id": format!("o{n:02}"),
            "items": (0..3).map(|i| doc! {
                "sku": format!("sku-{n}-{i}"),
                "card": format!("5500 0000 {n:04} {i:04}"),
                "coupon": if bad && i == 2 { bson::Bson::Double(1.5) } else { bson::Bson::String(format!("CODE{n}{i}")) },
            }).collect::<Vec<_>>(),
        }
    };
    let docs: Vec<Document> = (0..10).map(|n| order(n, n == 7)).collect();
    orders.insert_many(&docs).await?;
    let mapping = env.write_file(
        "child.toml",
        r#"
[keys]
pii = { env = "PII_KEY" }

[collections.orders]
columns = [{ path = "_id", type = "text" }]
children = [
  { path = "items", columns = [
      { path = "sku", type = "text" },
      { path = "card", type = "bytea", transform = { kind = "encrypt", key = "pii" } },
      { path = "coupon", type = "text", transform = { kind = "hash", key = "pii" } },
  ] },
]
"#,
    );
    let pii = hex::encode(PII);
    assert_success(&env.producer("r1", &["run"]).await?, "producer");
    let consumer = env
        .command("consumer", "r1")
        .args(["run", "--exit-when-done", "--mapping", &mapping])
        .env("PII_KEY", &pii)
        .output();
    let output = tokio::time::timeout(LIMIT, consumer).await??;
    assert_success(&output, "consumer");

    let pg = env.pg().await?;
    let rows = pg
        .query(
            "SELECT _parent, _position, sku, card, coupon FROM orders_items ORDER BY _parent, _position",
            &[],
        )
        .await?;
    if rows.len() != 27 {
        let errors: Vec<String> = pg
            .query("SELECT error FROM _migrate_rejects", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        anyhow::bail!("{} item rows; rejects: {errors:?}", rows.len());
    }
    let coupons: Vec<String> = rows
        .iter()
        .map(|r| {
            let (parent, position): (String, i32) = (r.get(0), r.get(1));
            let n: i32 = parent[1..].parse().unwrap_or_default();
            format!("CODE{n}{position}")
        })
        .collect();
    let digests = python_hmac(&PII, &coupons)?;
    for (row, digest) in rows.iter().zip(&digests) {
        let (parent, position): (String, i32) = (row.get(0), row.get(1));
        let n: i32 = parent[1..].parse()?;
        ensure!(
            row.get::<_, String>(2) == format!("sku-{n}-{position}"),
            "{parent}"
        );
        ensure!(
            gcm_open(&PII, &row.get::<_, Vec<u8>>(3))? == format!("5500 0000 {n:04} {position:04}"),
            "{parent}[{position}]: card"
        );
        ensure!(
            row.get::<_, String>(4) == *digest,
            "{parent}[{position}]: coupon"
        );
    }
    let reject = pg
        .query_one(
            "SELECT doc_id, field, withheld, raw_bson, document::text FROM _migrate_rejects",
            &[],
        )
        .await?;
    let (id, field, withheld): (String, String, Vec<String>) =
        (reject.get(0), reject.get(1), reject.get(2));
    ensure!(
        id == "o07" && field == "items[2].coupon" && withheld == ["items.card", "items.coupon"],
        "{id} {field} {withheld:?}"
    );
    let (raw, document): (Vec<u8>, String) = (reject.get(3), reject.get(4));
    for i in 0..3 {
        let card = format!("5500 0000 0007 {i:04}");
        ensure!(
            !raw.windows(card.len()).any(|w| w == card.as_bytes()) && !document.contains(&card),
            "the reject holds item {i}'s card"
        );
    }
    ensure!(
        document.contains("sku-7-2"),
        "the other fields are kept: {document}"
    );

    let output = env
        .command("mongo2pg", "r1")
        .args(["verify"])
        .env("PII_KEY", &pii)
        .output()
        .await?;
    let text = format!(
        "{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        output.status.code() == Some(5) && text.contains("9 rows equal, 1 in _migrate_rejects"),
        "verify: {text}"
    );
    Ok(())
}
