//! The admin writes a broker forwards to the controller quorum, in model types: each
//! builds the controller's request, calls whichever controller answers (any forwards to
//! the active one) and reads the answer back into model types. Waiting for the result to
//! reach this broker's image is the broker API's (`api::admin`), not this module's.

use super::Controllers;
use kavka_model::acl::{AclBinding, AclFilter};
use kavka_model::admin::{
    AlterConfigs, BalancePlan, ElectionType, NewPartitions, NewTopic, PartitionMove,
    PartitionOutcome, PartitionRef, TopicOutcome,
};
use kavka_model::quota::{AlterationOutcome, QuotaAlteration};
use kavka_model::scram::{ScramCredential, ScramMechanism, UserOutcome};
use kavka_model::{BrokerId, ErrorCode, KafkaError};
use kavka_proto::conv::scram_credential_record;
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

    /// ElectLeaders: one outcome per partition the controller looked at.
    pub async fn elect_leaders(
        &self,
        partitions: &[PartitionRef],
        kind: ElectionType,
    ) -> Result<Vec<PartitionOutcome>, KafkaError> {
        let req = v1::ElectLeadersRequest {
            partitions: partitions
                .iter()
                .map(v1::ElectLeadersPartition::from)
                .collect(),
            election_type: v1::ElectionType::from(kind).into(),
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
            .map(PartitionOutcome::from)
            .collect())
    }

    /// Decommissions `broker` (`on`) or takes it back into service.
    pub async fn decommission(&self, broker: BrokerId, on: bool) -> Result<(), KafkaError> {
        let req = v1::DecommissionBrokerRequest {
            broker_id: broker.0,
            recommission: !on,
        };
        let resp = self
            .call(|mut c| async move { c.decommission_broker(req).await.map(|r| r.into_inner()) })
            .await?;
        kavka_proto::conv::check(resp.error.as_ref())
    }

    /// The balancer's plan; with `execute` the active controller carries it out.
    pub async fn balance(&self, execute: bool) -> Result<BalancePlan, KafkaError> {
        let req = v1::BalanceClusterRequest { execute };
        let resp = self
            .call(|mut c| async move { c.balance_cluster(req).await.map(|r| r.into_inner()) })
            .await?;
        Ok(BalancePlan::from(resp))
    }

    /// AlterPartitionReassignments: one outcome per move, in order.
    pub async fn alter_reassignments(
        &self,
        moves: &[PartitionMove],
    ) -> Result<Vec<PartitionOutcome>, KafkaError> {
        let req = v1::AlterPartitionReassignmentsRequest {
            moves: moves.iter().map(v1::PartitionMove::from).collect(),
        };
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move {
                    c.alter_partition_reassignments(req)
                        .await
                        .map(|r| r.into_inner())
                }
            })
            .await?;
        Ok(resp
            .results
            .into_iter()
            .map(PartitionOutcome::from)
            .collect())
    }

    /// CreateAcls: one result per ACL, in order.
    pub async fn create_acls(
        &self,
        acls: &[AclBinding],
    ) -> Result<Vec<Result<(), KafkaError>>, KafkaError> {
        let req = v1::CreateAclsRequest {
            acls: acls.iter().map(v1::Acl::from).collect(),
        };
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.create_acls(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        one_each(acls.len(), resp.results, |r| match r.error {
            Some(e) => Ok(Err(KafkaError::from(&e))),
            None => Ok(Ok(())),
        })
    }

    /// DeleteAcls: per filter, in order, the ACLs it deleted.
    pub async fn delete_acls(
        &self,
        filters: &[AclFilter],
    ) -> Result<Vec<Result<Vec<AclBinding>, KafkaError>>, KafkaError> {
        let req = v1::DeleteAclsRequest {
            filters: filters.iter().map(v1::AclFilter::from).collect(),
        };
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.delete_acls(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        one_each(filters.len(), resp.results, |r| match r.error {
            Some(e) => Ok(Err(KafkaError::from(&e))),
            None => r
                .deleted
                .into_iter()
                .map(AclBinding::try_from)
                .collect::<Result<Vec<_>, _>>()
                .map(Ok)
                .map_err(|e| bad_answer(&format!("a deleted ACL's {e}"))),
        })
    }
}

impl Controllers {
    /// AlterClientQuotas: one outcome per entry, in order.
    pub async fn alter_client_quotas(
        &self,
        entries: &[QuotaAlteration],
        validate_only: bool,
    ) -> Result<Vec<AlterationOutcome>, KafkaError> {
        let req = kavka_proto::conv::alter_client_quotas_request(entries, validate_only);
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move { c.alter_client_quotas(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        let mut results: Vec<AlterationOutcome> = resp
            .results
            .iter()
            .map(|r| kavka_proto::conv::check(r.error.as_ref()))
            .collect();
        // One outcome per entry, whatever the controller answered.
        results.resize_with(entries.len(), || {
            Err(KafkaError::new(
                ErrorCode::UnknownServerError,
                "the controller gave no result for this entry",
            ))
        });
        Ok(results)
    }

    /// AlterUserScramCredentials: one result per user, in the order first named.
    pub async fn alter_user_scram_credentials(
        &self,
        upsertions: &[(String, ScramCredential)],
        deletions: &[(String, ScramMechanism)],
    ) -> Result<Vec<UserOutcome>, KafkaError> {
        let req = v1::AlterUserScramCredentialsRequest {
            upsertions: upsertions
                .iter()
                .map(|(u, c)| scram_credential_record(u, c))
                .collect(),
            deletions: deletions
                .iter()
                .map(|(u, m)| v1::RemoveUserScramCredentialRecord {
                    name: u.clone(),
                    mechanism: i32::from(m.code()),
                })
                .collect(),
        };
        let resp = self
            .call(|mut c| {
                let req = req.clone();
                async move {
                    c.alter_user_scram_credentials(req)
                        .await
                        .map(|r| r.into_inner())
                }
            })
            .await?;
        Ok(resp
            .results
            .into_iter()
            .map(|r| {
                let outcome = match r.error {
                    Some(e) if e.code != 0 => Err(KafkaError::from(&e)),
                    _ => Ok(()),
                };
                (r.user, outcome)
            })
            .collect())
    }
}

/// The controller's answer, one per item asked, converted; a count that does not match
/// is an error, not a guess.
fn one_each<W, T>(
    asked: usize,
    answers: Vec<W>,
    convert: impl Fn(W) -> Result<T, KafkaError>,
) -> Result<Vec<T>, KafkaError> {
    if answers.len() != asked {
        return Err(bad_answer(&format!(
            "{} results for {asked} items",
            answers.len()
        )));
    }
    answers.into_iter().map(convert).collect()
}

fn bad_answer(what: &str) -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownServerError,
        format!("the controller's answer does not fit the request: {what}"),
    )
}
