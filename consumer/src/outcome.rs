//! What became of one message, and the acknowledgement that follows from it.
//!
//! | outcome    | acknowledgement                                   |
//! |------------|---------------------------------------------------|
//! | Committed  | ack (after the commit, never before)              |
//! | Duplicate  | ack: the ledger already holds the batch           |
//! | Retry      | nak with a delay growing with the delivery count  |
//! | Poison     | dead letter (table and stream), then term         |
//! | Abandoned  | nak: a stop came and the batch did not finish     |

use std::time::Duration;

use landing::reject::RejectCounts;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Committed {
        rows: u64,
        rejects: RejectCounts,
    },
    Duplicate,
    /// A transient failure: try the batch again later.
    Retry(String),
    /// The message can never land: bad bytes, an unknown format, or a batch that failed
    /// the same way on every delivery.
    Poison(String),
    /// A stop was requested and the batch did not finish within the grace period;
    /// nothing of it was committed.
    Abandoned,
}

/// Redelivery delay after `delivered` failed deliveries: 1 s, 2 s, 4 s … up to 30 s.
pub(crate) fn retry_delay(delivered: i64) -> Duration {
    let exponent = delivered.clamp(1, 6) as u32 - 1;
    Duration::from_secs((1u64 << exponent).min(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(3), Duration::from_secs(4));
        assert_eq!(retry_delay(100), Duration::from_secs(30));
    }
}
