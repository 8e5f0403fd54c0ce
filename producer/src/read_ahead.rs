//! Reading the next cursor reply while the last one is published.
//!
//! Read and publish in one task take turns: MongoDB waits while a reply's documents are
//! batched, hashed and sent, and the producer waits while MongoDB reads the next one.
//! A [`ReadAhead`] gives the reading its own task, one reply ahead: MongoDB fills the
//! next reply while this one is published. One reply ahead holds the producer's
//! memory to two replies of `4 × --batch-size` documents at most, whatever the
//! collection's size.

use source::pager::Pager;
use source::ranges::RangePager;
use source::reply::Reply;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The documents of one part of a collection, in `_id` order.
pub(crate) enum Reader {
    Whole(Box<Pager>),
    Range(Box<RangePager>),
}

impl Reader {
    async fn next_reply(&mut self) -> mongodb::error::Result<Option<Reply>> {
        match self {
            Reader::Whole(pager) => pager.next_reply().await,
            Reader::Range(pager) => pager.next_reply().await,
        }
    }

    /// The range and where it resumed, for messages (nothing for a whole collection).
    pub(crate) fn describe(&self) -> Option<String> {
        match self {
            Reader::Whole(_) => None,
            Reader::Range(pager) => Some(pager.describe()),
        }
    }
}

/// A reader running one reply ahead of its caller.
pub(crate) struct ReadAhead {
    replies: mpsc::Receiver<mongodb::error::Result<Reply>>,
    /// Fires (or is dropped) once the reply being read from MongoDB is likely the
    /// part's last, or nothing more is read: see [`ReadAhead::nearly_read`].
    nearly_read: Option<oneshot::Receiver<()>>,
    /// Owned here: dropping the `ReadAhead` (the part failed or was stopped) ends it,
    /// and its cursor with it.
    task: JoinHandle<()>,
    describe: Option<String>,
}

impl ReadAhead {
    /// Starts reading. The task ends at the end of the part, at its first error (sent
    /// on as the last item), or when the `ReadAhead` is dropped. `nearly_after`: the
    /// documents after which the reply being read is likely the part's last (see
    /// [`ReadAhead::nearly_read`]); `None`: only its end says so.
    pub(crate) fn start(mut reader: Reader, nearly_after: Option<u64>) -> Self {
        let describe = reader.describe();
        // One reply waiting while the task reads the next: two replies ahead at most.
        let (send, replies) = mpsc::channel(1);
        let (tell, nearly_read) = oneshot::channel();
        let part = describe.clone();
        let task = tokio::spawn(async move {
            let mut tell = Some(tell);
            let mut read = 0u64;
            loop {
                let item = reader.next_reply().await.transpose();
                if let Some(Ok(reply)) = &item {
                    read += reply.remaining() as u64;
                }
                let last = !matches!(item, Some(Ok(_)));
                // Told once a reply is in hand: never before the part's first reply.
                if last || nearly_after.is_some_and(|after| read >= after) {
                    if let Some(tell) = tell.take() {
                        if !last {
                            tracing::debug!(
                                part = part.as_deref().unwrap_or("collection"),
                                read,
                                "nearly read: its last reply is likely the one being read"
                            );
                        }
                        let _ = tell.send(());
                    }
                }
                if last {
                    if let Some(item) = item {
                        let _ = send.send(item).await;
                    }
                    break;
                }
                if let Some(item) = item {
                    if send.send(item).await.is_err() {
                        break;
                    }
                }
            }
        });
        ReadAhead {
            replies,
            nearly_read: Some(nearly_read),
            task,
            describe,
        }
    }

    /// Resolves once the reply MongoDB is reading is likely the part's last (the
    /// documents read have reached `nearly_after` of [`ReadAhead::start`]), or nothing
    /// more is read (the end, an error, or this `ReadAhead` dropped), while the last
    /// replies may still wait to be taken: when a range reader opens its next range,
    /// so that MongoDB reads on through the turn. Once only: `None` after.
    pub(crate) fn nearly_read(&mut self) -> Option<oneshot::Receiver<()>> {
        self.nearly_read.take()
    }

    /// The next reply, `None` at the end of the part.
    pub(crate) async fn next(&mut self) -> mongodb::error::Result<Option<Reply>> {
        self.replies.recv().await.transpose()
    }

    /// The range and where it resumed, for messages.
    pub(crate) fn describe(&self) -> Option<&str> {
        self.describe.as_deref()
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}
