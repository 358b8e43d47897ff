//! A consumer group's lag per partition, as Kafka's kafka-consumer-groups computes it:
//! the partition's log end offset (the high watermark, ListOffsets latest) minus the
//! group's committed offset, never below zero. `kavka group describe` and the web
//! console both show these rows, so they show the same numbers.
//!
//! Invariants: one row per partition the group has an offset for or a member is
//! assigned, sorted by topic and partition; a row's lag is known only when both the
//! committed offset and the log end are. Must not depend on anything but the client.

use crate::{Client, ClientError};
use kavka_proto::v1;
use std::collections::BTreeMap;

/// One partition of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LagRow {
    pub topic: String,
    pub partition: i32,
    /// None: the group has committed nothing for this partition.
    pub committed: Option<i64>,
    /// None: the log end could not be read (no leader, say).
    pub log_end: Option<i64>,
    /// Index into the description's members: who is assigned this partition.
    pub member: Option<usize>,
}

impl LagRow {
    pub fn lag(&self) -> Option<i64> {
        lag(self.committed, self.log_end)
    }
}

/// Lag from a committed offset and a log end offset.
pub fn lag(committed: Option<i64>, log_end: Option<i64>) -> Option<i64> {
    match (committed, log_end) {
        (Some(c), Some(e)) if c >= 0 => Some((e - c).max(0)),
        _ => None,
    }
}

/// A group's description and its rows.
#[derive(Clone, Debug)]
pub struct GroupLag {
    pub description: v1::DescribeGroupResponse,
    pub rows: Vec<LagRow>,
}

impl GroupLag {
    /// True when the group is unknown to its coordinator.
    pub fn is_unknown(&self) -> bool {
        self.description.state == "Dead" && self.description.offsets.is_empty()
    }
}

/// The rows of a description, without log ends.
fn rows_of(d: &v1::DescribeGroupResponse) -> BTreeMap<(String, i32), LagRow> {
    let mut rows: BTreeMap<(String, i32), LagRow> = BTreeMap::new();
    for o in &d.offsets {
        rows.insert(
            (o.topic.clone(), o.partition),
            LagRow {
                topic: o.topic.clone(),
                partition: o.partition,
                committed: (o.offset >= 0).then_some(o.offset),
                log_end: None,
                member: None,
            },
        );
    }
    for (i, m) in d.members.iter().enumerate() {
        for a in &m.assignment {
            for &p in &a.partitions {
                rows.entry((a.topic.clone(), p))
                    .or_insert_with(|| LagRow {
                        topic: a.topic.clone(),
                        partition: p,
                        committed: None,
                        log_end: None,
                        member: None,
                    })
                    .member = Some(i);
            }
        }
    }
    rows
}

impl Client {
    /// Describes `group_id` (on its coordinator) and reads each of its partitions' log
    /// end offset (from the partition's leader).
    pub async fn group_lag(&mut self, group_id: &str) -> Result<GroupLag, ClientError> {
        let description = self.describe_group(group_id).await?;
        let mut rows = rows_of(&description);
        for r in rows.values_mut() {
            r.log_end = self
                .list_offset(&r.topic, r.partition, -1)
                .await
                .ok()
                .map(|(o, _)| o);
        }
        Ok(GroupLag {
            description,
            rows: rows.into_values().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_log_end_minus_the_committed_offset() {
        // (committed, log end) -> lag
        let table = [
            ((Some(3), Some(10)), Some(7)),
            ((Some(10), Some(10)), Some(0)),
            ((Some(12), Some(10)), Some(0)),
            ((None, Some(10)), None),
            ((Some(3), None), None),
            ((Some(-1), Some(10)), None),
        ];
        for ((c, e), want) in table {
            assert_eq!(lag(c, e), want, "{c:?} {e:?}");
        }
    }

    #[test]
    fn rows_cover_committed_and_assigned_partitions() {
        let d = v1::DescribeGroupResponse {
            offsets: vec![v1::CommittedOffset {
                topic: "t".into(),
                partition: 1,
                offset: 5,
                ..Default::default()
            }],
            members: vec![v1::GroupMember {
                assignment: vec![v1::AssignedPartitions {
                    topic: "t".into(),
                    partitions: vec![0, 1],
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let rows: Vec<_> = rows_of(&d).into_values().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].partition, rows[0].committed, rows[0].member),
            (0, None, Some(0))
        );
        assert_eq!(
            (rows[1].partition, rows[1].committed, rows[1].member),
            (1, Some(5), Some(0))
        );
    }
}
