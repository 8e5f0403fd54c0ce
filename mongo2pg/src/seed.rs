//! Generated documents for demos, tests and benchmarks.
//!
//! Users are inserted with `insert_many` in chunks from a few concurrent tasks: MongoDB
//! takes a million in well under a minute that way, where one document per round trip
//! would take many minutes.

use std::time::{Duration, Instant};

use bson::spec::BinarySubtype;
use bson::{doc, oid::ObjectId, Binary, DateTime, Decimal128, Document};
use futures::stream::{self, StreamExt, TryStreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::{SeedConfig, Shape};
use crate::error::OperatorError;
use source::mongo_detail;

/// Documents per `insert_many`: large enough that round trips do not matter, small
/// enough to stay far under MongoDB's 48 MB message limit.
const CHUNK: u64 = 5_000;
/// Chunks inserted at once.
const CONCURRENCY: usize = 4;

const CITIES: &[&str] = &[
    "Lisbon",
    "Porto",
    "Berlin",
    "Zürich",
    "São Paulo",
    "Osaka",
    "Nairobi",
    "Montréal",
];
const TAGS: &[&str] = &[
    "new",
    "vip",
    "beta",
    "churned",
    "newsletter",
    "mobile",
    "trial",
];

/// What `seed` did.
#[derive(Debug, Clone, Copy)]
pub struct Seeded {
    /// Documents inserted.
    pub documents: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Inserts `config.count` generated documents into the collection.
pub async fn seed(config: &SeedConfig) -> Result<Seeded, OperatorError> {
    let started = Instant::now();
    let database = source::connect(&config.mongo).await?;
    let collection = database.collection::<Document>(&config.collection);
    let fail = |e: mongodb::error::Error| OperatorError::Seed {
        collection: config.collection.clone(),
        detail: mongo_detail(&e),
    };
    if config.drop {
        collection.drop().await.map_err(fail)?;
    }
    let chunks = config.count.div_ceil(CHUNK);
    let shape = config.shape;
    let count = config.count;
    stream::iter(0..chunks)
        .map(|chunk| {
            let collection = collection.clone();
            async move {
                let start = chunk * CHUNK;
                let end = (start + CHUNK).min(count);
                let mut rng = SmallRng::seed_from_u64(start);
                let docs: Vec<Document> =
                    (start..end).map(|i| document(shape, i, &mut rng)).collect();
                collection
                    .insert_many(docs)
                    .ordered(false)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await
        .map_err(fail)?;
    Ok(Seeded {
        documents: count,
        elapsed: started.elapsed(),
    })
}

/// Products the generated orders' lines refer to.
const PRODUCTS: u32 = 10_000;

/// The `i`-th generated document. `Users` carries one field of every type a mapping
/// column can take, so one mapping can exercise them all.
pub fn document(shape: Shape, i: u64, rng: &mut impl Rng) -> Document {
    let username = format!("user{i:07}");
    let email = format!(
        "{username}@example.{}",
        ["com", "org", "net"][(i % 3) as usize]
    );
    let age = rng.random_range(18..90_i32);
    match shape {
        Shape::Orders => order(rng),
        Shape::Flat => {
            doc! { "_id": ObjectId::new(), "username": username, "email": email, "age": age }
        }
        Shape::Users => {
            // 2015-01-01 to 2026-01-01, in milliseconds.
            let created = rng.random_range(1_420_070_400_000_i64..1_767_225_600_000);
            let tags: Vec<&str> = (0..rng.random_range(0..4))
                .map(|_| TAGS[rng.random_range(0..TAGS.len())])
                .collect();
            let cents = rng.random_range(0..10_000_000_i64);
            let balance: Decimal128 = format!("{}.{:02}", cents / 100, cents % 100)
                .parse()
                .unwrap_or_else(|_| Decimal128::from_bytes([0; 16]));
            doc! {
                "_id": ObjectId::new(),
                "username": username,
                "email": email,
                "age": age,
                "created_at": DateTime::from_millis(created),
                "address": {
                    "street": format!("{} Rua Augusta", rng.random_range(1..500)),
                    "city": CITIES[rng.random_range(0..CITIES.len())],
                    "zip": format!("{:05}", rng.random_range(0..99_999)),
                },
                "tags": tags,
                "balance": balance,
                "active": rng.random_bool(0.8),
                "login_count": rng.random_range(0..5_000_000_000_i64),
                "rating": rng.random_range(0.0..5.0_f64),
                "external_id": Binary { subtype: BinarySubtype::Uuid, bytes: rng.random::<[u8; 16]>().to_vec() },
                "password_hash": Binary { subtype: BinarySubtype::Generic, bytes: rng.random::<[u8; 32]>().to_vec() },
            }
        }
    }
}

fn order(rng: &mut impl Rng) -> Document {
    // Ids made of a counter, so the lines refer to PRODUCTS distinct products.
    let product = |n: u32| {
        let mut bytes = [0_u8; 12];
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        ObjectId::from_bytes(bytes)
    };
    let items: Vec<Document> = (0..rng.random_range(1..6))
        .map(|_| {
            let cents = rng.random_range(100..100_000_i64);
            let price: Decimal128 = format!("{}.{:02}", cents / 100, cents % 100)
                .parse()
                .unwrap_or_else(|_| Decimal128::from_bytes([0; 16]));
            doc! {
                "productId": product(rng.random_range(0..PRODUCTS)),
                "qty": rng.random_range(1..10_i32),
                "price": price,
            }
        })
        .collect();
    doc! {
        "_id": ObjectId::new(),
        "userId": ObjectId::new(),
        "createdAt": DateTime::from_millis(rng.random_range(1_420_070_400_000_i64..1_767_225_600_000)),
        "status": (["new", "paid", "shipped", "returned"][rng.random_range(0..4)]),
        "items": items,
    }
}
