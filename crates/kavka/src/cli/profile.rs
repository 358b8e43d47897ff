//! How the CLI connects: the global `--bootstrap` and `--tls*` flags over a profile (as
//! `rpk profile`), and `kavka profile create|use|list|show|delete`.
//!
//! Profiles live in one TOML file, `profiles.toml`, in `$KAVKA_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/kavka`, else `~/.config/kavka`: a `current` name and a table per
//! profile. Invariants: a flag given wins over the selected profile's value (`--profile
//! NAME`, else the current one), which wins over the defaults; a profile names only files
//! that existed when it was made, stored as absolute paths; a name is 1–64 of
//! `A-Za-z0-9._-`; a profile that does not exist, or a file that cannot be read, is an
//! error naming it, never a silent plaintext connection. The profile's `user` is who the
//! CLI authenticates as unless `--user` names another (the password still comes from
//! KAVKA_PASSWORD or `--password-file`, never from the profile).

use super::{OutputFormat, print_json, table};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kavka_client::{ClientTlsFiles, Transport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The default bootstrap address when neither a flag nor a profile names one.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9093";

/// The global connection flags.
#[derive(Args, Debug, Default, Clone)]
pub struct ConnectArgs {
    /// Node(s) to talk to, host:port[,host:port...] (default: the profile's, else
    /// 127.0.0.1:9093).
    #[arg(long, short = 'b', global = true, env = "KAVKA_BOOTSTRAP")]
    pub bootstrap: Option<String>,
    /// The profile to use instead of the current one (`kavka profile use`).
    #[arg(long, global = true, env = "KAVKA_PROFILE")]
    pub profile: Option<String>,
    /// Speak TLS to the gRPC port (implied by the other --tls-* flags); without
    /// --tls-ca, servers are checked against the system's CA bundle.
    #[arg(long, global = true)]
    pub tls: bool,
    /// PEM file with the CAs that the servers' certificates are checked against.
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM certificate to present for mutual TLS (ssl_client_auth=required).
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the servers' certificates must carry (default: each address's host).
    #[arg(long, global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

/// One profile, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// Who the CLI acts as (for gRPC authentication).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Profile {
    fn uses_tls(&self) -> bool {
        self.tls
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.tls_server_name.is_some()
    }
}

/// The profiles file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profiles {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// Where the profiles file is, from the environment (`KAVKA_CONFIG_DIR`,
/// `XDG_CONFIG_HOME`, `HOME`).
pub fn profiles_path(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = if let Some(d) = nonempty("KAVKA_CONFIG_DIR") {
        d
    } else if let Some(d) = nonempty("XDG_CONFIG_HOME") {
        d.join("kavka")
    } else if let Some(h) = nonempty("HOME") {
        h.join(".config").join("kavka")
    } else {
        bail!("no directory for CLI profiles: set KAVKA_CONFIG_DIR (or HOME)")
    };
    Ok(dir.join("profiles.toml"))
}

fn process_profiles_path() -> anyhow::Result<PathBuf> {
    profiles_path(|k| std::env::var(k).ok())
}

/// A profile's name: 1–64 characters of `A-Za-z0-9._-`.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!("invalid profile name '{name}': use 1 to 64 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

impl Profiles {
    /// The file at `path`; none there is no profiles yet.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("invalid profiles file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file (and its directory), replacing it whole.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text = toml::to_string(self).context("cannot encode the profiles")?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The profile `name`, or an error saying which exist.
    pub fn get(&self, name: &str, path: &Path) -> anyhow::Result<&Profile> {
        self.profiles.get(name).with_context(|| {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            format!(
                "no profile '{name}' in {} (profiles: {}); `kavka profile create {name}` makes it",
                path.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// The profile the flags select (`--profile`), else the current one, if any.
    pub fn selected(&self, flag: Option<&str>, path: &Path) -> anyhow::Result<Option<&Profile>> {
        match flag.or(self.current.as_deref()) {
            Some(name) => self.get(name, path).map(Some),
            None => Ok(None),
        }
    }
}

/// How this invocation connects.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    pub bootstrap: String,
    pub transport: Transport,
    /// Where the TLS material came from (`None`: plaintext).
    pub tls: Option<ClientTlsFiles>,
    /// Who the CLI acts as (from the profile), for gRPC authentication.
    pub user: Option<String>,
}

/// Flags over the profile over the defaults (pure: no file is read).
pub fn merge(flags: &ConnectArgs, profile: Option<&Profile>) -> (String, Option<ClientTlsFiles>) {
    let p = profile.cloned().unwrap_or_default();
    let bootstrap = flags
        .bootstrap
        .clone()
        .or(p.bootstrap.clone())
        .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_string());
    let flag_tls = flags.tls
        || flags.tls_ca.is_some()
        || flags.tls_cert.is_some()
        || flags.tls_key.is_some()
        || flags.tls_server_name.is_some();
    if !flag_tls && !p.uses_tls() {
        return (bootstrap, None);
    }
    // A certificate and its key go together: both from the flags, or both from the profile.
    let (cert, key) = match (&flags.tls_cert, &flags.tls_key) {
        (None, None) => (p.tls_cert, p.tls_key),
        (c, k) => (c.clone(), k.clone()),
    };
    let files = ClientTlsFiles {
        ca: flags.tls_ca.clone().or(p.tls_ca),
        cert,
        key,
        server_name: flags.tls_server_name.clone().or(p.tls_server_name),
    };
    (bootstrap, Some(files))
}

impl Connection {
    /// The connection the flags and the selected profile describe, with its TLS files
    /// read and checked.
    pub fn resolve(flags: &ConnectArgs) -> anyhow::Result<Self> {
        let path = process_profiles_path();
        // Profiles are optional: without a directory for them, only flags count.
        let (profiles, path) = match path {
            Ok(p) => (Profiles::load(&p)?, p),
            Err(e) if flags.profile.is_some() => return Err(e),
            Err(_) => (Profiles::default(), PathBuf::new()),
        };
        if let Some(name) = &flags.profile {
            check_name(name)?;
        }
        let profile = profiles.selected(flags.profile.as_deref(), &path)?;
        let (bootstrap, tls) = merge(flags, profile);
        let transport = match &tls {
            None => Transport::plaintext(),
            Some(files) => Transport::tls(files).context("invalid TLS settings for the CLI")?,
        };
        Ok(Self {
            bootstrap,
            transport,
            tls,
            user: profile.and_then(|p| p.user.clone()),
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Save the connection flags given (--bootstrap, --tls, --tls-ca, --tls-cert,
    /// --tls-key, --tls-server-name, --user) as profile NAME, and use it from now on
    /// (a profile's user still takes its password from KAVKA_PASSWORD or
    /// --password-file).
    Create { name: String },
    /// Use profile NAME from now on.
    Use { name: String },
    /// The profiles (the current one marked *).
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// A profile's settings (default: the current one).
    Show { name: Option<String> },
    /// Delete profile NAME (if it is the current one, no profile is current after).
    Delete { name: String },
}

/// An existing file, as an absolute path (stored so the profile works from any directory).
fn absolute_file(path: &Path, flag: &str) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(path)
        .with_context(|| format!("--{flag} {}: cannot resolve the path", path.display()))?;
    if !abs.is_file() {
        bail!("--{flag} {}: no such file", path.display());
    }
    Ok(abs)
}

/// The profile that `kavka profile create` stores from the flags.
fn from_flags(flags: &ConnectArgs, user: Option<String>) -> anyhow::Result<Profile> {
    let file = |p: &Option<PathBuf>, flag: &str| -> anyhow::Result<Option<PathBuf>> {
        p.as_deref().map(|p| absolute_file(p, flag)).transpose()
    };
    let profile = Profile {
        bootstrap: flags.bootstrap.clone(),
        tls: flags.tls,
        tls_ca: file(&flags.tls_ca, "tls-ca")?,
        tls_cert: file(&flags.tls_cert, "tls-cert")?,
        tls_key: file(&flags.tls_key, "tls-key")?,
        tls_server_name: flags.tls_server_name.clone(),
        user: user.filter(|u| !u.is_empty()),
    };
    if let Some(b) = &profile.bootstrap {
        kavka_client::parse_bootstrap(b).with_context(|| format!("invalid --bootstrap '{b}'"))?;
    }
    Ok(profile)
}

/// Runs `kavka profile ...` against the profiles file at `path`; `user` is `--user`.
pub fn run_at(
    path: &Path,
    flags: &ConnectArgs,
    user: Option<String>,
    cmd: ProfileCommand,
) -> anyhow::Result<()> {
    let mut profiles = Profiles::load(path)?;
    match cmd {
        ProfileCommand::Create { name } => {
            check_name(&name)?;
            if profiles.profiles.contains_key(&name) {
                bail!(
                    "profile '{name}' already exists in {} (`kavka profile delete {name}` first)",
                    path.display()
                );
            }
            let profile = from_flags(flags, user)?;
            if profile.uses_tls() {
                // What the CLI will do with it must work now, not at the first command.
                let (_, files) = merge(&ConnectArgs::default(), Some(&profile));
                if let Some(files) = files {
                    Transport::tls(&files).context("invalid TLS settings")?;
                }
            }
            profiles.profiles.insert(name.clone(), profile);
            profiles.current = Some(name.clone());
            profiles.save(path)?;
            outln!(
                "created profile {name} and switched to it ({})",
                path.display()
            );
        }
        ProfileCommand::Use { name } => {
            check_name(&name)?;
            profiles.get(&name, path)?;
            profiles.current = Some(name.clone());
            profiles.save(path)?;
            outln!("using profile {name}");
        }
        ProfileCommand::List { output } => match output {
            OutputFormat::Json => print_json(&serde_json::json!({
                "current": profiles.current,
                "profiles": profiles.profiles,
            }))?,
            OutputFormat::Table => {
                let mut t = table(&["", "NAME", "BOOTSTRAP", "TLS", "USER"]);
                for (name, p) in &profiles.profiles {
                    let current = profiles.current.as_deref() == Some(name.as_str());
                    t.add_row(vec![
                        if current { "*" } else { "" }.to_string(),
                        name.clone(),
                        p.bootstrap.clone().unwrap_or_else(|| "-".into()),
                        if p.uses_tls() { "yes" } else { "no" }.to_string(),
                        p.user.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                outln!("{t}");
            }
        },
        ProfileCommand::Show { name } => {
            let name = match name.or(profiles.current.clone()) {
                Some(n) => n,
                None => bail!("no current profile: name one, or `kavka profile use NAME`"),
            };
            let p = profiles.get(&name, path)?;
            outln!("name = {name:?}");
            outln!(
                "{}",
                toml::to_string(p)
                    .context("cannot encode the profile")?
                    .trim_end()
            );
        }
        ProfileCommand::Delete { name } => {
            check_name(&name)?;
            profiles.get(&name, path)?;
            profiles.profiles.remove(&name);
            if profiles.current.as_deref() == Some(name.as_str()) {
                profiles.current = None;
            }
            profiles.save(path)?;
            outln!("deleted profile {name}");
        }
    }
    Ok(())
}

/// `kavka profile ...`; `user` is `--user`.
pub fn run(flags: &ConnectArgs, user: Option<String>, cmd: ProfileCommand) -> anyhow::Result<()> {
    run_at(&process_profiles_path()?, flags, user, cmd)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_profiles_file_is_found_from_the_environment() {
        // (KAVKA_CONFIG_DIR, XDG_CONFIG_HOME, HOME) -> path or None (an error)
        let table = [
            (Some("/c"), Some("/x"), Some("/h"), Some("/c/profiles.toml")),
            (None, Some("/x"), Some("/h"), Some("/x/kavka/profiles.toml")),
            (
                Some(""),
                None,
                Some("/h"),
                Some("/h/.config/kavka/profiles.toml"),
            ),
            (None, None, None, None),
        ];
        for (dir, xdg, home, want) in table {
            let got = profiles_path(|k| {
                match k {
                    "KAVKA_CONFIG_DIR" => dir,
                    "XDG_CONFIG_HOME" => xdg,
                    "HOME" => home,
                    _ => None,
                }
                .map(str::to_string)
            });
            assert_eq!(
                got.ok(),
                want.map(PathBuf::from),
                "{dir:?} {xdg:?} {home:?}"
            );
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["prod", "a", "eu-west.1_b"] {
            check_name(good).unwrap();
        }
        for bad in ["", "a b", "../x", "x/y", &"n".repeat(65)] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid profile name"), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_win_over_the_profile() {
        let profile = Profile {
            bootstrap: Some("p:1".into()),
            tls: false,
            tls_ca: Some("/p/ca.pem".into()),
            tls_cert: Some("/p/c.pem".into()),
            tls_key: Some("/p/k.pem".into()),
            tls_server_name: None,
            user: Some("alice".into()),
        };
        let plain = Profile {
            bootstrap: Some("q:1".into()),
            ..Profile::default()
        };
        let flags =
            |b: Option<&str>, tls: bool, ca: Option<&str>, cert: Option<&str>| ConnectArgs {
                bootstrap: b.map(str::to_string),
                tls,
                tls_ca: ca.map(PathBuf::from),
                tls_cert: cert.map(PathBuf::from),
                tls_key: cert.map(|_| PathBuf::from("/f/k.pem")),
                ..ConnectArgs::default()
            };
        // (flags, profile) -> (bootstrap, ca, cert, key) with None for plaintext
        type Want = (
            &'static str,
            Option<(
                Option<&'static str>,
                Option<&'static str>,
                Option<&'static str>,
            )>,
        );
        let table: Vec<(ConnectArgs, Option<&Profile>, Want)> = vec![
            (
                flags(None, false, None, None),
                None,
                (DEFAULT_BOOTSTRAP, None),
            ),
            (
                flags(Some("f:1"), false, None, None),
                Some(&plain),
                ("f:1", None),
            ),
            (flags(None, false, None, None), Some(&plain), ("q:1", None)),
            (
                flags(None, true, None, None),
                Some(&plain),
                ("q:1", Some((None, None, None))),
            ),
            (
                flags(None, false, None, None),
                Some(&profile),
                (
                    "p:1",
                    Some((Some("/p/ca.pem"), Some("/p/c.pem"), Some("/p/k.pem"))),
                ),
            ),
            (
                flags(Some("f:1"), false, Some("/f/ca.pem"), Some("/f/c.pem")),
                Some(&profile),
                (
                    "f:1",
                    Some((Some("/f/ca.pem"), Some("/f/c.pem"), Some("/f/k.pem"))),
                ),
            ),
        ];
        for (f, p, (bootstrap, tls)) in table {
            let (b, files) = merge(&f, p);
            assert_eq!(b, bootstrap, "{f:?}");
            let got = files.map(|t| {
                let s = |p: Option<PathBuf>| p.map(|p| p.display().to_string());
                (s(t.ca), s(t.cert), s(t.key))
            });
            let want = tls.map(|(a, c, k)| {
                let s = |p: Option<&str>| p.map(str::to_string);
                (s(a), s(c), s(k))
            });
            assert_eq!(got, want, "{f:?} {p:?}");
        }
    }

    #[test]
    fn create_use_show_delete_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg").join("profiles.toml");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let flags = ConnectArgs {
            bootstrap: Some("h:9093".into()),
            tls_ca: Some(ca.clone()),
            ..ConnectArgs::default()
        };
        let create = |name: &str, f: &ConnectArgs| {
            run_at(
                &path,
                f,
                Some("alice".into()),
                ProfileCommand::Create { name: name.into() },
            )
        };
        // The CA file is junk: TLS settings are checked at create.
        let e = format!("{:#}", create("prod", &flags).unwrap_err());
        assert!(e.contains("holds no certificate"), "{e}");
        let plain = ConnectArgs {
            bootstrap: Some("h:9093".into()),
            ..ConnectArgs::default()
        };
        create("dev", &plain).unwrap();
        let missing = ConnectArgs {
            tls_ca: Some(dir.path().join("nope.pem")),
            ..ConnectArgs::default()
        };
        let e = format!("{:#}", create("x", &missing).unwrap_err());
        assert!(e.contains("--tls-ca") && e.contains("no such file"), "{e}");
        let e = format!("{:#}", create("dev", &plain).unwrap_err());
        assert!(e.contains("already exists"), "{e}");
        let e = format!("{:#}", create("bad name", &plain).unwrap_err());
        assert!(e.contains("invalid profile name"), "{e}");

        let p = Profiles::load(&path).unwrap();
        assert_eq!(p.current.as_deref(), Some("dev"));
        assert_eq!(p.profiles["dev"].user.as_deref(), Some("alice"));
        assert_eq!(p.profiles["dev"].bootstrap.as_deref(), Some("h:9093"));
        let e = format!("{:#}", p.selected(Some("prod"), &path).unwrap_err());
        assert!(
            e.contains("no profile 'prod'") && e.contains("profiles: dev"),
            "{e}"
        );

        let none = ConnectArgs::default();
        let e = run_at(
            &path,
            &none,
            None,
            ProfileCommand::Use {
                name: "prod".into(),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("no profile 'prod'"), "{e}");
        run_at(
            &path,
            &none,
            None,
            ProfileCommand::Delete { name: "dev".into() },
        )
        .unwrap();
        let p = Profiles::load(&path).unwrap();
        assert_eq!(p, Profiles::default());
        assert_eq!(p.selected(None, &path).unwrap(), None);
        std::fs::write(&path, "current = 3").unwrap();
        let e = format!("{:#}", Profiles::load(&path).unwrap_err());
        assert!(e.contains("invalid profiles file"), "{e}");
    }
}
