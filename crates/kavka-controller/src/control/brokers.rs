//! Broker registration, heartbeats and fencing.
//!
//! ```text
//!  register ──► FENCED ──(heartbeat, caught up with the metadata log)──► UNFENCED
//!                 ▲                                                         │
//!                 └──────────(session expired, or stream lost)─────────────┘
//! ```
//! A broker registers with a new incarnation id on every start; that registration
//! replaces the old one, so requests carrying the old incarnation are stale.

use super::liveness::Electable;
use super::{Decision, partitions};
use kavka_metadata::{Endpoint, MetadataImage, MetadataRecord, RegisterBrokerRecord, TopicId};
use kavka_model::{BrokerId, ErrorCode, KafkaError, PartitionId};
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterBroker {
    pub broker_id: BrokerId,
    pub incarnation_id: uuid::Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
}

/// Registers (or re-registers) a broker; it starts fenced. A new process replacing a
/// live registration takes the old one's leaderships away in the same batch.
pub fn register_broker(
    image: &MetadataImage,
    req: &RegisterBroker,
    electable: &Electable,
) -> Decision<Result<(), KafkaError>> {
    if let Some(existing) = image.broker(req.broker_id)
        && existing.incarnation_id == req.incarnation_id
    {
        // The same process asking again (e.g. after a lost reply): nothing to change.
        return Decision {
            records: vec![],
            reply: Ok(()),
        };
    }
    let mut records = vec![MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: req.broker_id,
        incarnation_id: req.incarnation_id,
        endpoints: req.endpoints.clone(),
        rack: req.rack.clone(),
        fenced: true,
    })];
    if image.broker(req.broker_id).is_some_and(|b| !b.fenced) {
        records.extend(partitions::brokers_gone(
            image,
            &[req.broker_id].into_iter().collect(),
            electable,
        ));
    }
    Decision {
        records,
        reply: Ok(()),
    }
}

/// What a heartbeat asks and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub broker_id: BrokerId,
    pub incarnation_id: uuid::Uuid,
    /// The last metadata offset the broker has applied.
    pub metadata_offset: i64,
    /// The broker's replicas whose logs it cannot open now (all of them, every time).
    pub offline: BTreeSet<(TopicId, PartitionId)>,
}

/// The answer to a heartbeat: whether the broker is (now) fenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub fenced: bool,
}

/// A heartbeat from a registered broker; unfences it once it has caught up with the
/// metadata log up to `image.offset` (so it knows every partition it must host). An
/// unfenced broker's offline replicas leave their ISRs and leaderships
/// (`partitions::replicas_offline`); none of them is elected when it is unfenced.
pub fn heartbeat(
    image: &MetadataImage,
    hb: &Heartbeat,
    electable: &Electable,
) -> Decision<Result<HeartbeatReply, KafkaError>> {
    let Some(b) = image.broker(hb.broker_id) else {
        return Decision {
            records: vec![],
            reply: Err(KafkaError::new(
                ErrorCode::BrokerIdNotRegistered,
                format!("broker {} is not registered", hb.broker_id),
            )),
        };
    };
    if b.incarnation_id != hb.incarnation_id {
        return Decision {
            records: vec![],
            reply: Err(KafkaError::new(
                ErrorCode::StaleBrokerEpoch,
                format!(
                    "broker {} heartbeat names incarnation {}, the registered one is {}",
                    hb.broker_id, hb.incarnation_id, b.incarnation_id
                ),
            )),
        };
    }
    let electable = electable
        .clone()
        .with_offline_replicas(hb.offline.iter().map(|&(t, p)| (b.broker_id, t, p)));
    if b.fenced && hb.metadata_offset >= image.offset {
        let mut records = vec![MetadataRecord::UnfenceBroker {
            broker_id: b.broker_id,
            incarnation_id: b.incarnation_id,
        }];
        records.extend(partitions::broker_returns(image, b.broker_id, &electable));
        return Decision {
            records,
            reply: Ok(HeartbeatReply { fenced: false }),
        };
    }
    let records = if b.fenced {
        vec![]
    } else {
        partitions::replicas_offline(image, b.broker_id, &hb.offline, &electable)
    };
    Decision {
        records,
        reply: Ok(HeartbeatReply { fenced: b.fenced }),
    }
}

/// Fences the given unfenced brokers (their sessions expired or their streams dropped)
/// and, in the same batch, elects new leaders for what they led and shrinks the ISRs.
pub fn fence_brokers(
    image: &MetadataImage,
    expired: &[BrokerId],
    electable: &Electable,
) -> Decision<Vec<BrokerId>> {
    let mut records = Vec::new();
    let mut fenced = Vec::new();
    for id in expired {
        if let Some(b) = image.broker(*id).filter(|b| !b.fenced) {
            records.push(MetadataRecord::FenceBroker {
                broker_id: b.broker_id,
                incarnation_id: b.incarnation_id,
            });
            fenced.push(b.broker_id);
        }
    }
    records.extend(partitions::brokers_gone(
        image,
        &fenced.iter().copied().collect(),
        electable,
    ));
    Decision {
        records,
        reply: fenced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: i32, inc: u128) -> RegisterBroker {
        RegisterBroker {
            broker_id: BrokerId(id),
            incarnation_id: uuid::Uuid::from_u128(inc),
            endpoints: vec![],
            rack: None,
        }
    }

    fn any() -> Electable {
        Electable::new((1..=9).map(BrokerId), (1..=9).map(BrokerId))
    }

    fn apply<R>(img: &MetadataImage, d: &Decision<R>) -> MetadataImage {
        let (next, _, refused) = img.replay(img.offset + 1, &d.records);
        assert!(refused.is_empty(), "{refused:?}");
        next
    }

    #[test]
    fn lifecycle_register_unfence_fence_reregister() {
        let img = MetadataImage::empty();
        let d = register_broker(&img, &reg(1, 10), &any());
        let img = apply(&img, &d);
        assert!(img.broker(BrokerId(1)).unwrap().fenced);
        // Registering again with the same incarnation changes nothing.
        assert!(
            register_broker(&img, &reg(1, 10), &any())
                .records
                .is_empty()
        );

        let hb = |offset, inc| Heartbeat {
            broker_id: BrokerId(1),
            incarnation_id: uuid::Uuid::from_u128(inc),
            metadata_offset: offset,
            offline: BTreeSet::new(),
        };
        // Behind the metadata log: stays fenced.
        let d = heartbeat(&img, &hb(img.offset - 1, 10), &any());
        assert_eq!(d.reply.clone().unwrap(), HeartbeatReply { fenced: true });
        assert!(d.records.is_empty());
        // Caught up: unfenced.
        let d = heartbeat(&img, &hb(img.offset, 10), &any());
        assert_eq!(d.reply.clone().unwrap(), HeartbeatReply { fenced: false });
        let img = apply(&img, &d);
        assert!(!img.broker(BrokerId(1)).unwrap().fenced);

        // Session expiry fences it; fencing twice writes nothing more.
        let d = fence_brokers(&img, &[BrokerId(1), BrokerId(9)], &any());
        assert_eq!(d.reply, vec![BrokerId(1)]);
        let img = apply(&img, &d);
        assert!(
            fence_brokers(&img, &[BrokerId(1)], &any())
                .records
                .is_empty()
        );

        // A restart registers a new incarnation; the old one's heartbeats are stale.
        let img = apply(&img, &register_broker(&img, &reg(1, 11), &any()));
        assert_eq!(
            heartbeat(&img, &hb(img.offset, 10), &any())
                .reply
                .unwrap_err()
                .code,
            ErrorCode::StaleBrokerEpoch
        );
        assert_eq!(
            heartbeat(
                &img,
                &Heartbeat {
                    broker_id: BrokerId(5),
                    incarnation_id: uuid::Uuid::nil(),
                    metadata_offset: 0,
                    offline: BTreeSet::new(),
                },
                &any()
            )
            .reply
            .unwrap_err()
            .code,
            ErrorCode::BrokerIdNotRegistered
        );
    }
}
