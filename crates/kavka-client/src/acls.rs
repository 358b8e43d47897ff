//! ACL administration: create, describe and delete ACLs (Kafka's CreateAcls,
//! DescribeAcls, DeleteAcls over the admin gRPC service).

use crate::connection::Client;
use crate::error::ClientError;
use kavka_model::acl::{AclBinding, AclFilter};
use kavka_proto::conv::check;
use kavka_proto::v1;

impl Client {
    /// Creates ACLs; one result per ACL, in order (one that exists already succeeds).
    pub async fn create_acls(
        &mut self,
        acls: &[AclBinding],
    ) -> Result<Vec<Result<(), ClientError>>, ClientError> {
        let resp = self
            .admin
            .create_acls(v1::CreateAclsRequest {
                acls: acls.iter().map(v1::Acl::from).collect(),
            })
            .await?
            .into_inner();
        Ok(resp
            .results
            .into_iter()
            .map(|r| check(r.error.as_ref()).map_err(ClientError::from))
            .collect())
    }

    /// The ACLs `filter` matches.
    pub async fn describe_acls(
        &mut self,
        filter: &AclFilter,
    ) -> Result<Vec<AclBinding>, ClientError> {
        let resp = self
            .admin
            .describe_acls(v1::DescribeAclsRequest {
                filter: Some(filter.into()),
            })
            .await?
            .into_inner();
        resp.acls.into_iter().map(acl).collect()
    }

    /// Deletes the ACLs each filter matches; per filter, in order, what it deleted.
    pub async fn delete_acls(
        &mut self,
        filters: &[AclFilter],
    ) -> Result<Vec<Result<Vec<AclBinding>, ClientError>>, ClientError> {
        let resp = self
            .admin
            .delete_acls(v1::DeleteAclsRequest {
                filters: filters.iter().map(v1::AclFilter::from).collect(),
            })
            .await?
            .into_inner();
        resp.results
            .into_iter()
            .map(|r| match check(r.error.as_ref()) {
                Err(e) => Ok(Err(ClientError::from(e))),
                Ok(()) => r
                    .deleted
                    .into_iter()
                    .map(acl)
                    .collect::<Result<Vec<_>, _>>()
                    .map(Ok),
            })
            .collect()
    }
}

/// An ACL the broker sent; one that does not convert is an error naming the field.
fn acl(a: v1::Acl) -> Result<AclBinding, ClientError> {
    AclBinding::try_from(a)
        .map_err(|e| ClientError::Invalid(format!("the broker sent an ACL whose {e}")))
}
