//! The leader lease: a broker leads (takes produce, serves fetches as leader) only while
//! a heartbeat it sent less than `broker.session.timeout.ms` ago has been answered by the
//! active controller, and it is unfenced.
//!
//! Why: the controller fences a broker once it has not *received* a heartbeat for the
//! session timeout, and only then elects other leaders for its partitions. A heartbeat is
//! received after it was sent, so as long as the answered heartbeat was sent less than a
//! session timeout ago (by this broker's monotonic clock, which keeps running through a
//! SIGSTOP or a VM stall), no other broker can have been elected in its place by fencing.
//! A broker that finds the lease lapsed (it was paused, or cut off from the controllers)
//! refuses with NOT_LEADER_OR_FOLLOWER — which clients retry with the same sequence —
//! until a heartbeat sent *after* the lapse is answered, says it is unfenced, and its
//! metadata image has reached the controller's offset of that answer, so it acts on no
//! stale leadership.
//!
//! ```text
//!  (start) ── NEVER HELD ──answer(unfenced)──► HELD ──no answered send within timeout──► LAPSED
//!                                              ▲  ▲                                        │
//!                                              │  └──── image reaches required offset ◄── answer to a send after the lapse
//!                                              └──── answer(unfenced) ◄── FENCED ◄── answer(fenced)
//! ```
//!
//! Pure decisions (`LeaseState::verdict`, `LeaseState::answered`) take the time as an
//! argument; [`LeaderLease`] adds only the lock and the clock. Depends on nothing but
//! `kavka-model`'s error type.

use kavka_model::{BrokerId, ErrorCode, KafkaError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the broker knows of its session, as far as leading is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// When the last answered heartbeat was sent (`None`: none answered yet).
    pub confirmed_sent_at: Option<Instant>,
    /// Whether the last answer said this broker is fenced.
    pub fenced: bool,
    /// The metadata offset the image must reach before leading again (set from the first
    /// answer after a lapse: the controller's committed offset then).
    pub image_offset_required: i64,
}

impl Default for LeaseState {
    fn default() -> Self {
        Self {
            confirmed_sent_at: None,
            fenced: true,
            image_offset_required: -1,
        }
    }
}

/// Why this broker may not lead right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseRefusal {
    /// No heartbeat was ever answered (still registering).
    NeverConfirmed,
    /// The last answered heartbeat was sent this long ago: at least the session timeout.
    Lapsed {
        silent: Duration,
    },
    Fenced,
    /// Confirmed again, but the image has not yet caught up with the controller.
    CatchingUp {
        image_offset: i64,
        required: i64,
    },
}

impl LeaseState {
    /// Whether a broker in this state may act as leader at `now` with its image at
    /// `image_offset`.
    pub fn verdict(
        &self,
        now: Instant,
        session_timeout: Duration,
        image_offset: i64,
    ) -> Result<(), LeaseRefusal> {
        let Some(sent) = self.confirmed_sent_at else {
            return Err(LeaseRefusal::NeverConfirmed);
        };
        let silent = now.saturating_duration_since(sent);
        if silent >= session_timeout {
            return Err(LeaseRefusal::Lapsed { silent });
        }
        if self.fenced {
            return Err(LeaseRefusal::Fenced);
        }
        if image_offset < self.image_offset_required {
            return Err(LeaseRefusal::CatchingUp {
                image_offset,
                required: self.image_offset_required,
            });
        }
        Ok(())
    }

    /// The state after the controller answered (without error) a heartbeat sent at
    /// `sent_at`, received at `now`, reporting `fenced` and its committed metadata
    /// offset `controller_offset`.
    pub fn answered(
        self,
        sent_at: Instant,
        now: Instant,
        session_timeout: Duration,
        fenced: bool,
        controller_offset: i64,
    ) -> LeaseState {
        let lapsed = self
            .confirmed_sent_at
            .is_none_or(|s| now.saturating_duration_since(s) >= session_timeout);
        // An answer to a heartbeat sent before the lapse proves nothing about the time
        // since: only a later send renews the lease (answers come in send order).
        let confirmed_sent_at = match self.confirmed_sent_at {
            Some(s) if s >= sent_at => Some(s),
            _ => Some(sent_at),
        };
        let renewed = now.saturating_duration_since(sent_at) < session_timeout;
        let image_offset_required = if lapsed && renewed {
            // First fresh answer after a lapse: lead only on an image this current.
            self.image_offset_required.max(controller_offset)
        } else {
            self.image_offset_required
        };
        LeaseState {
            confirmed_sent_at,
            fenced,
            image_offset_required,
        }
    }
}

/// The lease shared by the session (which renews it) and the request paths (which check
/// it before acting as leader).
#[derive(Debug)]
pub struct LeaderLease {
    me: BrokerId,
    session_timeout: Duration,
    state: Mutex<LeaseState>,
}

impl LeaderLease {
    pub fn new(me: BrokerId, session_timeout: Duration) -> Self {
        Self {
            me,
            session_timeout,
            state: Mutex::new(LeaseState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A heartbeat sent at `sent_at` was answered.
    pub fn answered(&self, sent_at: Instant, fenced: bool, controller_offset: i64) {
        let mut st = self.state();
        let before = *st;
        *st = before.answered(
            sent_at,
            Instant::now(),
            self.session_timeout,
            fenced,
            controller_offset,
        );
        if st.image_offset_required > before.image_offset_required
            && before.confirmed_sent_at.is_some()
        {
            tracing::info!(
                required = st.image_offset_required,
                "heartbeat answered again after the leader lease lapsed: leading once the metadata image reaches the controller's offset"
            );
        }
    }

    pub fn is_fenced(&self) -> bool {
        self.state().fenced
    }

    /// Ok when this broker may act as leader with its image at `image_offset`; else
    /// NOT_LEADER_OR_FOLLOWER saying why.
    pub fn check(&self, image_offset: i64) -> Result<(), KafkaError> {
        let st = *self.state();
        st.verdict(Instant::now(), self.session_timeout, image_offset)
            .map_err(|why| self.refusal(why))
    }

    fn refusal(&self, why: LeaseRefusal) -> KafkaError {
        let me = self.me;
        let message = match why {
            LeaseRefusal::NeverConfirmed => {
                format!("broker {me} has no session with the active controller yet")
            }
            LeaseRefusal::Lapsed { silent } => format!(
                "broker {me} has had no heartbeat answered by the active controller for {} ms (session timeout {} ms): not acting as leader until one is",
                silent.as_millis(),
                self.session_timeout.as_millis()
            ),
            LeaseRefusal::Fenced => format!("broker {me} is fenced by the active controller"),
            LeaseRefusal::CatchingUp {
                image_offset,
                required,
            } => format!(
                "broker {me} is catching up with the metadata log (at {image_offset}, needs {required}) after a lapsed session"
            ),
        };
        KafkaError::new(ErrorCode::NotLeaderOrFollower, message)
    }

    /// Test seam: a lease confirmed now, unfenced (for replica-manager tests without a
    /// controller).
    #[cfg(test)]
    pub(crate) fn confirm_for_tests(&self) {
        self.answered(Instant::now(), false, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(2500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn verdicts() {
        let t0 = Instant::now();
        let held = LeaseState {
            confirmed_sent_at: Some(t0),
            fenced: false,
            image_offset_required: 10,
        };
        // (case, state, now, image offset) -> verdict
        type Case = (
            &'static str,
            LeaseState,
            Instant,
            i64,
            Result<(), LeaseRefusal>,
        );
        let cases: Vec<Case> = vec![
            (
                "never answered",
                LeaseState::default(),
                t0,
                100,
                Err(LeaseRefusal::NeverConfirmed),
            ),
            ("fresh and current", held, t0 + ms(100), 10, Ok(())),
            ("just inside the timeout", held, t0 + ms(2499), 10, Ok(())),
            (
                "a pause past the session timeout",
                held,
                t0 + ms(4000),
                10,
                Err(LeaseRefusal::Lapsed { silent: ms(4000) }),
            ),
            (
                "fenced",
                LeaseState {
                    fenced: true,
                    ..held
                },
                t0 + ms(100),
                10,
                Err(LeaseRefusal::Fenced),
            ),
            (
                "image behind what the answer after a lapse required",
                held,
                t0 + ms(100),
                9,
                Err(LeaseRefusal::CatchingUp {
                    image_offset: 9,
                    required: 10,
                }),
            ),
        ];
        for (name, st, now, image, want) in cases {
            assert_eq!(st.verdict(now, TIMEOUT, image), want, "{name}");
        }
    }

    #[test]
    fn renewal_after_a_pause_needs_a_heartbeat_sent_after_it() {
        let t0 = Instant::now();
        let st = LeaseState::default().answered(t0, t0 + ms(5), TIMEOUT, false, 7);
        assert_eq!(st.verdict(t0 + ms(10), TIMEOUT, 7), Ok(()));
        assert_eq!(
            st.image_offset_required, 7,
            "the first answer needs a current image"
        );

        // Steady state: answers do not raise the required offset (no refusals while
        // the image trails the controller by a few records).
        let steady = st.answered(t0 + ms(250), t0 + ms(260), TIMEOUT, false, 20);
        assert_eq!(steady.image_offset_required, 7);
        assert_eq!(steady.verdict(t0 + ms(300), TIMEOUT, 15), Ok(()));

        // Frozen for 5 s: the answer to a heartbeat sent before the freeze arrives
        // after it and renews nothing.
        let thawed = t0 + ms(5300);
        let old = steady.answered(t0 + ms(500), thawed, TIMEOUT, false, 30);
        assert!(matches!(
            old.verdict(thawed, TIMEOUT, 30),
            Err(LeaseRefusal::Lapsed { .. })
        ));
        // A heartbeat sent after the thaw is answered: leading again once the image
        // reaches the controller's offset of that answer.
        let fresh = old.answered(thawed + ms(1), thawed + ms(5), TIMEOUT, false, 42);
        assert_eq!(fresh.image_offset_required, 42);
        assert!(matches!(
            fresh.verdict(thawed + ms(6), TIMEOUT, 30),
            Err(LeaseRefusal::CatchingUp { .. })
        ));
        assert_eq!(fresh.verdict(thawed + ms(6), TIMEOUT, 42), Ok(()));
        // ...and unfenced: a broker fenced meanwhile stays refused.
        let fenced = old.answered(thawed + ms(1), thawed + ms(5), TIMEOUT, true, 42);
        assert_eq!(
            fenced.verdict(thawed + ms(6), TIMEOUT, 42),
            Err(LeaseRefusal::Fenced)
        );
    }

    #[test]
    fn refusals_are_not_leader_or_follower_naming_the_cause() {
        let lease = LeaderLease::new(BrokerId(2), TIMEOUT);
        let e = lease.check(0).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotLeaderOrFollower);
        assert!(e.message.contains("broker 2"), "{e}");
        lease.confirm_for_tests();
        assert!(lease.check(0).is_ok());
        assert!(!lease.is_fenced());
    }
}
