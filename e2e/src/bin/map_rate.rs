//! The consumer's mapping alone, on one thread: how many microseconds a document costs
//! from its BSON bytes to the row it lands as, with nothing else on the clock (no NATS,
//! no PostgreSQL). The end-to-end benchmark's ratios move with the machine's load; this
//! figure is steadier, so a change to the mapping is measured here first.
//!
//! `map_rate MONGODB_URI DATABASE COLLECTION MAPPING.toml [DOCUMENTS] [ROUNDS]` reads the
//! first DOCUMENTS (default 200,000) documents of the collection into memory once, maps
//! them ROUNDS times (default 5) in batches of 5,000 with the collection's plan from the
//! mapping file, and prints each round's µs per document, then the median.

use std::borrow::Cow;
use std::process::ExitCode;
use std::time::Instant;

use bson::{doc, RawDocumentBuf};
use futures::TryStreamExt;
use landing::mapped::Mapped;
use landing::mapping::MappingFile;

const BATCH: usize = 5_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (uri, database, collection, mapping) = match args.as_slice() {
        [uri, database, collection, mapping, ..] => (uri, database, collection, mapping),
        _ => {
            eprintln!(
                "usage: map_rate MONGODB_URI DATABASE COLLECTION MAPPING.toml [DOCUMENTS] [ROUNDS]"
            );
            return ExitCode::from(2);
        }
    };
    let number = |at: usize, default: usize| match args.get(at) {
        Some(text) => text.parse::<usize>().map_err(|e| format!("{text:?}: {e}")),
        None => Ok(default),
    };
    let (documents, rounds) = match (number(4, 200_000), number(5, 5)) {
        (Ok(documents), Ok(rounds)) if documents > 0 && rounds > 0 => (documents, rounds),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
        _ => {
            eprintln!("error: DOCUMENTS and ROUNDS must be above 0");
            return ExitCode::from(2);
        }
    };
    let file = match MappingFile::load(std::path::Path::new(mapping)) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("error: {mapping}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let docs = match read(uri, database, collection, documents).await {
        Ok(docs) => docs,
        Err(err) => {
            eprintln!("error: reading {database}.{collection}: {err}");
            return ExitCode::FAILURE;
        }
    };
    if docs.is_empty() {
        eprintln!("error: {database}.{collection} holds no documents");
        return ExitCode::FAILURE;
    }
    let plan = file.plan(collection);
    let mut per_doc = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let started = Instant::now();
        let (mut rows, mut rejects) = (0, 0);
        for batch in docs.chunks(BATCH) {
            let mapped = Mapped::map(&plan, batch.iter().map(|d| Cow::Borrowed(d.as_bytes())));
            rows += mapped.rows.len();
            rejects += mapped.rejects.len();
        }
        let micros = started.elapsed().as_secs_f64() * 1e6 / docs.len() as f64;
        println!("round {round}: {micros:.3} µs/document ({rows} rows, {rejects} rejects)");
        per_doc.push(micros);
    }
    per_doc.sort_by(f64::total_cmp);
    println!(
        "median: {:.3} µs/document over {} documents",
        per_doc[per_doc.len() / 2],
        docs.len()
    );
    ExitCode::SUCCESS
}

async fn read(
    uri: &str,
    database: &str,
    collection: &str,
    limit: usize,
) -> mongodb::error::Result<Vec<RawDocumentBuf>> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let cursor = client
        .database(database)
        .collection::<RawDocumentBuf>(collection)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .await?;
    cursor.try_collect().await
}
