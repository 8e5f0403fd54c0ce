//! From documents to a relational model: a shop (users with an embedded address,
//! products with variants and an array of likes, orders with typed lines two levels
//! deep, reviews, coupons referred to by DBRef) migrated with the mapping `infer`
//! proposes, used unchanged. The application's queries return in PostgreSQL what the
//! equivalent MongoDB aggregations return, after a snapshot and after a followed run
//! whose writer changes order lines, references and arrays of references.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bson::oid::ObjectId;
use bson::{doc, Bson, DateTime, Decimal128, Document};
use futures::TryStreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use e2e::{assert_success, stdout, TestEnv};

const LIMIT: Duration = Duration::from_secs(240);

/// The shop's ids, to write changes with.
struct Shop {
    users: Vec<ObjectId>,
    products: Vec<ObjectId>,
    orders: Vec<ObjectId>,
}

fn price(rng: &mut StdRng) -> Bson {
    let cents: u32 = rng.random_range(100..10_000);
    let text = format!("{}.{:02}", cents / 100, cents % 100);
    Bson::Decimal128(text.parse::<Decimal128>().expect("decimal"))
}

fn line(rng: &mut StdRng, products: &[ObjectId]) -> Document {
    let mut item = doc! {
        "productId": products[rng.random_range(0..products.len())],
        "qty": rng.random_range(1..5_i32),
        "price": price(rng),
    };
    if rng.random_bool(0.5) {
        let options: Vec<Document> = (0..rng.random_range(1..3))
            .map(|i| doc! { "name": format!("option {i}"), "surcharge": price(rng) })
            .collect();
        item.insert("options", options);
    }
    item
}

fn order(rng: &mut StdRng, n: i64, users: &[ObjectId], products: &[ObjectId]) -> Document {
    let items: Vec<Document> = (0..rng.random_range(1..4))
        .map(|_| line(rng, products))
        .collect();
    let mut order = doc! {
        "_id": ObjectId::new(),
        "userId": users[rng.random_range(0..users.len())],
        // Distinct times, so "the last ten" is one answer in both databases.
        "createdAt": DateTime::from_millis(1_700_000_000_000 + n * 60_000),
        "status": (["new", "paid", "shipped"][rng.random_range(0..3)]),
        "items": items,
    };
    if n % 4 == 0 {
        order.insert("coupon", doc! { "$ref": "coupons", "$id": "SPRING" });
    }
    order
}

async fn build_shop(env: &TestEnv) -> Result<Shop> {
    let db = env.db();
    let mut rng = StdRng::seed_from_u64(23);
    db.collection::<Document>("coupons")
        .insert_many([
            doc! { "_id": "SPRING", "percent": 10 },
            doc! { "_id": "WINTER", "percent": 15 },
        ])
        .await?;
    let users: Vec<Document> = (0..30)
        .map(|i| {
            let mut user = doc! {
                "_id": ObjectId::new(),
                "name": format!("user {i:02}"),
                "email": format!("user{i}@example.com"),
                "address": { "street": format!("{i} Main St"), "city": (["Porto", "Faro", "Braga"][i % 3]), "zipCode": format!("4{i:03}") },
                "roles": (if i % 7 == 0 { vec!["customer", "admin"] } else { vec!["customer"] }),
                "createdAt": DateTime::from_millis(1_600_000_000_000 + i as i64 * 1000),
            };
            // Documents missing a field: no phone for odd users.
            if i % 2 == 0 {
                user.insert("phone", format!("+351 9{i:08}"));
            }
            user
        })
        .collect();
    db.collection::<Document>("users")
        .insert_many(&users)
        .await?;
    let user_ids: Vec<ObjectId> = users
        .iter()
        .map(|u| u.get_object_id("_id").expect("id"))
        .collect();
    let products: Vec<Document> = (0..20)
        .map(|i| {
            let liked: Vec<ObjectId> = (0..rng.random_range(0..5))
                .map(|_| user_ids[rng.random_range(0..user_ids.len())])
                .collect();
            let variants: Vec<Document> = (0..rng.random_range(1..4))
                .map(|v| doc! { "sku": format!("P{i}-{v}"), "color": (["red", "blue"][v % 2]), "stock": rng.random_range(0..50_i32) })
                .collect();
            doc! {
                "_id": ObjectId::new(),
                "name": format!("product {i:02}"),
                "sku": format!("P{i}"),
                "price": price(&mut rng),
                "variants": variants,
                "likedBy": liked,
            }
        })
        .collect();
    db.collection::<Document>("products")
        .insert_many(&products)
        .await?;
    let product_ids: Vec<ObjectId> = products
        .iter()
        .map(|p| p.get_object_id("_id").expect("id"))
        .collect();
    let orders: Vec<Document> = (0..200)
        .map(|n| order(&mut rng, n, &user_ids, &product_ids))
        .collect();
    db.collection::<Document>("orders")
        .insert_many(&orders)
        .await?;
    let reviews: Vec<Document> = (0..60)
        .map(|i| {
            doc! {
                "_id": ObjectId::new(),
                "productId": product_ids[rng.random_range(0..product_ids.len())],
                "authorId": user_ids[rng.random_range(0..user_ids.len())],
                "rating": rng.random_range(1..6_i32),
                "body": format!("review {i}"),
            }
        })
        .collect();
    db.collection::<Document>("reviews")
        .insert_many(&reviews)
        .await?;
    Ok(Shop {
        users: user_ids,
        products: product_ids,
        orders: orders
            .iter()
            .map(|o| o.get_object_id("_id").expect("id"))
            .collect(),
    })
}

/// `mongo2pg infer` with its defaults; the mapping's path.
async fn infer(env: &TestEnv) -> Result<String> {
    let out = std::env::temp_dir().join(format!("{}-shop.toml", env.name));
    let sql = std::env::temp_dir().join(format!("{}-shop.sql", env.name));
    let (out, sql) = (out.display().to_string(), sql.display().to_string());
    let inferred = env
        .mongo2pg("r1", &["infer", "--out", &out, "--sql", &sql])
        .await?;
    assert_success(&inferred, "infer");
    let report = stdout(&inferred);
    for found in [
        "reference: orders.userId -> users",
        "reference: orders.items[].productId -> products",
        "reference: orders.coupon -> coupons (DBRef)",
        "reference: products.likedBy[] -> users",
        "reference: reviews.authorId -> users",
    ] {
        ensure!(report.contains(found), "{found:?} not in {report}");
    }
    Ok(out)
}

/// The schema `infer` proposes: the database's name.
fn schema(env: &TestEnv) -> String {
    env.db().name().to_string()
}

/// A followed run of the shop: its producer and consumers.
struct Followed {
    processes: Vec<tokio::process::Child>,
}

impl Followed {
    /// Starts `producer run --follow` and `consumers` consumers with the mapping, and
    /// waits for a first `cutover --no-finish` (foreign keys would check the changes
    /// still to come).
    async fn start(env: &TestEnv, mapping: &str, consumers: usize) -> Result<Followed> {
        let mut processes = vec![env
            .command("producer", "r1")
            .args(["run", "--follow"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?];
        for _ in 0..consumers {
            processes.push(
                env.command("consumer", "r1")
                    .args(["run", "--writers", "2", "--mapping", mapping])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
        }
        let started = tokio::time::Instant::now();
        loop {
            let (code, text) = env
                .mongo2pg_report("r1", &["cutover", "--timeout", "120s", "--no-finish"])
                .await?;
            if code == Some(0) {
                ensure!(text.contains("finish not run (--no-finish)"), "{text}");
                return Ok(Followed { processes });
            }
            // The producer makes the stream, the buckets and the run's record as it
            // starts: until then, "no producer has run/started ...".
            ensure!(
                started.elapsed() < LIMIT && text.contains("no producer has"),
                "first cutover: {text}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn stop(mut self) {
        for process in &mut self.processes {
            let _ = process.start_kill();
            let _ = process.wait().await;
        }
    }
}

/// Normalizes a decimal's text: `59.970` and `59.97` are one number.
fn decimal(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

async fn aggregate(
    env: &TestEnv,
    collection: &str,
    pipeline: Vec<Document>,
) -> Result<Vec<Document>> {
    Ok(env
        .db()
        .collection::<Document>(collection)
        .aggregate(pipeline)
        .await?
        .try_collect()
        .await?)
}

/// The three application queries, in PostgreSQL and as MongoDB aggregations, compared.
async fn queries_agree(env: &TestEnv, shop: &Shop) -> Result<()> {
    let pg = env.pg().await?;
    let s = schema(env);
    // 1. A user's last ten orders with their lines and product names.
    for user in &shop.users {
        let sql = format!(
            "SELECT o._id, i._position, p.name, i.qty
             FROM (SELECT _id, created_at FROM \"{s}\".orders WHERE user_id = $1
                   ORDER BY created_at DESC LIMIT 10) o
             JOIN \"{s}\".order_items i ON i.order_id = o._id
             JOIN \"{s}\".products p ON p._id = i.product_id
             ORDER BY o.created_at DESC, i._position"
        );
        let ours: Vec<(String, i64, String, i32)> = pg
            .query(&sql, &[&user.to_hex()])
            .await?
            .iter()
            .map(|r| (r.get(0), i64::from(r.get::<_, i32>(1)), r.get(2), r.get(3)))
            .collect();
        let theirs: Vec<(String, i64, String, i32)> = aggregate(
            env,
            "orders",
            vec![
                doc! { "$match": { "userId": user } },
                doc! { "$sort": { "createdAt": -1 } },
                doc! { "$limit": 10 },
                doc! { "$unwind": { "path": "$items", "includeArrayIndex": "position" } },
                doc! { "$lookup": { "from": "products", "localField": "items.productId", "foreignField": "_id", "as": "product" } },
                doc! { "$unwind": "$product" },
            ],
        )
        .await?
        .iter()
        .map(|d| {
            let items = d.get_document("items").expect("items");
            (
                d.get_object_id("_id").expect("id").to_hex(),
                d.get_i64("position").expect("position"),
                d.get_document("product").expect("product").get_str("name").expect("name").to_string(),
                items.get_i32("qty").expect("qty"),
            )
        })
        .collect();
        ensure!(
            ours == theirs,
            "orders of {user}: PostgreSQL {ours:?}\nMongoDB {theirs:?}"
        );
    }
    // 2. Revenue per product.
    let ours: Vec<(String, String)> = pg
        .query(
            &format!(
                "SELECT p.name, sum(i.qty * i.price)::text
                 FROM \"{s}\".order_items i JOIN \"{s}\".products p ON p._id = i.product_id
                 GROUP BY p.name ORDER BY p.name"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), decimal(r.get(1))))
        .collect();
    let theirs: Vec<(String, String)> = aggregate(
        env,
        "orders",
        vec![
            doc! { "$unwind": "$items" },
            doc! { "$group": { "_id": "$items.productId", "revenue": { "$sum": { "$multiply": ["$items.qty", "$items.price"] } } } },
            doc! { "$lookup": { "from": "products", "localField": "_id", "foreignField": "_id", "as": "product" } },
            doc! { "$unwind": "$product" },
            doc! { "$sort": { "product.name": 1 } },
        ],
    )
    .await?
    .iter()
    .map(|d| {
        let revenue = match d.get("revenue") {
            Some(Bson::Decimal128(value)) => value.to_string(),
            other => format!("{other:?}"),
        };
        (
            d.get_document("product").expect("product").get_str("name").expect("name").to_string(),
            decimal(&revenue),
        )
    })
    .collect();
    ensure!(
        !ours.is_empty() && ours == theirs,
        "revenue: PostgreSQL {ours:?}\nMongoDB {theirs:?}"
    );
    // 3. The users who liked a product.
    let mut liked = 0;
    for product in &shop.products {
        let ours: Vec<String> = pg
            .query(
                &format!(
                    "SELECT u.name FROM \"{s}\".product_liked_by l
                     JOIN \"{s}\".users u ON u._id = l.user_id
                     WHERE l.product_id = $1 ORDER BY u.name"
                ),
                &[&product.to_hex()],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let theirs: Vec<String> = aggregate(
            env,
            "products",
            vec![
                doc! { "$match": { "_id": product } },
                doc! { "$unwind": "$likedBy" },
                doc! { "$lookup": { "from": "users", "localField": "likedBy", "foreignField": "_id", "as": "user" } },
                doc! { "$unwind": "$user" },
                doc! { "$sort": { "user.name": 1 } },
            ],
        )
        .await?
        .iter()
        .map(|d| d.get_document("user").expect("user").get_str("name").expect("name").to_string())
        .collect();
        ensure!(
            ours == theirs,
            "likes of {product}: PostgreSQL {ours:?}\nMongoDB {theirs:?}"
        );
        liked += ours.len();
    }
    ensure!(liked > 0, "no likes compared");
    Ok(())
}

/// What the tables look like: typed, snake_case, in the schema, references typed as
/// the keys they join.
async fn tables_are_relational(env: &TestEnv) -> Result<()> {
    let pg = env.pg().await?;
    let columns = |table: &'static str| {
        let pg = &pg;
        let s = schema(env);
        async move {
            let rows = pg
                .query(
                    "SELECT column_name::text || ' ' || data_type || CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END
                     FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2
                     ORDER BY ordinal_position",
                    &[&s, &table],
                )
                .await?;
            anyhow::Ok(
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let order_items = columns("order_items").await?;
    ensure!(
        order_items
            == [
                "order_id text not null",
                "_position integer not null",
                "price numeric not null",
                "product_id text not null",
                "qty integer not null",
                "_extra jsonb",
            ],
        "{order_items:?}"
    );
    let options = columns("order_item_options").await?;
    ensure!(
        options
            == [
                "order_id text not null",
                "_items_position integer not null",
                "_position integer not null",
                "name text not null",
                "surcharge numeric not null",
                "_extra jsonb",
            ],
        "{options:?}"
    );
    let likes = columns("product_liked_by").await?;
    ensure!(
        likes
            == [
                "product_id text not null",
                "_position integer not null",
                "user_id text"
            ],
        "{likes:?}"
    );
    let users = columns("users").await?;
    for expected in [
        "address_city text not null",
        "address_zip_code text not null",
        "phone text",
        "roles ARRAY not null",
        "created_at timestamp with time zone not null",
    ] {
        ensure!(
            users.iter().any(|c| c == expected),
            "{expected:?} not in {users:?}"
        );
    }
    let orders = columns("orders").await?;
    ensure!(orders.iter().any(|c| c == "coupon text"), "{orders:?}");
    // Nothing landed in public, nothing in an _extra.
    let public: i64 = pg
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '\\_migrate\\_%'",
            &[],
        )
        .await?
        .get(0);
    ensure!(public == 0, "{public} tables in public");
    let s = schema(env);
    let extra: i64 = pg
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM \"{s}\".orders WHERE _extra IS NOT NULL)
                      + (SELECT count(*) FROM \"{s}\".order_items WHERE _extra IS NOT NULL)
                      + (SELECT count(*) FROM \"{s}\".users WHERE _extra IS NOT NULL)"
            ),
            &[],
        )
        .await?
        .get(0);
    ensure!(extra == 0, "{extra} rows with an _extra");
    let coupons: i64 = pg
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{s}\".orders o JOIN \"{s}\".coupons c ON c._id = o.coupon"
            ),
            &[],
        )
        .await?
        .get(0);
    ensure!(coupons == 50, "{coupons} orders join their DBRef's coupon");
    Ok(())
}

async fn verify_passes(env: &TestEnv, mapping: &str) -> Result<()> {
    let (code, text) = env
        .mongo2pg_report("r1", &["verify", "--mapping", mapping])
        .await?;
    ensure!(code == Some(0), "verify: {text}");
    ensure!(
        text.contains("the target holds exactly what the mapping makes of the source")
            && text.contains("orders -> "),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn infer_proposes_a_relational_model_the_shop_lands_in_and_queries_agree() -> Result<()> {
    let env = TestEnv::new("shop").await?;
    let shop = build_shop(&env).await?;
    let mapping = infer(&env).await?;
    let consumer = env.spawn_consumer("r1", &["--mapping", &mapping])?;
    let produced = env.producer("r1", &["run"]).await?;
    assert_success(&produced, "producer run");
    let output = tokio::time::timeout(LIMIT, consumer.wait_with_output())
        .await
        .context("consumer finishes")??;
    assert_success(&output, "consumer");
    tables_are_relational(&env).await?;
    verify_passes(&env, &mapping).await?;
    queries_agree(&env, &shop).await?;

    // Damage an order line, an option and a like: verify names them, --repair lands
    // the documents' rows again, child and join rows included.
    let s = schema(&env);
    env.pg()
        .await?
        .batch_execute(&format!(
            "UPDATE \"{s}\".order_items SET qty = qty + 1 WHERE _position = 0 AND order_id = (SELECT min(order_id) FROM \"{s}\".order_items);
             DELETE FROM \"{s}\".order_item_options WHERE order_id = (SELECT max(order_id) FROM \"{s}\".order_item_options);
             DELETE FROM \"{s}\".product_liked_by WHERE product_id = (SELECT min(product_id) FROM \"{s}\".product_liked_by);"
        ))
        .await?;
    let (code, text) = env
        .mongo2pg_report("r1", &["verify", "--mapping", &mapping])
        .await?;
    ensure!(
        code == Some(4)
            && text.contains("3 differences")
            && text.contains(&format!("its rows in {s}.order_items differ (source"))
            && text.contains(&format!("its rows in {s}.product_liked_by differ (source")),
        "{text}"
    );
    let (code, text) = env
        .mongo2pg_report("r1", &["verify", "--mapping", &mapping, "--repair"])
        .await?;
    ensure!(
        code == Some(0)
            && text.contains(
                "200 rows equal, 0 in _migrate_rejects; 1 ranges differ; 2 documents landed again"
            )
            && text.contains(
                "20 rows equal, 0 in _migrate_rejects; 1 ranges differ; 1 documents landed again"
            ),
        "{code:?} {text}"
    );
    verify_passes(&env, &mapping).await?;
    queries_agree(&env, &shop).await?;

    // Run again: the edited mapping is kept, the proposal goes next to it.
    std::fs::write(
        &mapping,
        std::fs::read_to_string(&mapping)? + "\n# edited\n",
    )?;
    let sql = format!("{mapping}.sql");
    let again = env
        .mongo2pg("r1", &["infer", "--out", &mapping, "--sql", &sql])
        .await?;
    assert_success(&again, "infer again");
    ensure!(
        std::fs::read_to_string(&mapping)?.ends_with("# edited\n"),
        "overwritten"
    );
    ensure!(
        stdout(&again).contains("exists and differs")
            && std::path::Path::new(&format!("{mapping}.new")).exists(),
        "{}",
        stdout(&again)
    );
    // And the DDL of the edited mapping is the one infer wrote.
    let ddl = env
        .mongo2pg("r1", &["schema", "--mapping", &mapping])
        .await?;
    assert_success(&ddl, "schema");
    let written =
        std::fs::read_to_string(std::env::temp_dir().join(format!("{}-shop.sql", env.name)))?;
    // The same tables, then what finish builds after the load.
    ensure!(
        written.starts_with(&stdout(&ddl))
            && written.contains("-- After the load, `mongo2pg finish`")
            && written.contains("FOREIGN KEY (\"product_id\") REFERENCES"),
        "{}\n---\n{written}",
        stdout(&ddl)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_followed_shop_keeps_order_lines_references_and_likes_in_step() -> Result<()> {
    let env = TestEnv::new("shop_live").await?;
    let shop = build_shop(&env).await?;
    let mapping = infer(&env).await?;
    // Mid-run: caught up, but writes go on, so no foreign keys yet (`finish` runs at
    // the last cutover).
    let run = Followed::start(&env, &mapping, 1).await?;

    let db = env.db();
    let orders = db.collection::<Document>("orders");
    let products = db.collection::<Document>("products");
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..40_i64 {
        let order = shop.orders[rng.random_range(0..shop.orders.len())];
        let user = shop.users[rng.random_range(0..shop.users.len())];
        let product = shop.products[rng.random_range(0..shop.products.len())];
        match round % 8 {
            0 => {
                // On an order without lines, `items.0.qty` would make a line of a
                // quantity alone: a reject, as it should be, but not this test's point.
                orders
                    .update_one(
                        doc! { "_id": order, "items.0": { "$exists": true } },
                        doc! { "$set": { "items.0.qty": 9 } },
                    )
                    .await?;
            }
            1 => {
                let item = line(&mut rng, &shop.products);
                orders
                    .update_one(doc! { "_id": order }, doc! { "$push": { "items": item } })
                    .await?;
            }
            2 => {
                orders
                    .update_one(doc! { "_id": order }, doc! { "$pop": { "items": -1 } })
                    .await?;
            }
            3 => {
                orders
                    .update_one(doc! { "_id": order }, doc! { "$set": { "userId": user } })
                    .await?;
            }
            4 => {
                products
                    .update_one(
                        doc! { "_id": product },
                        doc! { "$addToSet": { "likedBy": user } },
                    )
                    .await?;
            }
            5 => {
                products
                    .update_one(doc! { "_id": product }, doc! { "$set": { "likedBy": [] } })
                    .await?;
            }
            6 => {
                orders
                    .insert_one(self::order(
                        &mut rng,
                        1000 + round,
                        &shop.users,
                        &shop.products,
                    ))
                    .await?;
            }
            _ => {
                orders
                    .update_one(
                        doc! { "_id": order, "items.0": { "$exists": true } },
                        doc! { "$set": { "items.0.options": [ { "name": "late", "surcharge": price(&mut rng) } ] } },
                    )
                    .await?;
            }
        }
    }
    // A reference to a document that is not there (yet) is no reject: constraints
    // come after the load.
    orders
        .insert_one(doc! {
            "_id": ObjectId::new(),
            "userId": ObjectId::new(),
            "createdAt": DateTime::from_millis(1_800_000_000_000),
            "status": "new",
            "items": [ { "productId": ObjectId::new(), "qty": 1, "price": price(&mut rng) } ],
        })
        .await?;
    // The last cutover runs finish: every key valid but the two the orphan order
    // breaks, its user and its line's product (exit 4).
    let (code, text) = env
        .mongo2pg_report("r1", &["cutover", "--timeout", "120s"])
        .await?;
    ensure!(
        code == Some(4) && text.contains("caught up") && text.contains("4 of 6 foreign keys valid"),
        "cutover: {text}"
    );
    // verify: every row as the mapping makes it, but the two keys do not hold.
    let (code, text) = env
        .mongo2pg_report("r1", &["verify", "--mapping", &mapping])
        .await?;
    let s = schema(&env);
    ensure!(
        code == Some(4)
            && text.matches("NOT VALID, 1 orphans, e.g. ").count() == 2
            && text.contains(&format!(
                "constraint {s}.orders.user_id -> {s}.users: NOT VALID"
            ))
            && text.contains(&format!(
                "constraint {s}.order_items.product_id -> {s}.products: NOT VALID"
            ))
            && text.contains("constraints: 4 foreign keys valid, ")
            && text.contains("verify: 2 differences"),
        "verify: {text}"
    );
    let mut all = shop;
    all.orders.clear();
    queries_agree(&env, &all).await?;
    run.stop().await;
    Ok(())
}

/// The shop's MongoDB indexes, of every kind `finish` meets.
async fn index_the_shop(env: &TestEnv) -> Result<()> {
    use mongodb::options::IndexOptions;
    use mongodb::IndexModel;
    let db = env.db();
    let index = |keys: Document, options: Option<IndexOptions>| {
        IndexModel::builder().keys(keys).options(options).build()
    };
    db.collection::<Document>("users")
        .create_indexes([
            index(
                doc! { "email": 1 },
                Some(IndexOptions::builder().unique(true).build()),
            ),
            index(doc! { "address.city": 1 }, None),
        ])
        .await?;
    db.collection::<Document>("orders")
        .create_indexes([
            index(doc! { "userId": 1, "createdAt": -1 }, None),
            index(
                doc! { "createdAt": 1 },
                Some(
                    IndexOptions::builder()
                        .partial_filter_expression(doc! { "status": "paid" })
                        .build(),
                ),
            ),
            index(doc! { "items.productId": 1 }, None),
        ])
        .await?;
    db.collection::<Document>("reviews")
        .create_index(index(doc! { "body": "text" }, None))
        .await?;
    db.collection::<Document>("products")
        .create_index(index(doc! { "sku": "hashed" }, None))
        .await?;
    db.collection::<Document>("sessions")
        .insert_many((0..5).map(|i| doc! { "lastSeen": DateTime::now(), "n": i }))
        .await?;
    db.collection::<Document>("sessions")
        .create_index(index(
            doc! { "lastSeen": 1 },
            Some(
                IndexOptions::builder()
                    .expire_after(Duration::from_secs(3600))
                    .build(),
            ),
        ))
        .await?;
    Ok(())
}

/// `finish` after the shop's snapshot: MongoDB's indexes built (unique, compound and
/// descending, partial, multikey on the child table, text as GIN, hashed), the TTL
/// index reported with its DELETE, the references' foreign keys validated, and an
/// order whose user does not exist named with its `_id`, its key left NOT VALID, exit
/// 4. Run again: nothing built twice. The application's queries use the indexes.
#[tokio::test(flavor = "multi_thread")]
async fn finish_builds_the_shops_indexes_and_foreign_keys_and_names_orphans() -> Result<()> {
    let env = TestEnv::new("shop_finish").await?;
    build_shop(&env).await?;
    index_the_shop(&env).await?;
    let orphan = ObjectId::new();
    let ghost = ObjectId::new();
    env.db()
        .collection::<Document>("orders")
        .insert_one(doc! {
            "_id": orphan,
            "userId": ghost,
            "createdAt": DateTime::from_millis(1_800_000_000_000),
            "status": "new",
            "items": [],
        })
        .await?;
    let mapping = infer(&env).await?;
    let consumer = env.spawn_consumer("r1", &["--mapping", &mapping])?;
    assert_success(&env.producer("r1", &["run"]).await?, "producer run");
    let output = tokio::time::timeout(LIMIT, consumer.wait_with_output())
        .await
        .context("consumer finishes")??;
    assert_success(&output, "consumer");

    let s = schema(&env);
    let (code, planned) = env
        .mongo2pg_report("r1", &["finish", "--mapping", &mapping, "--plan"])
        .await?;
    ensure!(code == Some(0), "{planned}");
    for statement in [
        format!("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"users_email_1\" ON \"{s}\".\"users\" (\"email\")"),
        format!("CREATE INDEX CONCURRENTLY IF NOT EXISTS \"orders_userId_1_createdAt_desc\" ON \"{s}\".\"orders\" (\"user_id\", \"created_at\" DESC)"),
        format!("ON \"{s}\".\"orders\" (\"created_at\") WHERE \"status\" = 'paid'"),
        format!("ON \"{s}\".\"order_items\" (\"product_id\")"),
        format!("ON \"{s}\".\"reviews\" USING gin ((to_tsvector('english'::regconfig, coalesce(\"body\", ''))))"),
        format!("ON \"{s}\".\"products\" USING hash (\"sku\")"),
        format!("ALTER TABLE \"{s}\".\"order_items\" ADD CONSTRAINT \"order_items_product_id_fkey\" FOREIGN KEY (\"product_id\") REFERENCES \"{s}\".\"products\" (\"_id\") NOT VALID"),
        format!("TTL index: PostgreSQL does not expire rows; schedule DELETE FROM \"{s}\".\"sessions\" WHERE \"last_seen\" < now() - interval '3600 seconds'"),
    ] {
        ensure!(planned.contains(&statement), "{statement:?} not in\n{planned}");
    }

    // What a build killed midway leaves: an INVALID index of the same name (here a
    // unique one that failed on the repeated cities).
    let failed = env
        .pg()
        .await?
        .batch_execute(&format!(
            "CREATE UNIQUE INDEX CONCURRENTLY \"users_address_city_1\" ON \"{s}\".users (address_city)"
        ))
        .await;
    ensure!(failed.is_err(), "the cities repeat");
    let (code, text) = env
        .mongo2pg_report("r1", &["finish", "--mapping", &mapping, "--jobs", "3"])
        .await?;
    ensure!(code == Some(4), "{text}");
    ensure!(
        text.contains("users_address_city_1 on")
            && text.contains("rebuilt (a crash had left it invalid)"),
        "{text}"
    );
    ensure!(
        text.contains(&format!(
            "foreign key  {s}.orders.user_id -> {s}.users: 1 orphans, e.g. {} -> {}",
            orphan.to_hex(),
            ghost.to_hex()
        )),
        "{text}"
    );
    ensure!(
        text.contains("finish: 8 of 8 indexes built, 5 of 6 foreign keys valid"),
        "{text}"
    );
    // verify fails on the orphan too, and finds every index valid.
    let (code, said) = env
        .mongo2pg_report("r1", &["verify", "--mapping", &mapping])
        .await?;
    ensure!(
        code == Some(4)
            && said.contains(&format!(
                "constraint {s}.orders.user_id -> {s}.users: NOT VALID, 1 orphans, e.g. {} -> {}",
                orphan.to_hex(),
                ghost.to_hex()
            ))
            && said.contains("constraints: 5 foreign keys valid, 8 indexes valid, 1 not (above)"),
        "{said}"
    );
    // status shows the phase, and is not a success while a key has orphans.
    let (code, said) = env.mongo2pg_report("r1", &["status"]).await?;
    ensure!(
        code == Some(4)
            && said.contains("finish: indexes 8/8 built; foreign keys 5/6 valid, NOT VALID ")
            && said.contains(&format!(
                "orders.user_id -> {s}.users: 1 orphans, e.g. {}",
                orphan.to_hex()
            ))
            && said.contains("finish left something to fix"),
        "{said}"
    );
    let pg = env.pg().await?;
    let invalid: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT i.indisvalid",
            &[&s],
        )
        .await?
        .get(0);
    ensure!(invalid == 0, "{invalid} invalid indexes");
    let constraints: Vec<(String, bool)> = pg
        .query(
            "SELECT conname::text, convalidated FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname = $1 AND contype = 'f' ORDER BY 1",
            &[&s],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    ensure!(
        constraints
            == [
                ("order_items_product_id_fkey".to_string(), true),
                ("orders_coupon_fkey".to_string(), true),
                ("orders_user_id_fkey".to_string(), false),
                ("product_liked_by_user_id_fkey".to_string(), true),
                ("reviews_author_id_fkey".to_string(), true),
                ("reviews_product_id_fkey".to_string(), true),
            ],
        "{constraints:?}"
    );
    ensure!(
        pg.query_one(
            &format!("SELECT count(*) FROM \"{s}\".orders WHERE _id = $1"),
            &[&orphan.to_hex()]
        )
        .await?
        .get::<_, i64>(0)
            == 1,
        "the orphan order is kept"
    );
    // The application's queries use the indexes (the tables are small: the planner is
    // asked not to scan them whole, so that a missing index shows).
    pg.batch_execute("SET enable_seqscan = off").await?;
    for (query, index) in [
        (format!("SELECT _id FROM \"{s}\".orders WHERE user_id = 'x' ORDER BY created_at DESC LIMIT 10"), "orders_userId_1_createdAt_desc"),
        (format!("SELECT * FROM \"{s}\".order_items WHERE product_id = 'x'"), "order_items_items_productId_1"),
        (format!("SELECT _id FROM \"{s}\".reviews WHERE to_tsvector('english'::regconfig, coalesce(body, '')) @@ plainto_tsquery('english', 'review')"), "reviews_body_text"),
    ] {
        let plan: Vec<String> = pg
            .query(&format!("EXPLAIN {query}"), &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        ensure!(plan.iter().any(|line| line.contains(index)), "{query}: {plan:?}");
    }

    // Again, after the missing user is there: everything valid, nothing built twice.
    env.pg()
        .await?
        .execute(
            &format!("INSERT INTO \"{s}\".users (_id, name, email, address_street, address_city, address_zip_code, roles, created_at) VALUES ($1, 'ghost', 'ghost@example.com', '', '', '', '{{}}', now())"),
            &[&ghost.to_hex()],
        )
        .await?;
    let (code, text) = env
        .mongo2pg_report("r1", &["finish", "--mapping", &mapping])
        .await?;
    ensure!(code == Some(0), "{text}");
    ensure!(
        text.matches("valid already in").count() == 8 && text.contains("6 of 6 foreign keys valid"),
        "{text}"
    );
    let (code, said) = env.mongo2pg_report("r1", &["status"]).await?;
    ensure!(
        code == Some(0) && said.contains("finish: indexes 8/8 built; foreign keys 6/6 valid"),
        "{said}"
    );
    Ok(())
}

/// A followed run whose writer creates a user and at once an order for that user, 300
/// times: consumers land the two collections in any order, and nothing is refused
/// for it during the load; `cutover` (which runs `finish`) then validates every
/// foreign key.
#[tokio::test(flavor = "multi_thread")]
async fn references_landing_out_of_order_are_valid_after_cutover() -> Result<()> {
    let env = TestEnv::new("shop_order").await?;
    let shop = build_shop(&env).await?;
    let mapping = infer(&env).await?;
    let run = Followed::start(&env, &mapping, 2).await?;
    let db = env.db();
    let mut rng = StdRng::seed_from_u64(300);
    for i in 0..300_i64 {
        let user = ObjectId::new();
        db.collection::<Document>("users")
            .insert_one(doc! {
                "_id": user,
                "name": format!("late {i:03}"),
                "email": format!("late{i}@example.com"),
                "address": { "street": "1 Late St", "city": "Porto", "zipCode": "4000" },
                "roles": ["customer"],
                "createdAt": DateTime::now(),
            })
            .await?;
        db.collection::<Document>("orders")
            .insert_one(order(&mut rng, 5000 + i, &[user], &shop.products))
            .await?;
    }
    let (code, text) = env
        .mongo2pg_report("r1", &["cutover", "--timeout", "120s"])
        .await?;
    ensure!(code == Some(0), "cutover: {text}");
    ensure!(text.contains("6 of 6 foreign keys valid"), "{text}");
    let pg = env.pg().await?;
    let rejects: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_rejects", &[])
        .await?
        .get(0);
    ensure!(rejects == 0, "{rejects} rejects");
    let s = schema(&env);
    let late: i64 = pg
        .query_one(
            &format!("SELECT count(*) FROM \"{s}\".orders o JOIN \"{s}\".users u ON u._id = o.user_id WHERE u.name LIKE 'late %'"),
            &[],
        )
        .await?
        .get(0);
    ensure!(late == 300, "{late} late orders join their user");
    verify_passes(&env, &mapping).await?;
    run.stop().await;
    Ok(())
}
