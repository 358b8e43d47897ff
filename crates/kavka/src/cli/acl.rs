//! `kavka acl create|list|delete`: ACLs as Kafka's `kafka-acls` manages them (its flag
//! names: `--allow-principal`, `--deny-principal`, `--operation`, `--topic`, `--group`,
//! `--cluster`, `--transactional-id`, `--resource-pattern-type`).
//!
//! Invariant: a delete with no filter at all is refused (it would delete every ACL).

use super::{OutputFormat, connect, print_json, table};
use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use kavka_model::acl::{
    ANY_HOST, AclBinding, AclEntry, AclFilter, CLUSTER_NAME, Operation, PatternFilter, PatternType,
    Permission, Principal, ResourcePattern, ResourceType,
};
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum AclCommand {
    /// Create ACLs: every principal × operation × resource given.
    Create {
        /// Principals allowed, e.g. User:alice (repeatable).
        #[arg(long, value_parser = parse_principal)]
        allow_principal: Vec<Principal>,
        /// Principals denied (repeatable); a deny wins over any allow.
        #[arg(long, value_parser = parse_principal)]
        deny_principal: Vec<Principal>,
        /// The host the ACLs apply from (default: any).
        #[arg(long, default_value = ANY_HOST)]
        host: String,
        /// Operations: read, write, create, delete, alter, describe, cluster_action,
        /// describe_configs, alter_configs, idempotent_write, all (repeatable).
        #[arg(long, required = true, value_parser = parse_operation)]
        operation: Vec<Operation>,
        #[command(flatten)]
        resources: Resources,
        /// How the resource names match: literal or prefixed.
        #[arg(long, value_enum, default_value_t = PatternArg::Literal)]
        resource_pattern_type: PatternArg,
    },
    /// List ACLs, all or those matching the filters.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete the ACLs matching the filters (at least one filter is required).
    Delete {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
}

/// The resources ACLs are for.
#[derive(Args, Debug, Default)]
pub struct Resources {
    /// Topic names, or prefixes with --resource-pattern-type prefixed (repeatable).
    #[arg(long)]
    topic: Vec<String>,
    /// Consumer group ids or prefixes (repeatable).
    #[arg(long)]
    group: Vec<String>,
    /// The cluster itself (for cluster operations such as alter_configs).
    #[arg(long)]
    cluster: bool,
    /// Transactional ids or prefixes (repeatable).
    #[arg(long)]
    transactional_id: Vec<String>,
}

impl Resources {
    fn list(&self) -> Vec<(ResourceType, String)> {
        let named = |t: ResourceType, names: &[String]| {
            names
                .iter()
                .map(move |n| (t, n.clone()))
                .collect::<Vec<_>>()
        };
        let mut out = named(ResourceType::Topic, &self.topic);
        out.extend(named(ResourceType::Group, &self.group));
        if self.cluster {
            out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        out.extend(named(ResourceType::TransactionalId, &self.transactional_id));
        out
    }
}

#[derive(Args, Debug)]
pub struct FilterArgs {
    /// Only ACLs of this principal, e.g. User:alice.
    #[arg(long, value_parser = parse_principal)]
    principal: Option<Principal>,
    /// Only ACLs for this operation.
    #[arg(long, value_parser = parse_operation)]
    operation: Option<Operation>,
    /// Only allows or only denies.
    #[arg(long, value_enum)]
    permission: Option<PermissionArg>,
    #[command(flatten)]
    resources: Resources,
    /// How --topic/--group/... match ACLs: literal (that exact pattern), prefixed, any
    /// (any pattern with that exact name) or match (every ACL that applies to it).
    #[arg(long, value_enum, default_value_t = FilterPatternArg::Literal)]
    resource_pattern_type: FilterPatternArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PatternArg {
    Literal,
    Prefixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FilterPatternArg {
    Literal,
    Prefixed,
    Any,
    Match,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PermissionArg {
    Allow,
    Deny,
}

fn parse_principal(s: &str) -> Result<Principal, String> {
    Principal::parse(s).map_err(|e| e.to_string())
}

fn parse_operation(s: &str) -> Result<Operation, String> {
    Operation::parse(s).map_err(|e| e.to_string())
}

impl From<PatternArg> for PatternType {
    fn from(p: PatternArg) -> Self {
        match p {
            PatternArg::Literal => PatternType::Literal,
            PatternArg::Prefixed => PatternType::Prefixed,
        }
    }
}

/// The ACLs `create` asks for: every principal × operation × resource.
fn bindings(
    allow: &[Principal],
    deny: &[Principal],
    host: &str,
    operations: &[Operation],
    resources: &Resources,
    pattern: PatternArg,
) -> anyhow::Result<Vec<AclBinding>> {
    if allow.is_empty() && deny.is_empty() {
        bail!("give --allow-principal or --deny-principal: whom the ACLs are for");
    }
    let resources = resources.list();
    if resources.is_empty() {
        bail!("give --topic, --group, --cluster or --transactional-id: what the ACLs are for");
    }
    let who = allow
        .iter()
        .map(|p| (p, Permission::Allow))
        .chain(deny.iter().map(|p| (p, Permission::Deny)));
    let mut out = Vec::new();
    for (principal, permission) in who {
        for (resource_type, name) in &resources {
            let pattern = ResourcePattern::new(*resource_type, name.clone(), pattern.into())?;
            for operation in operations {
                out.push(AclBinding {
                    pattern: pattern.clone(),
                    entry: AclEntry {
                        principal: principal.clone(),
                        host: host.to_string(),
                        operation: *operation,
                        permission,
                    },
                });
            }
        }
    }
    Ok(out)
}

/// The filters `list` and `delete` send: one per resource given, else one for all.
fn filters(f: &FilterArgs) -> Vec<AclFilter> {
    let base = AclFilter {
        principal: f.principal.clone(),
        operation: f.operation,
        permission: f.permission.map(|p| match p {
            PermissionArg::Allow => Permission::Allow,
            PermissionArg::Deny => Permission::Deny,
        }),
        ..AclFilter::any()
    };
    let resources = f.resources.list();
    if resources.is_empty() {
        return vec![base];
    }
    let pattern = match f.resource_pattern_type {
        FilterPatternArg::Literal => PatternFilter::Exactly(PatternType::Literal),
        FilterPatternArg::Prefixed => PatternFilter::Exactly(PatternType::Prefixed),
        FilterPatternArg::Any => PatternFilter::Any,
        FilterPatternArg::Match => PatternFilter::Match,
    };
    resources
        .into_iter()
        .map(|(t, name)| AclFilter {
            resource_type: Some(t),
            name: Some(name),
            pattern,
            ..base.clone()
        })
        .collect()
}

fn print(acls: &[AclBinding], output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => print_json(&json!(
            acls.iter()
                .map(|b| json!({
                    "principal": b.entry.principal.to_string(),
                    "host": b.entry.host,
                    "operation": b.entry.operation.name(),
                    "permission": b.entry.permission.name(),
                    "resource_type": b.pattern.resource_type.name(),
                    "resource_name": b.pattern.name,
                    "pattern_type": b.pattern.pattern_type.name(),
                }))
                .collect::<Vec<_>>()
        )),
        OutputFormat::Table => {
            let mut t = table(&[
                "PRINCIPAL",
                "HOST",
                "OPERATION",
                "PERMISSION",
                "RESOURCE",
                "NAME",
                "PATTERN",
            ]);
            for b in acls {
                t.add_row(vec![
                    b.entry.principal.to_string(),
                    b.entry.host.clone(),
                    b.entry.operation.name().to_string(),
                    b.entry.permission.name().to_string(),
                    b.pattern.resource_type.name().to_string(),
                    b.pattern.name.clone(),
                    b.pattern.pattern_type.name().to_string(),
                ]);
            }
            outln!("{t}");
            Ok(())
        }
    }
}

pub async fn run(bootstrap: &str, cmd: AclCommand) -> anyhow::Result<()> {
    match cmd {
        AclCommand::Create {
            allow_principal,
            deny_principal,
            host,
            operation,
            resources,
            resource_pattern_type,
        } => {
            let acls = bindings(
                &allow_principal,
                &deny_principal,
                &host,
                &operation,
                &resources,
                resource_pattern_type,
            )?;
            let results = connect(bootstrap).await?.create_acls(&acls).await?;
            let mut failed = 0;
            for (b, r) in acls.iter().zip(results) {
                match r {
                    Ok(()) => outln!("Created: {b}"),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {b}: {e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} ACLs were not created", acls.len());
            }
        }
        AclCommand::List { filter, output } => {
            let mut client = connect(bootstrap).await?;
            let mut acls = Vec::new();
            for f in filters(&filter) {
                acls.extend(client.describe_acls(&f).await?);
            }
            acls.sort();
            acls.dedup();
            print(&acls, output)?;
        }
        AclCommand::Delete { filter, output } => {
            let unfiltered = filter.principal.is_none()
                && filter.operation.is_none()
                && filter.permission.is_none()
                && filter.resources.list().is_empty();
            if unfiltered {
                bail!(
                    "give at least one of --principal, --operation, --permission, --topic, \
                     --group, --cluster or --transactional-id: an empty filter would delete \
                     every ACL"
                );
            }
            let results = connect(bootstrap)
                .await?
                .delete_acls(&filters(&filter))
                .await?;
            let mut deleted = Vec::new();
            for r in results {
                deleted.extend(r?);
            }
            deleted.sort();
            deleted.dedup();
            if output == OutputFormat::Table {
                outln!("Deleted {} ACLs.", deleted.len());
            }
            print(&deleted, output)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_makes_every_principal_operation_and_resource() {
        let resources = Resources {
            topic: vec!["events-".into()],
            group: vec!["analytics".into()],
            ..Resources::default()
        };
        let acls = bindings(
            &[Principal::user("analytics")],
            &[Principal::user("intern")],
            ANY_HOST,
            &[Operation::Read, Operation::Describe],
            &resources,
            PatternArg::Prefixed,
        )
        .unwrap();
        assert_eq!(acls.len(), 2 * 2 * 2);
        assert!(
            acls.iter()
                .all(|b| b.pattern.pattern_type == PatternType::Prefixed)
        );
        assert_eq!(
            acls.iter()
                .filter(|b| b.entry.permission == Permission::Deny)
                .count(),
            4
        );
        // (allow, resources) -> the error names what is missing
        let none = Resources::default();
        let table: [(&[Principal], &Resources, &str); 2] = [
            (&[], &resources, "--allow-principal"),
            (&[Principal::user("a")], &none, "--topic"),
        ];
        for (allow, resources, want) in table {
            let e = bindings(
                allow,
                &[],
                ANY_HOST,
                &[Operation::Read],
                resources,
                PatternArg::Literal,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{e}");
        }
        // The cluster has one name: a prefixed cluster ACL is still `kafka-cluster`.
        let cluster = Resources {
            cluster: true,
            ..Resources::default()
        };
        let acls = bindings(
            &[Principal::user("ops")],
            &[],
            ANY_HOST,
            &[Operation::AlterConfigs],
            &cluster,
            PatternArg::Literal,
        )
        .unwrap();
        assert_eq!(acls[0].pattern.name, CLUSTER_NAME);
    }

    #[test]
    fn list_filters_one_per_resource_or_one_for_all() {
        let args = |resources: Resources, p: FilterPatternArg| FilterArgs {
            principal: Some(Principal::user("bob")),
            operation: None,
            permission: Some(PermissionArg::Deny),
            resources,
            resource_pattern_type: p,
        };
        let all = filters(&args(Resources::default(), FilterPatternArg::Literal));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].pattern, PatternFilter::Any);
        assert_eq!(all[0].permission, Some(Permission::Deny));
        let two = filters(&args(
            Resources {
                topic: vec!["a".into()],
                group: vec!["g".into()],
                ..Resources::default()
            },
            FilterPatternArg::Match,
        ));
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].resource_type, Some(ResourceType::Topic));
        assert_eq!(two[1].name.as_deref(), Some("g"));
        assert!(two.iter().all(|f| f.pattern == PatternFilter::Match));
    }
}
