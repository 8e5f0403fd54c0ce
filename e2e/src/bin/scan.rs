//! The benchmark's baseline for reading a collection: one cursor over the whole
//! collection in `_id` order, nothing done with the documents. It takes the driver's
//! raw replies (`find(..).batch()`), not one deserialized document at a time: the
//! fastest one cursor of this driver reads, so a reader compared with it is compared
//! with the best it could do, not with a slower baseline.
//! `scan MONGODB_URI DATABASE COLLECTION` prints `<documents> <bytes> <seconds>`.

use std::process::ExitCode;
use std::time::Instant;

use bson::{doc, RawDocumentBuf};
use futures::TryStreamExt;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uri, database, collection] = args.as_slice() else {
        eprintln!("usage: scan MONGODB_URI DATABASE COLLECTION");
        return ExitCode::from(2);
    };
    match scan(uri, database, collection).await {
        Ok((documents, bytes, seconds)) => {
            println!("{documents} {bytes} {seconds:.3}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn scan(
    uri: &str,
    database: &str,
    collection: &str,
) -> mongodb::error::Result<(u64, u64, f64)> {
    let client = mongodb::Client::with_uri_str(uri).await?;
    let collection = client
        .database(database)
        .collection::<RawDocumentBuf>(collection);
    let started = Instant::now();
    let mut cursor = collection
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .batch_size(20_000)
        .batch()
        .await?;
    let (mut documents, mut bytes) = (0u64, 0u64);
    while let Some(reply) = cursor.try_next().await? {
        for doc in reply.doc_slices()? {
            documents += 1;
            bytes += doc?.as_document().map_or(0, |d| d.as_bytes().len()) as u64;
        }
    }
    Ok((documents, bytes, started.elapsed().as_secs_f64()))
}
