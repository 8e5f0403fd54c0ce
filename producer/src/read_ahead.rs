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
use tokio::sync::mpsc;
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
    /// Owned here: dropping the `ReadAhead` (the part failed or was stopped) ends it,
    /// and its cursor with it.
    task: JoinHandle<()>,
    describe: Option<String>,
}

impl ReadAhead {
    /// Starts reading. The task ends at the end of the part, at its first error (sent
    /// on as the last item), or when the `ReadAhead` is dropped.
    pub(crate) fn start(mut reader: Reader) -> Self {
        let describe = reader.describe();
        // One reply waiting while the task reads the next: two replies ahead at most.
        let (send, replies) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            while let Some(item) = reader.next_reply().await.transpose() {
                let failed = item.is_err();
                if send.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        ReadAhead {
            replies,
            task,
            describe,
        }
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
