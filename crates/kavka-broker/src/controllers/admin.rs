//! The admin writes a broker forwards to the controller quorum, in model types: each
//! builds the controller's request, calls whichever controller answers (any forwards to
//! the active one) and reads the answer back into model types. Waiting for the result to
//! reach this broker's image is the broker API's (`api::admin`), not this module's.

use super::Controllers;
use kavka_model::KafkaError;
use kavka_model::admin::{
    AlterConfigs, ElectionOutcome, NewPartitions, NewTopic, PartitionRef, TopicOutcome,
};
use kavka_proto::v1;
use std::collections::BTreeMap;

impl Controllers {
    /// CreateTopics: one outcome per topic, in order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<TopicOutcome>, KafkaError> {
        let req = v1::CreateTopicsRequest {
            topics: topics.iter().map(v1::NewTopic::from).collect(),
            validate_only,
        };
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.create_topics(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(resp.results.into_iter().map(TopicOutcome::from).collect())
    }

    /// DeleteTopics: one outcome per name, in order.
    pub async fn delete_topics(&self, names: &[String]) -> Result<Vec<TopicOutcome>, KafkaError> {
        let req = v1::DeleteTopicsRequest {
            names: names.to_vec(),
        };
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.delete_topics(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(resp.results.into_iter().map(TopicOutcome::from).collect())
    }

    /// CreatePartitions: one outcome per topic, in order.
    pub async fn create_partitions(
        &self,
        topics: &[NewPartitions],
        validate_only: bool,
    ) -> Result<Vec<TopicOutcome>, KafkaError> {
        let req = v1::CreatePartitionsRequest {
            topics: topics.iter().map(v1::CreatePartitionsTopic::from).collect(),
            validate_only,
        };
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.create_partitions(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(resp.results.into_iter().map(TopicOutcome::from).collect())
    }

    /// AlterConfigs of one resource: the dynamic configs the controller now stores for it
    /// (raw values).
    pub async fn alter_configs(
        &self,
        req: &AlterConfigs,
    ) -> Result<BTreeMap<String, String>, KafkaError> {
        let wire = v1::AlterConfigsRequest::from(req);
        let resp = self
            .call(|mut c| {
                let wire = wire.clone();
                async move { c.alter_configs(wire).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(resp
            .configs
            .into_iter()
            .map(|c| (c.name, c.value))
            .collect())
    }

    /// ElectLeaders (preferred): one outcome per partition the controller looked at.
    pub async fn elect_leaders(
        &self,
        partitions: &[PartitionRef],
    ) -> Result<Vec<ElectionOutcome>, KafkaError> {
        let req = v1::ElectLeadersRequest {
            partitions: partitions
                .iter()
                .map(v1::ElectLeadersPartition::from)
                .collect(),
        };
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.elect_leaders(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(resp
            .results
            .into_iter()
            .map(ElectionOutcome::from)
            .collect())
    }
}
