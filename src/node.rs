//! One `kavka server` process under test.

use anyhow::{Context, bail};
use kavka_client::Client;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a node may take to start on a loaded 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The `kavka` binary under test: `$KAVKA_BIN`, or built once from this workspace.
pub fn kavka_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("KAVKA_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test> -> target/<profile>/kavka
        let exe = std::env::current_exe().unwrap_or_default();
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "kavka", "--bin", "kavka"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        if let Some(target_dir) = profile_dir.parent() {
            cmd.arg("--target-dir").arg(target_dir);
        }
        let status = cmd.status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "building the kavka binary failed: {status:?}"
        );
        profile_dir.join("kavka")
    })
    .clone()
}

/// Polls `cond` every 50 ms until it holds or `deadline` passes; the error says what
/// was awaited.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out after {deadline:?} waiting for {what}")
}

#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Extra `kavka server` flags.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// `--node-id` (default 1).
    pub node_id: Option<i32>,
    /// `--roles` (default: controller,broker).
    pub roles: Option<String>,
    /// `--controller-voters` (default: this node alone).
    pub voters: Option<String>,
    /// A port chosen in advance (clusters need every voter's port up front).
    pub port: Option<u16>,
    /// How the harness reaches the node's gRPC port (TLS when the node serves it).
    pub transport: kavka_tls::Transport,
}

impl NodeOptions {
    fn has_broker(&self) -> bool {
        self.roles.as_deref().is_none_or(|r| r.contains("broker"))
    }
}

/// A running (or stopped) `kavka server` with its own port and data directory; killed
/// when dropped.
pub struct Node {
    child: Option<Child>,
    port: u16,
    /// The controller listener's port of a node alone (a cluster's nodes take theirs
    /// from their voter entries).
    controller_port: u16,
    /// The Kafka wire-protocol listener's port (kept across restarts).
    kafka_port: u16,
    /// The HTTP listener's port (kept across restarts).
    http_port: u16,
    options: NodeOptions,
    dir: tempfile::TempDir,
}

/// A port that is free now, below Linux's ephemeral range (32768+) so that outgoing
/// connections, which take ephemeral ports, cannot grab it before the node binds it.
/// Spread by process id and a counter, so parallel tests rarely even try the same one.
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + seed.wrapping_add(n.wrapping_mul(37)) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Node {
    pub async fn start(options: NodeOptions) -> anyhow::Result<Node> {
        let dir = tempfile::Builder::new().prefix("kavka-node-").tempdir()?;
        let mut node = Node {
            child: None,
            port: 0,
            controller_port: 0,
            kafka_port: 0,
            http_port: 0,
            options,
            dir,
        };
        if let Some(port) = node.options.port {
            node.port = port;
            node.controller_port = free_port()?;
            node.kafka_port = free_port()?;
            node.http_port = free_port()?;
            node.spawn_and_wait().await?;
            return Ok(node);
        }
        // A port picked free can be taken before the node binds it: try a few.
        let mut last = None;
        for _ in 0..5 {
            node.port = free_port()?;
            node.controller_port = free_port()?;
            node.kafka_port = free_port()?;
            node.http_port = free_port()?;
            match node.spawn_and_wait().await {
                Ok(()) => return Ok(node),
                Err(e) if node.log().contains("cannot listen") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no free port")))
    }

    /// Starts a node without waiting for it to be ready (for nodes expected never to be).
    pub fn start_unready(options: NodeOptions) -> anyhow::Result<Node> {
        let dir = tempfile::Builder::new().prefix("kavka-node-").tempdir()?;
        let mut node = Node {
            child: None,
            port: free_port()?,
            controller_port: free_port()?,
            kafka_port: free_port()?,
            http_port: free_port()?,
            options,
            dir,
        };
        node.spawn()?;
        Ok(node)
    }

    /// How this node was started.
    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    pub fn options_voters(&self) -> Option<String> {
        self.options.voters.clone()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn is_broker(&self) -> bool {
        self.options.has_broker()
    }

    fn is_controller(&self) -> bool {
        self.options
            .roles
            .as_deref()
            .is_none_or(|r| r.contains("controller"))
    }

    /// Where a controller serves Raft and broker sessions (its controller listener): its
    /// own entry in the voter list, or, alone, a port of its own.
    pub fn controller_addr(&self) -> Option<String> {
        if !self.is_controller() {
            return None;
        }
        let id = self.options.node_id.unwrap_or(1);
        match &self.options.voters {
            Some(v) => v.split(',').find_map(|entry| {
                let (vid, addr) = entry.trim().split_once('@')?;
                (vid.parse() == Ok(id)).then(|| addr.to_string())
            }),
            None => Some(format!("127.0.0.1:{}", self.controller_port)),
        }
    }

    /// Where Kafka clients connect (the node's PLAINTEXT listener).
    pub fn kafka_addr(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    /// The node's HTTP listener: metrics, health, console.
    pub fn http_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("kavka.log")
    }

    /// Everything the node wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut cmd = Command::new(kavka_bin());
        cmd.arg("server")
            .arg("--node-id")
            .arg(self.options.node_id.unwrap_or(1).to_string())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.addr())
            .args(
                self.options
                    .roles
                    .iter()
                    .flat_map(|r| ["--roles".to_string(), r.clone()]),
            )
            .args(
                self.options
                    .voters
                    .iter()
                    .flat_map(|v| ["--controller-voters".to_string(), v.clone()]),
            )
            .args(
                (self.is_controller() && self.options.voters.is_none())
                    .then(|| {
                        [
                            "--controller-listen".to_string(),
                            format!("127.0.0.1:{}", self.controller_port),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
            .args(
                (!self.options.args.iter().any(|a| a == "--kafka-listeners"))
                    .then(|| {
                        [
                            "--kafka-listeners".to_string(),
                            format!("PLAINTEXT://{}", self.kafka_addr()),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
            .args(
                (!self.options.args.iter().any(|a| a == "--http-listen"))
                    .then(|| ["--http-listen".to_string(), self.http_addr()])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.options.args)
            .env("KAVKA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().context("cannot start kavka")?);
        Ok(())
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        self.wait_ready().await
    }

    /// Starts the stopped process without waiting for it to be ready (a cluster restart
    /// launches every node first: none is ready before a quorum is up).
    pub fn launch(&mut self) -> anyhow::Result<()> {
        self.spawn()
    }

    /// Waits until the node serves, or fails with its log.
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let end = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!("kavka exited during start ({status}):\n{}", self.log());
            }
            if self.is_serving().await {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "kavka did not become ready within {START_DEADLINE:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the node reports its main service SERVING (a broker: once unfenced).
    pub async fn is_serving(&self) -> bool {
        let service = if self.options.has_broker() {
            "kavka.v1.BrokerService"
        } else {
            "kavka.v1.ControllerService"
        };
        let Ok(endpoint) = self.options.transport.endpoint(&self.addr()) else {
            return false;
        };
        let Ok(channel) = endpoint
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
        else {
            return false;
        };
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .is_ok_and(|r| {
                r.into_inner().status()
                    == tonic_health::pb::health_check_response::ServingStatus::Serving
            })
    }

    /// The options the next start uses (e.g. to restart with a wrong flag).
    pub fn options_mut(&mut self) -> &mut NodeOptions {
        &mut self.options
    }

    pub fn node_id(&self) -> i32 {
        self.options.node_id.unwrap_or(1)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts a stopped node again on the same port and data directory.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.spawn_and_wait().await
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect_with(&self.addr(), &self.options.transport).await?)
    }

    /// The process's exit status once it has exited by itself (forgetting the process);
    /// `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the process freezes (a GC pause, a stalled VM) with its sockets open.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Starts the node again on the same port and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn_and_wait().await
    }

    /// Runs the CLI against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, b"")
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_cli(&self.addr(), args, stdin)
    }
}

/// Runs `kavka --bootstrap <addr> args...` with `stdin`, bounded in time by the CLI's own
/// deadlines.
pub fn run_cli(addr: &str, args: &[&str], stdin: &[u8]) -> Output {
    run_cli_with_env(addr, args, stdin, &[])
}

/// [`run_cli`] with extra environment variables (a password in `KAVKA_PASSWORD`).
pub fn run_cli_with_env(addr: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut child = Command::new(kavka_bin())
        .envs(env.iter().copied())
        .arg("--bootstrap")
        .arg(addr)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kavka {args:?}: {e}"));
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("kavka {args:?} failed: {e}"))
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        // KAVKA_TEST_LOG_DIR keeps every node's whole log (the data dir goes with the test).
        if let Some(dir) = std::env::var_os("KAVKA_TEST_LOG_DIR") {
            let dir = std::path::PathBuf::from(dir);
            let name = format!(
                "{}-node{}.log",
                self.dir
                    .path()
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
                self.node_id()
            );
            let _ = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::copy(self.log_path(), dir.join(name)));
        }
        // A failing test shows what each node said.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "---- node {} log (last {} lines) ----",
                self.node_id(),
                tail.len()
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
