//! The wake-ups of one long-poll fetch (Kafka's delayed-fetch purgatory, keyed by
//! partition): one watch per partition it asked for, so it wakes only for changes on
//! those, and learns which ones changed so it reads only those again.
//!
//! Invariant: no wake-up is lost. Each watch is subscribed before the fetch's first read
//! and marked seen before each read again, so a change that lands between a read and the
//! wait makes the wait return at once.
//!
//! Must not depend on: partitions or the log (it sees watches only).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use tokio::sync::watch;

/// The watches of one long-poll's partitions, in request order (`None`: a partition that
/// is not hosted here; it has nothing to wait for).
#[derive(Debug)]
pub(super) struct Wakeups {
    watches: Vec<Option<watch::Receiver<u64>>>,
}

impl Wakeups {
    /// Call before the first read.
    pub(super) fn new(watches: impl IntoIterator<Item = Option<watch::Receiver<u64>>>) -> Self {
        Self {
            watches: watches.into_iter().collect(),
        }
    }

    /// Waits until some partition changed, or `deadline`. Answers which changed (marked
    /// seen, so read them again now), or `None` at the deadline. A partition whose
    /// sender is gone (no longer hosted) counts as changed: reading it again answers why.
    pub(super) async fn wait_until(&mut self, deadline: tokio::time::Instant) -> Option<Vec<bool>> {
        {
            let mut waits: Vec<_> = self
                .watches
                .iter_mut()
                .flatten()
                .map(|rx| Box::pin(rx.changed()))
                .collect();
            if waits.is_empty() {
                tokio::time::sleep_until(deadline).await;
                return None;
            }
            let any = poll_fn(|cx| {
                for w in &mut waits {
                    if Pin::new(w).poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending
            });
            tokio::time::timeout_at(deadline, any).await.ok()?;
        }
        let mut changed = Vec::with_capacity(self.watches.len());
        for slot in &mut self.watches {
            changed.push(match slot {
                Some(rx) => match rx.has_changed() {
                    Ok(c) => {
                        rx.mark_unchanged();
                        c
                    }
                    Err(_) => {
                        // Reported once; a closed watch would wake every wait at once.
                        *slot = None;
                        true
                    }
                },
                None => false,
            });
        }
        Some(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn far() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn wakes_for_the_partitions_that_changed_only() {
        let (a, b, c) = (
            watch::channel(0u64).0,
            watch::channel(0u64).0,
            watch::channel(0u64).0,
        );
        let mut w = Wakeups::new([Some(a.subscribe()), None, Some(b.subscribe())]);
        c.send_modify(|n| *n += 1);
        b.send_modify(|n| *n += 1);
        assert_eq!(w.wait_until(far()).await, Some(vec![false, false, true]));
        // Seen: the next wait waits for a new change.
        a.send_modify(|n| *n += 1);
        assert_eq!(w.wait_until(far()).await, Some(vec![true, false, false]));
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_not_lost() {
        // Subscribed before the "read", changed between the read and the wait.
        let a = watch::channel(0u64).0;
        let mut w = Wakeups::new([Some(a.subscribe())]);
        a.send_modify(|n| *n += 1);
        assert_eq!(w.wait_until(far()).await, Some(vec![true]));
    }

    #[tokio::test]
    async fn times_out_without_changes() {
        let a = watch::channel(0u64).0;
        let mut w = Wakeups::new([Some(a.subscribe()), None]);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        assert_eq!(w.wait_until(deadline).await, None);
        let mut none = Wakeups::new([None]);
        assert_eq!(none.wait_until(deadline).await, None);
    }

    #[tokio::test]
    async fn a_dropped_partition_counts_as_changed() {
        let a = watch::channel(0u64).0;
        let mut w = Wakeups::new([Some(a.subscribe())]);
        drop(a);
        assert_eq!(w.wait_until(far()).await, Some(vec![true]));
        let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
        assert_eq!(w.wait_until(deadline).await, None, "reported once");
    }
}
