//! A cluster of `kavka server` processes on 127.0.0.1 with one shared voter list.

use crate::node::{Node, NodeOptions, free_port};

pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts nodes 1..=roles.len(); `roles[i]` is node i+1's `--roles`. Every node with
    /// the controller role is a voter.
    pub async fn start(roles: &[&str], extra_args: &[&str]) -> anyhow::Result<Cluster> {
        Self::start_with(roles, extra_args, kavka_tls::Transport::plaintext()).await
    }

    /// [`Cluster::start`] whose nodes the harness reaches over `transport` (TLS when
    /// their gRPC ports speak it).
    pub async fn start_with(
        roles: &[&str],
        extra_args: &[&str],
        transport: kavka_tls::Transport,
    ) -> anyhow::Result<Cluster> {
        let ports: Vec<u16> = roles
            .iter()
            .map(|_| free_port())
            .collect::<Result<_, _>>()?;
        // Voters name their controller listeners: a port of their own, not the client's.
        let voters: Vec<String> = roles
            .iter()
            .enumerate()
            .filter(|(_, r)| r.contains("controller"))
            .map(|(i, _)| Ok(format!("{}@127.0.0.1:{}", i + 1, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let voters = voters.join(",");
        // Start every node before waiting on any: a quorum needs a majority up.
        let starts = roles
            .iter()
            .zip(&ports)
            .enumerate()
            .map(|(i, (role, port))| {
                Node::start(NodeOptions {
                    node_id: Some(i as i32 + 1),
                    roles: Some(role.to_string()),
                    voters: Some(voters.clone()),
                    port: Some(*port),
                    args: extra_args.iter().map(|s| s.to_string()).collect(),
                    transport: transport.clone(),
                    ..NodeOptions::default()
                })
            });
        let mut nodes = Vec::new();
        for r in futures_join_all(starts).await {
            nodes.push(r?);
        }
        Ok(Cluster { nodes })
    }

    /// Starts node `id` with `roles` into the running cluster, with the voter list and
    /// extra flags of its first node, and waits until it serves (a broker: registered
    /// and unfenced).
    pub async fn add_node(&mut self, id: i32, roles: &str) -> anyhow::Result<()> {
        let like = self
            .nodes
            .first()
            .map(|n| n.options().clone())
            .ok_or_else(|| anyhow::anyhow!("the cluster has no node to copy flags from"))?;
        let node = Node::start(NodeOptions {
            node_id: Some(id),
            roles: Some(roles.to_string()),
            port: None,
            ..like
        })
        .await?;
        self.nodes.push(node);
        Ok(())
    }

    /// All gRPC addresses, as a bootstrap list.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// All Kafka listener addresses of brokers, as `bootstrap.servers`.
    pub fn kafka_bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.is_broker())
            .map(Node::kafka_addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&mut self, id: i32) -> &mut Node {
        let i = self
            .nodes
            .iter()
            .position(|n| n.node_id() == id)
            .unwrap_or_else(|| panic!("no node {id}"));
        &mut self.nodes[i]
    }
}

/// Runs futures concurrently on the current task and collects their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    for r in results.into_iter().flatten() {
        out.push(r);
    }
    out
}
