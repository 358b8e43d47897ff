//! Admin calls: topics, configs, metadata.

use crate::connection::Client;
use crate::error::ClientError;
use kavka_proto::conv::check;
use kavka_proto::v1;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub partitions: i32,
    /// 0: the broker's default.
    pub replication_factor: i32,
    pub configs: BTreeMap<String, String>,
}

/// A described topic.
pub type TopicInfo = v1::DescribeTopicResponse;

impl Client {
    /// Creates one topic; returns its id.
    pub async fn create_topic(&mut self, t: NewTopic) -> Result<String, ClientError> {
        let resp = self
            .admin
            .create_topics(v1::CreateTopicsRequest {
                topics: vec![v1::NewTopic {
                    name: t.name,
                    partitions: t.partitions,
                    replication_factor: t.replication_factor,
                    configs: t.configs.into_iter().collect(),
                }],
                validate_only: false,
            })
            .await?
            .into_inner();
        let r = first(resp.results, "CreateTopics")?;
        check(r.error.as_ref())?;
        Ok(r.topic_id)
    }

    /// Deletes topics; one result per name.
    pub async fn delete_topics(
        &mut self,
        names: Vec<String>,
    ) -> Result<Vec<(String, Result<(), ClientError>)>, ClientError> {
        let resp = self
            .admin
            .delete_topics(v1::DeleteTopicsRequest { names })
            .await?
            .into_inner();
        Ok(resp
            .results
            .into_iter()
            .map(|r| (r.name, check(r.error.as_ref()).map_err(ClientError::from)))
            .collect())
    }

    pub async fn list_topics(&mut self) -> Result<Vec<v1::TopicSummary>, ClientError> {
        Ok(self
            .admin
            .list_topics(v1::ListTopicsRequest {
                include_internal: true,
            })
            .await?
            .into_inner()
            .topics)
    }

    pub async fn describe_topic(&mut self, name: &str) -> Result<TopicInfo, ClientError> {
        Ok(self
            .admin
            .describe_topic(v1::DescribeTopicRequest { name: name.into() })
            .await?
            .into_inner())
    }

    pub async fn alter_configs(
        &mut self,
        topic: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<Vec<v1::ConfigEntry>, ClientError> {
        Ok(self
            .admin
            .alter_configs(v1::AlterConfigsRequest {
                topic: topic.into(),
                set: set.into_iter().collect(),
                delete,
                validate_only: false,
            })
            .await?
            .into_inner()
            .configs)
    }

    pub async fn metadata(
        &mut self,
        topics: Vec<String>,
    ) -> Result<v1::MetadataResponse, ClientError> {
        Ok(self
            .admin
            .metadata(v1::MetadataRequest { topics })
            .await?
            .into_inner())
    }

    /// The number of partitions of `topic`.
    pub async fn partition_count(&mut self, topic: &str) -> Result<u32, ClientError> {
        let md = self.metadata(vec![topic.to_string()]).await?;
        let t = first(md.topics, "Metadata")?;
        check(t.error.as_ref())?;
        Ok(t.partitions.len() as u32)
    }

    /// Kafka's ListOffsets for one partition: -2 earliest, -1 latest, or a timestamp.
    pub async fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i64, i64), ClientError> {
        let resp = self
            .broker
            .list_offsets(v1::ListOffsetsRequest {
                topic: topic.into(),
                partitions: vec![v1::ListOffsetsPartition {
                    partition,
                    timestamp,
                }],
            })
            .await?
            .into_inner();
        let r = first(resp.results, "ListOffsets")?;
        check(r.error.as_ref())?;
        Ok((r.offset, r.timestamp))
    }
}

/// The one result a single-item request gets back.
fn first<T>(items: Vec<T>, api: &str) -> Result<T, ClientError> {
    items
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Invalid(format!("empty {api} response")))
}
