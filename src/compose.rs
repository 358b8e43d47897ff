//! The repository's `docker-compose.yml` cluster, driven from tests and the chaos run:
//! its own compose project and host ports, fault injection on its containers (kill,
//! pause, network disconnect) and copies of their data dirs for the history checker.
//!
//! Works with `docker compose` (v2 plugin) or `docker-compose` (v1), whichever runs.
//! A project started here is taken down with its volumes when dropped.

use crate::free_port;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Builds the image `tag` with deploy/build-image.sh (static release binary, then
/// `FROM scratch`), bounded by `limit`.
pub fn build_image(tag: &str, limit: Duration) -> anyhow::Result<()> {
    let out = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg(repo_root().join("deploy/build-image.sh"))
        .arg(tag)
        .current_dir(repo_root())
        .output()
        .context("cannot run deploy/build-image.sh")?;
    if !out.status.success() {
        bail!(
            "deploy/build-image.sh failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The repository root (where `docker-compose.yml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why Docker-based tests cannot run here, or `None` when an engine answers.
pub fn unavailable() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
    {
        Err(e) => Some(format!("no docker CLI ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "no Docker engine: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) if compose_cmd().is_none() => {
            Some("neither `docker compose` nor `docker-compose` runs".into())
        }
        Ok(_) => None,
    }
}

/// `docker compose` when the plugin exists, else `docker-compose`.
fn compose_cmd() -> Option<Vec<&'static str>> {
    let works = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    [vec!["docker", "compose"], vec!["docker-compose"]]
        .into_iter()
        .find(|c| works(c))
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

/// One compose project of the three-node cluster.
pub struct Compose {
    project: String,
    ports: [u16; 3],
    /// Host ports of the Kafka EXTERNAL listeners (KAVKA_N_KAFKA_PORT; the file's
    /// defaults are 9092, 9192, 9292).
    kafka_ports: Option<[u16; 3]>,
    /// Host ports of the HTTP listeners (KAVKA_N_HTTP_PORT; the file's defaults are 9644,
    /// 9645, 9646); a test project takes free ones so projects never collide.
    http_ports: Option<[u16; 3]>,
    /// The image the services run (KAVKA_IMAGE; the file's default is kavka:dev).
    image: Option<String>,
    /// Overlays after docker-compose.yml (`-f`), relative to the repository root.
    overlays: Vec<PathBuf>,
    /// More variables for compose's interpolation (e.g. KAVKA_CERTS_DIR).
    env: Vec<(String, String)>,
    /// Taken down on drop (the chaos run against a user's own cluster leaves it up).
    owned: bool,
}

impl Compose {
    /// A project of the repository's compose file with its own name and host ports.
    pub fn new(project: &str, ports: [u16; 3]) -> Compose {
        Compose {
            project: project.to_string(),
            ports,
            kafka_ports: None,
            http_ports: (|| Some([free_port().ok()?, free_port().ok()?, free_port().ok()?]))(),
            image: None,
            overlays: Vec::new(),
            env: Vec::new(),
            owned: true,
        }
    }

    /// An already running project (e.g. the user's `docker compose up`), left up.
    pub fn existing(project: &str, ports: [u16; 3]) -> Compose {
        Compose {
            project: project.to_string(),
            ports,
            kafka_ports: None,
            http_ports: None,
            image: None,
            overlays: Vec::new(),
            env: Vec::new(),
            owned: false,
        }
    }

    /// Runs `image` instead of the compose file's default.
    pub fn with_image(mut self, image: &str) -> Compose {
        self.image = Some(image.to_string());
        self
    }

    /// Adds overlay files after docker-compose.yml (`-f`), e.g.
    /// `docker-compose.secure.yml`, relative to the repository root.
    pub fn with_files(mut self, files: &[&str]) -> Compose {
        self.overlays
            .extend(files.iter().map(|f| repo_root().join(f)));
        self
    }

    /// Sets a variable the compose files interpolate (e.g. `KAVKA_CERTS_DIR`).
    pub fn with_env(mut self, key: &str, value: &str) -> Compose {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Publishes the Kafka EXTERNAL listeners on these host ports.
    pub fn with_kafka_ports(mut self, ports: [u16; 3]) -> Compose {
        self.kafka_ports = Some(ports);
        self
    }

    /// The host's Kafka `bootstrap.servers` (each node's EXTERNAL Kafka listener).
    pub fn kafka_bootstrap(&self) -> String {
        self.kafka_ports
            .unwrap_or([9092, 9192, 9292])
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `node`'s HTTP listener (metrics, health) as published on the host.
    pub fn http_addr(&self, node: usize) -> String {
        let ports = self.http_ports.unwrap_or([9644, 9645, 9646]);
        format!("127.0.0.1:{}", ports[(node.clamp(1, 3)) - 1])
    }

    /// The host's bootstrap list (each node's external listener).
    pub fn bootstrap(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn compose(&self, args: &[&str]) -> anyhow::Result<Output> {
        run(&mut self.command(args)?)
    }

    /// The compose command line of this project (files, ports, image, variables).
    fn command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let cmd = compose_cmd().context("no docker compose")?;
        let mut c = Command::new(cmd[0]);
        c.args(&cmd[1..])
            .args(["-p", &self.project, "-f"])
            .arg(repo_root().join("docker-compose.yml"));
        for file in &self.overlays {
            c.arg("-f").arg(file);
        }
        c.args(args).current_dir(repo_root());
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        for (i, p) in self.ports.iter().enumerate() {
            c.env(format!("KAVKA_{}_PORT", i + 1), p.to_string());
        }
        for (i, p) in self.kafka_ports.iter().flatten().enumerate() {
            c.env(format!("KAVKA_{}_KAFKA_PORT", i + 1), p.to_string());
        }
        for (i, p) in self.http_ports.iter().flatten().enumerate() {
            c.env(format!("KAVKA_{}_HTTP_PORT", i + 1), p.to_string());
        }
        if let Some(image) = &self.image {
            c.env("KAVKA_IMAGE", image);
        }
        Ok(c)
    }

    /// Runs `args` in `kavka-<node>` (`exec -T`, no shell: the image has none) with
    /// `stdin`, bounded by `limit`; the output whatever the exit status.
    pub fn exec(
        &self,
        node: i32,
        args: &[&str],
        stdin: &[u8],
        limit: Duration,
    ) -> anyhow::Result<Output> {
        use std::io::Write;
        let service = format!("kavka-{node}");
        let mut exec = vec!["exec", "-T", service.as_str()];
        exec.extend_from_slice(args);
        let compose = self.command(&exec)?;
        let mut c = Command::new("timeout");
        c.arg(limit.as_secs().to_string())
            .arg(compose.get_program())
            .args(compose.get_args())
            .envs(
                compose
                    .get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .current_dir(repo_root())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().with_context(|| format!("cannot run {c:?}"))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin)
                .with_context(|| format!("cannot write to {c:?}"))?;
        }
        child
            .wait_with_output()
            .with_context(|| format!("cannot wait for {c:?}"))
    }

    /// `up -d` (the image must exist: deploy/build-image.sh).
    pub fn up(&self) -> anyhow::Result<()> {
        self.compose(&["up", "-d", "--no-build"]).map(|_| ())
    }

    /// The container id of `kavka-<node>`.
    pub fn container(&self, node: i32) -> anyhow::Result<String> {
        let out = self.compose(&["ps", "-q", &format!("kavka-{node}")])?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if id.is_empty() {
            bail!("no container for kavka-{node} in project {}", self.project);
        }
        Ok(id)
    }

    fn docker(&self, args: &[&str]) -> anyhow::Result<Output> {
        run(Command::new("docker").args(args))
    }

    /// Docker's health status of `kavka-<node>` ("healthy", "starting", ...).
    pub fn health(&self, node: i32) -> anyhow::Result<String> {
        let id = self.container(node)?;
        let out = self.docker(&["inspect", "--format", "{{.State.Health.Status}}", &id])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until all three containers report healthy.
    pub async fn wait_healthy(&self, deadline: Duration) -> anyhow::Result<()> {
        crate::wait_until("all three containers healthy", deadline, || async {
            (1..=3).all(|n| self.health(n).is_ok_and(|h| h == "healthy"))
        })
        .await
    }

    /// SIGKILL (`docker kill`).
    pub fn kill(&self, node: i32) -> anyhow::Result<()> {
        self.docker(&["kill", &self.container(node)?]).map(|_| ())
    }

    /// Starts a killed or stopped container again.
    pub fn start(&self, node: i32) -> anyhow::Result<()> {
        self.docker(&["start", &self.container(node)?]).map(|_| ())
    }

    /// Freezes every process in the container (the cgroup freezer, like SIGSTOP).
    pub fn pause(&self, node: i32) -> anyhow::Result<()> {
        self.docker(&["pause", &self.container(node)?]).map(|_| ())
    }

    pub fn unpause(&self, node: i32) -> anyhow::Result<()> {
        self.docker(&["unpause", &self.container(node)?])
            .map(|_| ())
    }

    fn network(&self) -> String {
        format!("{}_kavka", self.project)
    }

    /// Cuts the container off the cluster network (and from the host's published port).
    pub fn disconnect(&self, node: i32) -> anyhow::Result<()> {
        let id = self.container(node)?;
        self.docker(&["network", "disconnect", "--force", &self.network(), &id])
            .map(|_| ())
    }

    /// Reconnects it under its service name.
    pub fn connect(&self, node: i32) -> anyhow::Result<()> {
        let id = self.container(node)?;
        let alias = format!("kavka-{node}");
        self.docker(&[
            "network",
            "connect",
            "--alias",
            &alias,
            &self.network(),
            &id,
        ])
        .map(|_| ())
    }

    /// Copies `kavka-<node>`'s data dir to `dest` (which must not exist).
    pub fn copy_data(&self, node: i32, dest: &Path) -> anyhow::Result<()> {
        let src = format!("{}:/var/lib/kavka", self.container(node)?);
        let dest = dest.to_string_lossy().to_string();
        self.docker(&["cp", &src, &dest]).map(|_| ())
    }

    /// The container's log, for failures.
    pub fn logs(&self, node: i32) -> String {
        self.compose(&[
            "logs",
            "--no-color",
            "--tail",
            "80",
            &format!("kavka-{node}"),
        ])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| e.to_string())
    }

    pub fn down(&self) -> anyhow::Result<()> {
        self.compose(&["down", "-v", "--remove-orphans", "-t", "5"])
            .map(|_| ())
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if self.owned {
            if std::thread::panicking() {
                for n in 1..=3 {
                    eprintln!("---- kavka-{n} ----\n{}", self.logs(n));
                }
            }
            if let Err(e) = self.down() {
                eprintln!("compose down failed: {e:#}");
            }
        }
    }
}
