//! ACLs (Kafka's CreateAcls and DeleteAcls): checked and turned into ACL records.
//!
//! Invariants: creating an ACL that exists writes nothing and succeeds (as Kafka's
//! AclControlManager); an ACL asked twice in one request is written once; a deletion
//! removes each matched ACL once, however many filters match it, and reports it under
//! every filter that matched (as Kafka does).

use super::Decision;
use kavka_metadata::{MetadataImage, MetadataRecord};
use kavka_model::acl::{AclBinding, AclFilter};
use kavka_model::{ErrorCode, KafkaError};
use std::collections::BTreeSet;

/// The most ACLs one request may create (a bound on one metadata batch).
pub const MAX_ACLS_PER_REQUEST: usize = 10_000;

/// Creates `acls`; one result per ACL, in order.
pub fn create_acls(
    image: &MetadataImage,
    acls: &[AclBinding],
) -> Decision<Vec<Result<(), KafkaError>>> {
    if acls.len() > MAX_ACLS_PER_REQUEST {
        let e = KafkaError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{} ACLs in one request; at most {MAX_ACLS_PER_REQUEST}",
                acls.len()
            ),
        );
        return Decision {
            records: vec![],
            reply: acls.iter().map(|_| Err(e.clone())).collect(),
        };
    }
    let mut written = BTreeSet::new();
    let records = acls
        .iter()
        .filter(|b| !image.acls().contains(b) && written.insert(*b))
        .cloned()
        .map(MetadataRecord::Acl)
        .collect();
    Decision {
        records,
        reply: acls.iter().map(|_| Ok(())).collect(),
    }
}

/// Deletes the ACLs each filter matches; per filter, in order, the ACLs it matched.
pub fn delete_acls(image: &MetadataImage, filters: &[AclFilter]) -> Decision<Vec<Vec<AclBinding>>> {
    let matched: Vec<Vec<AclBinding>> = filters.iter().map(|f| image.acls().matching(f)).collect();
    let removed: BTreeSet<&AclBinding> = matched.iter().flatten().collect();
    Decision {
        records: removed
            .into_iter()
            .cloned()
            .map(MetadataRecord::RemoveAcl)
            .collect(),
        reply: matched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_model::acl::{
        AclEntry, Operation, PatternType, Permission, Principal, ResourcePattern, ResourceType,
    };

    fn acl(principal: &str, op: Operation, topic: &str) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern::new(ResourceType::Topic, topic, PatternType::Literal)
                .unwrap(),
            entry: AclEntry {
                principal: Principal::parse(principal).unwrap(),
                host: "*".into(),
                operation: op,
                permission: Permission::Allow,
            },
        }
    }

    fn apply(img: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let (next, _, refused) = img.replay(img.offset + 1, records);
        assert!(refused.is_empty());
        next
    }

    #[test]
    fn creating_writes_each_new_acl_once() {
        let a = acl("User:alice", Operation::Write, "orders");
        let b = acl("User:bob", Operation::Read, "orders");
        let img = MetadataImage::empty();
        let d = create_acls(&img, &[a.clone(), a.clone(), b.clone()]);
        assert_eq!(d.reply, vec![Ok(()), Ok(()), Ok(())]);
        assert_eq!(d.records.len(), 2, "the duplicate is written once");
        let img = apply(&img, &d.records);
        assert_eq!(img.acls().len(), 2);
        // Again: nothing to write, still success.
        let d = create_acls(&img, &[a]);
        assert_eq!(d.reply, vec![Ok(())]);
        assert!(d.records.is_empty());
    }

    #[test]
    fn too_many_acls_in_one_request_are_refused_whole() {
        let many = vec![acl("User:alice", Operation::Write, "orders"); MAX_ACLS_PER_REQUEST + 1];
        let d = create_acls(&MetadataImage::empty(), &many);
        assert!(d.records.is_empty());
        assert!(d.reply.iter().all(|r| {
            r.as_ref()
                .is_err_and(|e| e.code == ErrorCode::InvalidRequest)
        }));
    }

    #[test]
    fn deleting_reports_per_filter_and_removes_each_acl_once() {
        let a = acl("User:alice", Operation::Write, "orders");
        let b = acl("User:bob", Operation::Read, "orders");
        let c = acl("User:bob", Operation::Read, "payments");
        let img = MetadataImage::empty();
        let img = apply(
            &img,
            &create_acls(&img, &[a.clone(), b.clone(), c.clone()]).records,
        );
        let bob = AclFilter {
            principal: Some(Principal::user("bob")),
            ..AclFilter::any()
        };
        let orders = AclFilter {
            name: Some("orders".into()),
            ..AclFilter::any()
        };
        let nobody = AclFilter {
            principal: Some(Principal::user("carol")),
            ..AclFilter::any()
        };
        let d = delete_acls(&img, &[bob, orders, nobody]);
        assert_eq!(
            d.reply,
            vec![
                vec![b.clone(), c.clone()],
                vec![a.clone(), b.clone()],
                vec![]
            ]
        );
        assert_eq!(d.records.len(), 3, "b is matched twice, removed once");
        let img = apply(&img, &d.records);
        assert!(img.acls().is_empty());
    }
}
