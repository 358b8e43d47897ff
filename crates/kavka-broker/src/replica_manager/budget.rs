//! The byte budget of one fetch response (Kafka's `fetch.max.bytes` for consumers,
//! `replica.fetch.response.max.bytes` for followers), shared by its partitions in
//! request order.
//!
//! Invariant: the records in one response add up to at most the budget, except that
//! the first partition with records may bring one batch that alone exceeds it (Kafka's
//! "at least one batch", so a reader always moves on). A later partition whose read does
//! not fit what is left is answered without records; Kafka sends a partial batch there,
//! which clients drop just the same, and the partition comes first in a later fetch
//! (clients rotate their partitions).

use kavka_model::StoredRecords;

/// What is left of one response's byte budget.
#[derive(Debug)]
pub(super) struct ResponseBudget {
    left_bytes: usize,
    /// Some partition already brought records: no more exceptions to the budget.
    any_records: bool,
}

impl ResponseBudget {
    pub(super) fn new(max_bytes: usize) -> Self {
        Self {
            left_bytes: max_bytes,
            any_records: false,
        }
    }

    /// The most the next partition should read (its reader still returns one whole
    /// batch when the first batch is larger).
    pub(super) fn left_bytes(&self) -> usize {
        self.left_bytes
    }

    /// Takes one partition's read into the response: `records` as read, or nothing when
    /// they would overrun the budget after another partition already brought records.
    pub(super) fn take(&mut self, records: StoredRecords) -> StoredRecords {
        let len = records.len();
        if self.any_records && len > self.left_bytes {
            return StoredRecords::default();
        }
        self.any_records |= len > 0;
        self.left_bytes = self.left_bytes.saturating_sub(len);
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_partition_with_records_may_exceed_the_budget() {
        // (budget, reads in order) -> bytes kept per partition
        let cases: &[(usize, &[usize], &[usize])] = &[
            (100, &[40, 40, 40], &[40, 40, 0]),
            (100, &[150, 10], &[150, 0]),
            (100, &[0, 150, 10], &[0, 150, 0]),
            (100, &[0, 0], &[0, 0]),
            (100, &[100, 1], &[100, 0]),
            (100, &[60, 50, 40], &[60, 0, 40]),
            (0, &[5, 5], &[5, 0]),
        ];
        for &(max, reads, want) in cases {
            let mut b = ResponseBudget::new(max);
            let got: Vec<usize> = reads
                .iter()
                .map(|&n| b.take(vec![0; n].into()).len())
                .collect();
            assert_eq!(got, want, "budget {max}, reads {reads:?}");
            let first = got.iter().copied().find(|&n| n > 0).unwrap_or(0);
            let total: usize = got.iter().sum();
            assert!(total <= max.max(first), "{total} over {max}");
        }
    }

    #[test]
    fn left_bytes_counts_down_to_zero() {
        let mut b = ResponseBudget::new(10);
        b.take(vec![0; 4].into());
        assert_eq!(b.left_bytes(), 6);
        b.take(vec![0; 6].into());
        assert_eq!(b.left_bytes(), 0);
    }
}
