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
        let mut changed = vec![false; self.watches.len()];
        let mut closed = vec![false; self.watches.len()];
        {
            // A completed `changed()` marks its change seen: note it here.
            let mut waits: Vec<_> = self
                .watches
                .iter_mut()
                .enumerate()
                .filter_map(|(i, rx)| Some((i, Box::pin(rx.as_mut()?.changed()))))
                .collect();
            if waits.is_empty() {
                tokio::time::sleep_until(deadline).await;
                return None;
            }
            let any = poll_fn(|cx| {
                let mut ready = false;
                for (i, w) in &mut waits {
                    if let Poll::Ready(r) = w.as_mut().poll(cx) {
                        changed[*i] = true;
                        closed[*i] = r.is_err();
                        ready = true;
                    }
                }
                if ready {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            tokio::time::timeout_at(deadline, any).await.ok()?;
        }
        for (i, slot) in self.watches.iter_mut().enumerate() {
            if closed[i] {
                // Reported once; a closed watch would wake every wait at once.
                *slot = None;
            } else if let Some(rx) = slot
                && !changed[i]
            {
                // Changed since the futures were polled (or not at all).
                changed[i] = rx.has_changed().unwrap_or(false);
                rx.mark_unchanged();
            }
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
