//! `kavka quota alter|describe`: client quotas (Kafka's `kafka-configs --entity-type
//! users|clients`, over AlterClientQuotas and DescribeClientQuotas): on a user, a client
//! id, or both, each a name or the default (`--user-defaults`, `--client-defaults`).
//! Keys and values are checked by the controller, which names what was wrong. The user
//! is `--entity-user`, since the global `--user` is who the CLI authenticates as.

use super::{OutputFormat, connect, print_json, table};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kavka_model::quota::{ComponentMatch, EntityType, QuotaAlteration, QuotaFilter};
use serde_json::json;

/// The entity a command names (at least one part for `alter`).
#[derive(Args, Debug, Default)]
pub struct EntityArgs {
    /// A user (the principal's name, e.g. alice for User:alice). Kafka's kafka-configs
    /// calls it --user; here --user is who the CLI authenticates as.
    #[arg(long, value_name = "USER", conflicts_with = "user_defaults")]
    entity_user: Option<String>,
    /// The default user: every user without a quota of their own.
    #[arg(long)]
    user_defaults: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_defaults")]
    client_id: Option<String>,
    /// The default client id: every client id without a quota of its own.
    #[arg(long)]
    client_defaults: bool,
}

#[derive(Subcommand, Debug)]
pub enum QuotaCommand {
    /// Set and remove quotas of one entity, e.g. `--entity-user alice --client-id app --add
    /// producer_byte_rate=1048576 --delete consumer_byte_rate`.
    Alter {
        #[command(flatten)]
        entity: EntityArgs,
        /// key=value to set (producer_byte_rate, consumer_byte_rate, request_percentage);
        /// repeat, or separate with commas.
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        /// A key to remove; repeat, or separate with commas.
        #[arg(long, value_delimiter = ',')]
        delete: Vec<String>,
        /// Check the change and change nothing.
        #[arg(long)]
        validate_only: bool,
    },
    /// Quotas of the entities matching: the user and client id named (or their
    /// defaults); with neither, every entity.
    Describe {
        #[command(flatten)]
        entity: EntityArgs,
        /// Only entities with no other parts than those named.
        #[arg(long)]
        strict: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
}

fn parts(e: &EntityArgs) -> Vec<(EntityType, Option<&str>, bool)> {
    let mut out = Vec::new();
    if e.entity_user.is_some() || e.user_defaults {
        out.push((EntityType::User, e.entity_user.as_deref(), e.user_defaults));
    }
    if e.client_id.is_some() || e.client_defaults {
        out.push((
            EntityType::ClientId,
            e.client_id.as_deref(),
            e.client_defaults,
        ));
    }
    out
}

/// The AlterClientQuotas entry the flags ask for.
fn alteration(
    entity: &EntityArgs,
    add: &[String],
    delete: &[String],
) -> anyhow::Result<QuotaAlteration> {
    let entity: Vec<(String, Option<String>)> = parts(entity)
        .into_iter()
        .map(|(t, name, _)| (t.name().to_string(), name.map(str::to_string)))
        .collect();
    if entity.is_empty() {
        bail!("name an entity: --entity-user, --user-defaults, --client-id or --client-defaults");
    }
    if add.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --add key=value or --delete key");
    }
    let mut ops = Vec::new();
    for a in add {
        let (key, value) = a
            .split_once('=')
            .with_context(|| format!("--add {a}: expected key=value"))?;
        let value: f64 = value
            .trim()
            .parse()
            .with_context(|| format!("--add {a}: '{value}' is not a number"))?;
        ops.push((key.trim().to_string(), value, false));
    }
    ops.extend(delete.iter().map(|k| (k.trim().to_string(), 0.0, true)));
    Ok(QuotaAlteration { entity, ops })
}

/// The DescribeClientQuotas filter the flags ask for.
fn filter(entity: &EntityArgs, strict: bool) -> anyhow::Result<QuotaFilter> {
    let components = parts(entity)
        .into_iter()
        .map(|(t, name, default)| {
            let m = match (name, default) {
                (Some(n), _) => ComponentMatch::Exact(n.to_string()),
                (None, _) => ComponentMatch::Default,
            };
            (t, m)
        })
        .collect();
    Ok(QuotaFilter::new(components, strict)?)
}

pub async fn run(bootstrap: &str, cmd: QuotaCommand) -> anyhow::Result<()> {
    match cmd {
        QuotaCommand::Alter {
            entity,
            add,
            delete,
            validate_only,
        } => {
            let entry = alteration(&entity, &add, &delete)?;
            let results = connect(bootstrap)
                .await?
                .alter_client_quotas(std::slice::from_ref(&entry), validate_only)
                .await?;
            let described = entry
                .entity
                .iter()
                .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
                .collect::<Vec<_>>()
                .join(", ");
            for r in results {
                r.with_context(|| format!("cannot alter the quotas of {described}"))?;
            }
            if validate_only {
                outln!("Quotas of {described}: valid (nothing changed).");
            } else {
                outln!("Altered the quotas of {described}.");
            }
        }
        QuotaCommand::Describe {
            entity,
            strict,
            output,
        } => {
            let entries = connect(bootstrap)
                .await?
                .describe_client_quotas(&filter(&entity, strict)?)
                .await?;
            match output {
                OutputFormat::Json => print_json(&json!(
                    entries
                        .iter()
                        .map(|(e, values)| json!({
                            "entity": e.components().iter().map(|(t, n)| json!({
                                "entity_type": t.name(),
                                "entity_name": n.as_wire(),
                            })).collect::<Vec<_>>(),
                            "quotas": values.iter().map(|(k, v)| (k.name().to_string(), json!(v.get()))).collect::<serde_json::Map<_, _>>(),
                        }))
                        .collect::<Vec<_>>()
                ))?,
                OutputFormat::Table => {
                    let mut t = table(&["ENTITY", "KEY", "VALUE"]);
                    for (e, values) in entries {
                        for (k, v) in values {
                            t.add_row(vec![e.to_string(), k.name().to_string(), v.to_string()]);
                        }
                    }
                    outln!("{t}");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failure

    use super::*;

    fn entity(user: Option<&str>, user_defaults: bool, client: Option<&str>) -> EntityArgs {
        EntityArgs {
            entity_user: user.map(str::to_string),
            user_defaults,
            client_id: client.map(str::to_string),
            client_defaults: false,
        }
    }

    #[test]
    fn flags_become_an_entry_and_a_filter() {
        let a = alteration(
            &entity(Some("alice"), false, Some("app")),
            &["producer_byte_rate=1048576".into()],
            &["consumer_byte_rate".into()],
        )
        .unwrap();
        assert_eq!(
            a.entity,
            vec![
                ("user".to_string(), Some("alice".to_string())),
                ("client-id".to_string(), Some("app".to_string()))
            ]
        );
        assert_eq!(
            a.ops,
            vec![
                ("producer_byte_rate".to_string(), 1_048_576.0, false),
                ("consumer_byte_rate".to_string(), 0.0, true)
            ]
        );
        let d = alteration(
            &entity(None, true, None),
            &["request_percentage=12.5".into()],
            &[],
        )
        .unwrap();
        assert_eq!(d.entity, vec![("user".to_string(), None)]);
        // (entity, add, words of the error)
        let bad: [(EntityArgs, &str, &str); 3] = [
            (
                entity(None, false, None),
                "producer_byte_rate=1",
                "name an entity",
            ),
            (
                entity(Some("a"), false, None),
                "producer_byte_rate",
                "expected key=value",
            ),
            (
                entity(Some("a"), false, None),
                "producer_byte_rate=fast",
                "not a number",
            ),
        ];
        for (e, add, words) in bad {
            let err = alteration(&e, &[add.to_string()], &[]).unwrap_err();
            assert!(format!("{err:#}").contains(words), "{err:#}");
        }
        let f = filter(&entity(Some("alice"), false, None), true).unwrap();
        assert_eq!(
            f.components(),
            &[(EntityType::User, ComponentMatch::Exact("alice".into()))]
        );
        assert!(f.strict());
        assert!(
            filter(&EntityArgs::default(), false)
                .unwrap()
                .components()
                .is_empty()
        );
    }
}
