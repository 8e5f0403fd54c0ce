//! One cursor reply's documents, read where they lie in the reply.
//!
//! The driver's document cursor deserializes every document of a reply into a value
//! of its own (an allocation, a copy and serde's visitor per document, about a tenth
//! of the producer's CPU on small documents); its raw batch cursor hands over the
//! reply as the server sent it. A [`Reply`] finds where each document lies once, then
//! lends them out in order.

use std::ops::Range;

use bson::RawDocument;
use futures::StreamExt;
use mongodb::raw_batch_cursor::{RawBatch, SessionRawBatchCursor};
use mongodb::ClientSession;

/// The documents of one reply, in the server's order.
#[derive(Debug)]
pub struct Reply {
    batch: RawBatch,
    /// Where each document lies in the reply's bytes.
    documents: Vec<Range<usize>>,
    next: usize,
}

impl Reply {
    fn new(batch: RawBatch) -> mongodb::error::Result<Self> {
        let base = batch.as_raw_document().as_bytes().as_ptr() as usize;
        let mut documents = Vec::new();
        for element in batch.doc_slices()? {
            let document = element?.as_document().ok_or_else(|| {
                mongodb::error::Error::custom("a cursor reply holds something else than a document")
            })?;
            let start = document.as_bytes().as_ptr() as usize - base;
            documents.push(start..start + document.as_bytes().len());
        }
        Ok(Reply {
            batch,
            documents,
            next: 0,
        })
    }

    /// The next document of the reply, `None` once all were taken.
    pub fn next_document(&mut self) -> Option<&RawDocument> {
        let at = self.next;
        // Past the last document `next` stays put: `remaining` counts from it.
        self.next = (at + 1).min(self.documents.len());
        self.document(at)
    }

    /// The next document without taking it.
    pub fn peek(&self) -> Option<&RawDocument> {
        self.document(self.next)
    }

    /// The reply's document at `index`, if there is one.
    fn document(&self, index: usize) -> Option<&RawDocument> {
        let range = self.documents.get(index)?.clone();
        // Checked when the reply was read: these bytes are one of its documents.
        RawDocument::from_bytes(&self.batch.as_raw_document().as_bytes()[range]).ok()
    }

    /// Documents not taken yet.
    pub fn remaining(&self) -> usize {
        self.documents.len() - self.next
    }

    /// The bytes of the documents not taken yet.
    pub fn remaining_bytes(&self) -> usize {
        self.documents[self.next..].iter().map(|r| r.len()).sum()
    }
}

/// The cursor's next reply holding a document, `None` once it is exhausted.
pub(crate) async fn next_reply(
    cursor: &mut SessionRawBatchCursor,
    session: &mut ClientSession,
) -> mongodb::error::Result<Option<Reply>> {
    let mut batches = cursor.stream(session);
    while let Some(batch) = batches.next().await {
        let reply = Reply::new(batch?)?;
        if reply.remaining() > 0 {
            return Ok(Some(reply));
        }
    }
    Ok(None)
}
