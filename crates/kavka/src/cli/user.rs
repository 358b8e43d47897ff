//! `kavka user create|delete|list`: SCRAM users, as `rpk security user` (the password
//! only from stdin, so it is in no shell history or process list; salted here with a
//! fresh random salt, sent as keys, never stored or printed).

use super::{OutputFormat, connect, print_json, table};
use anyhow::{Context, bail};
use clap::Subcommand;
use kavka_model::scram::{MIN_ITERATIONS, ScramMechanism};
use serde_json::json;
use std::io::Read;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user, or set its password for a mechanism, reading the password from
    /// stdin (its first line).
    Create {
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-256", value_parser = parse_mechanism)]
        mechanism: ScramMechanism,
        /// Read the password from stdin (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = MIN_ITERATIONS)]
        iterations: u32,
    },
    /// Delete a user's credentials (all mechanisms unless --mechanism).
    Delete {
        name: String,
        #[arg(long, value_parser = parse_mechanism)]
        mechanism: Option<ScramMechanism>,
    },
    /// List users and their mechanisms.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
}

fn parse_mechanism(s: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::from_name(s)
        .ok_or_else(|| format!("unknown mechanism '{s}': expected SCRAM-SHA-256 or SCRAM-SHA-512"))
}

/// The first line of `input`, without its line ending.
fn password_from(mut input: impl Read) -> anyhow::Result<String> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .context("cannot read the password from stdin")?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        bail!("the password on stdin is empty");
    }
    Ok(line)
}

pub async fn run(bootstrap: &str, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            name,
            mechanism,
            password_stdin: _,
            iterations,
        } => {
            let password = password_from(std::io::stdin().lock())?;
            let credential = kavka_sasl::scram::credential(
                mechanism,
                password.as_bytes(),
                kavka_sasl::scram::random_bytes(),
                iterations,
            )?;
            let results = connect(bootstrap)
                .await?
                .alter_user_scram_credentials(&[(name.clone(), credential)], &[])
                .await?;
            for (user, r) in results {
                r.with_context(|| {
                    format!("cannot set {}'s {} credential", user, mechanism.name())
                })?;
            }
            outln!("Created user {name} ({}).", mechanism.name());
        }
        UserCommand::Delete { name, mechanism } => {
            let mut client = connect(bootstrap).await?;
            let mechanisms = match mechanism {
                Some(m) => vec![m],
                None => {
                    let described = client
                        .describe_user_scram_credentials(vec![name.clone()])
                        .await?;
                    let mut found = Vec::new();
                    for (_, r) in described {
                        found.extend(r?.into_iter().map(|(m, _)| m));
                    }
                    found
                }
            };
            let deletions: Vec<_> = mechanisms.iter().map(|m| (name.clone(), *m)).collect();
            for (user, r) in client.alter_user_scram_credentials(&[], &deletions).await? {
                r.with_context(|| format!("cannot delete {user}'s credentials"))?;
            }
            outln!(
                "Deleted user {name} ({}).",
                mechanisms
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        UserCommand::List { output } => {
            let users = connect(bootstrap)
                .await?
                .describe_user_scram_credentials(vec![])
                .await?;
            let mut rows = Vec::new();
            for (user, r) in users {
                for (m, iterations) in r? {
                    rows.push((user.clone(), m, iterations));
                }
            }
            match output {
                OutputFormat::Json => print_json(&json!(
                    rows.iter()
                        .map(|(u, m, i)| json!({"user": u, "mechanism": m.name(), "iterations": i}))
                        .collect::<Vec<_>>()
                ))?,
                OutputFormat::Table => {
                    let mut t = table(&["USER", "MECHANISM", "ITERATIONS"]);
                    for (u, m, i) in rows {
                        t.add_row(vec![u, m.name().to_string(), i.to_string()]);
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
    use super::*;

    #[test]
    fn the_password_is_the_first_line_of_stdin_and_must_not_be_empty() {
        // (stdin) -> password or error words
        let table: [(&[u8], Result<&str, &str>); 4] = [
            (b"s3cret\n", Ok("s3cret")),
            (b"s3cret\r\nignored\n", Ok("s3cret")),
            (b"\n", Err("empty")),
            (b"", Err("empty")),
        ];
        for (input, want) in table {
            match (password_from(input), want) {
                (Ok(p), Ok(w)) => assert_eq!(p, w),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e}"),
                (got, want) => panic!("{got:?} vs {want:?}"),
            }
        }
        assert!(parse_mechanism("scram-sha-512").is_ok());
        assert!(
            parse_mechanism("PLAIN")
                .unwrap_err()
                .contains("SCRAM-SHA-256")
        );
    }
}
