// The Kavka console: one page, hash routes, reading the node's JSON API and its live
// event stream. When the node it reads stops answering it moves to another broker's
// console URL (learned from /api/cluster) and says so in a banner.
"use strict";

const SILENCE_MS = 4000;      // the stream ticks every second
const FETCH_TIMEOUT_MS = 3000;
const EVENTS_SHOWN = 60;
const EVENTS_KEPT = 400;      // before hiding internal topics' events

const st = {
  base: location.origin + "/", // the node this page reads
  nodeId: null,
  consoles: new Map(),         // broker id -> console URL
  es: null,
  lastHeard: Date.now(),
  switching: false,
  events: [],                  // newest first
  cluster: null,
  openedAt: Date.now(),
};

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const list = (v) => "[" + (v || []).join(",") + "]";
const clock = (ms) => { const d = new Date(ms); return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0"); };
const fmtBytes = (n) => n == null ? "-" : n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
const dash = (v) => (v === null || v === undefined) ? "-" : v;

async function getJson(path, base = st.base) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  try {
    const r = await fetch(new URL(path, base), { signal: ctl.signal });
    const body = await r.json().catch(() => ({ error: "not JSON (HTTP " + r.status + ")" }));
    if (!r.ok) throw new ApiError(body.error || ("HTTP " + r.status), r.status);
    return body;
  } finally {
    clearTimeout(timer);
  }
}

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

// ---- following the cluster -------------------------------------------------------

function rememberConsoles(cluster) {
  for (const b of cluster.brokers) if (b.console_url) st.consoles.set(b.id, b.console_url);
}

function showFollowing() {
  $("#following").textContent = st.nodeId == null ? "" : `via node ${st.nodeId} at ${st.base}`;
}

function connectEvents() {
  if (st.es) st.es.close();
  st.lastHeard = Date.now();
  const es = new EventSource(new URL("api/events", st.base));
  st.es = es;
  const heard = () => { st.lastHeard = Date.now(); };
  es.addEventListener("hello", (m) => { heard(); st.nodeId = JSON.parse(m.data).node_id; showFollowing(); });
  es.addEventListener("tick", heard);
  es.addEventListener("change", (m) => { heard(); addEvent(JSON.parse(m.data)); });
  es.onerror = () => { if (es === st.es && es.readyState !== EventSource.OPEN) lost("its event stream closed"); };
}

async function lost(why) {
  if (st.switching) return;
  st.switching = true;
  const lostBase = st.base, lostNode = st.nodeId, lostAt = Date.now();
  if (st.es) { st.es.close(); st.es = null; }
  // Maybe only the stream broke: the node itself may still answer.
  const order = [...st.consoles.entries()].sort((a, b) => a[0] - b[0]).map(([, url]) => url);
  const candidates = order.filter((u) => u !== lostBase).concat([lostBase]);
  for (;;) {
    for (const url of candidates) {
      try {
        const c = await getJson("api/cluster", url);
        st.base = url;
        st.nodeId = c.node_id;
        st.cluster = c;
        rememberConsoles(c);
        if (url !== lostBase) {
          banner(`Lost node ${dash(lostNode)} (${lostBase}) at ${clock(lostAt)}: ${why}; now following node ${c.node_id} at ${url}`, "moved");
        }
        st.switching = false;
        showFollowing();
        connectEvents();
        render();
        return;
      } catch (e) { /* try the next node */ }
    }
    banner(`Lost node ${dash(lostNode)} (${lostBase}) at ${clock(lostAt)}: ${why}; no other node answers yet, retrying…`, "");
    await new Promise((r) => setTimeout(r, 1500));
  }
}

function banner(text, cls) {
  const b = $("#banner");
  b.textContent = text;
  b.className = cls;
  b.hidden = false;
}

setInterval(() => {
  if (!st.switching && st.es && Date.now() - st.lastHeard > SILENCE_MS) {
    lost(`silent for ${SILENCE_MS / 1000} s`);
  }
}, 1000);

// ---- the event strip ---------------------------------------------------------------

function addEvent(e) {
  // After a move, the new node's recent events repeat what the old one showed.
  if (st.events.some((x) => x.text === e.text && Math.abs(x.at_ms - e.at_ms) < 15000)) return;
  st.events.push(e);
  // One redraw for a burst (a page opening gets the node's recent events at once).
  if (!eventsTimer) eventsTimer = setTimeout(flushEvents, 50);
  // What the page shows may have changed: read it again (not for replayed history).
  if (e.at_ms > st.openedAt) scheduleRender();
}

let eventsTimer = null;
function flushEvents() {
  eventsTimer = null;
  st.events.sort((a, b) => b.at_ms - a.at_ms);
  st.events.length = Math.min(st.events.length, EVENTS_KEPT);
  renderEvents();
}

function renderEvents() {
  const now = Date.now();
  const internal = $("#show-internal").checked;
  $("#events").innerHTML = st.events.filter((e) => internal || !(e.topic || "").startsWith("__")).slice(0, EVENTS_SHOWN).map((e) => {
    const gap = e.gap_ms != null ? `<span class="gap">failover gap ${(e.gap_ms / 1000).toFixed(1)} s</span>` : "";
    const attrs = e.kind === "partition" ? ` data-topic="${esc(e.topic)}" data-partition="${e.partition}" data-leader="${e.leader}"` : "";
    return `<li class="${now - e.at_ms < 5000 ? "fresh" : ""}"${attrs}><time>${clock(e.at_ms)}</time>${esc(e.text)}${gap}<span class="via">(node ${e.node_id})</span></li>`;
  }).join("") || `<li class="muted">No changes yet. Elections, ISR changes and fenced brokers show here as they happen.</li>`;
}

// ---- pages -------------------------------------------------------------------------

let renderTimer = null;
function scheduleRender() {
  if (renderTimer) return;
  renderTimer = setTimeout(() => { renderTimer = null; render(); }, 300);
}

async function render() {
  const route = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const page = $("#page");
  try {
    let html;
    switch (route[0]) {
      case "": html = await overview(); break;
      case "topics": html = route[1] ? await topicPage(route[1]) : await topicsPage(); break;
      case "groups": html = route[1] ? await groupPage(route[1]) : await groupsPage(); break;
      case "messages": html = await messagesPage(route[1], route[2]); break;
      default: html = `<p class="error">No such page: ${esc(location.hash)}</p>`;
    }
    if (html !== null) page.innerHTML = html;
    if (route[0] === "messages") bindMessages();
  } catch (e) {
    page.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

async function overview() {
  const c = await getJson("api/cluster");
  st.cluster = c;
  rememberConsoles(c);
  const rows = c.brokers.map((b) => `<tr data-broker-id="${b.id}">
      <td>${b.id}${b.id === c.controller_id ? " <span class=muted>(controller)</span>" : ""}</td>
      <td class="${b.state}">${b.state}</td>
      <td>${esc(b.rack || "-")}</td>
      <td>${b.endpoints.filter((e) => e.name === "grpc").map((e) => esc(e.host + ":" + e.port)).join(", ")}</td>
      <td>${b.console_url ? `<a href="${esc(b.console_url)}">${esc(b.console_url)}</a>` : "-"}</td></tr>`).join("");
  return `<h1>Cluster ${esc(c.cluster_id || "")}</h1>
    <div class="stats">
      <div class="stat">Brokers<b id="broker-count">${c.brokers.length}</b></div>
      <div class="stat">Active controller<b id="controller">${dash(c.controller_id)}</b></div>
      <div class="stat">Raft term<b id="term">${c.term}</b></div>
      <div class="stat">Topics<b id="topic-count">${c.topic_count}</b></div>
      <div class="stat">Partitions<b>${c.partition_count}</b></div>
      <div class="stat">Offline<b class="${c.offline_partitions ? "offline" : ""}">${c.offline_partitions}</b></div>
      <div class="stat">Under-replicated<b class="${c.under_replicated_partitions ? "under" : ""}">${c.under_replicated_partitions}</b></div>
    </div>
    <h2>Brokers</h2>
    <table id="brokers"><thead><tr><th>ID</th><th>State</th><th>Rack</th><th>Address</th><th>Console</th></tr></thead><tbody>${rows}</tbody></table>
    <p class="muted">Metadata offset ${c.metadata_offset}, as node ${c.node_id} sees it.</p>`;
}

async function topicsPage() {
  const ts = await getJson("api/topics");
  const rows = ts.map((t) => `<tr><td><a href="#/topics/${encodeURIComponent(t.name)}">${esc(t.name)}</a></td>
      <td class="num">${t.partitions}</td><td class="num">${dash(t.replication_factor)}</td>
      <td class="num ${t.offline_partitions ? "offline" : ""}">${t.offline_partitions}</td>
      <td class="num ${t.under_replicated_partitions ? "under" : ""}">${t.under_replicated_partitions}</td></tr>`).join("");
  return `<h1>Topics</h1><table id="topics"><thead><tr><th>Name</th><th class="num">Partitions</th><th class="num">RF</th><th class="num">Offline</th><th class="num">Under-replicated</th></tr></thead><tbody>${rows}</tbody></table>`;
}

async function topicPage(name) {
  const t = await getJson("api/topics/" + encodeURIComponent(name));
  const rows = t.partitions.map((p) => {
    const l = p.local || {};
    const state = p.leader == null ? `<span class="offline">offline</span>` : p.isr.length < p.replicas.length ? `<span class="under">under-replicated</span>` : "";
    return `<tr data-partition="${p.partition}" data-leader="${dash(p.leader)}">
      <td><a href="#/messages/${encodeURIComponent(t.name)}/${p.partition}">${p.partition}</a></td>
      <td class="num">${dash(p.leader)}</td><td class="num">${p.leader_epoch}</td>
      <td>${list(p.replicas)}</td><td>${list(p.isr)}</td><td>${p.elr.length ? list(p.elr) : "-"}</td>
      <td class="num">${dash(l.high_watermark)}</td><td class="num">${dash(l.log_end_offset)}</td>
      <td class="num">${fmtBytes(l.size_bytes)}</td><td>${state}</td></tr>`;
  }).join("");
  const configs = t.configs.filter((c) => !c.default).map((c) => `<tr><td>${esc(c.name)}</td><td>${esc(c.value)}</td></tr>`).join("");
  return `<h1>Topic ${esc(t.name)}</h1>
    <table id="partitions"><thead><tr><th>Partition</th><th class="num">Leader</th><th class="num">Epoch</th><th>Replicas</th><th>ISR</th><th>ELR</th>
      <th class="num">High watermark</th><th class="num">Log end</th><th class="num">Size</th><th></th></tr></thead><tbody>${rows}</tbody></table>
    <p class="muted">High watermark, log end and size are node ${t.node_id}'s replica ("-": not hosted there).</p>
    <h2>Configs set on the topic</h2>${configs ? `<table><tbody>${configs}</tbody></table>` : `<p class="muted">None: every config is the default.</p>`}`;
}

async function groupsPage() {
  const gs = await getJson("api/groups");
  const rows = gs.map((g) => `<tr><td><a href="#/groups/${encodeURIComponent(g.group_id)}">${esc(g.group_id)}</a></td><td>${esc(g.state)}</td><td>${esc(g.protocol_type || "-")}</td></tr>`).join("");
  return `<h1>Consumer groups</h1>${rows ? `<table id="groups"><thead><tr><th>Group</th><th>State</th><th>Protocol type</th></tr></thead><tbody>${rows}</tbody></table>` : `<p class="muted">No consumer groups.</p>`}`;
}

async function groupPage(id) {
  const g = await getJson("api/groups/" + encodeURIComponent(id));
  const total = g.partitions.reduce((s, p) => s + (p.lag || 0), 0);
  const rows = g.partitions.map((p) => `<tr data-topic="${esc(p.topic)}" data-partition="${p.partition}" data-lag="${dash(p.lag)}">
      <td>${esc(p.topic)}</td><td class="num">${p.partition}</td><td class="num">${dash(p.committed_offset)}</td>
      <td class="num">${dash(p.log_end_offset)}</td><td class="num lag">${dash(p.lag)}</td><td>${esc(p.member_id || "-")}</td></tr>`).join("");
  const members = g.members.map((m) => `<tr><td>${esc(m.member_id)}</td><td>${esc(m.client_id)}</td><td>${esc(m.client_host)}</td>
      <td>${m.assignment.map((a) => esc(a.topic) + " " + list(a.partitions)).join("; ")}</td></tr>`).join("");
  return `<h1>Group ${esc(g.group_id)}</h1>
    <div class="stats"><div class="stat">State<b>${esc(g.state)}</b></div><div class="stat">Coordinator<b>${g.coordinator}</b></div>
      <div class="stat">Generation<b>${g.generation_id}</b></div><div class="stat">Total lag<b id="total-lag">${total}</b></div></div>
    <h2>Lag per partition</h2>
    <table id="group-partitions"><thead><tr><th>Topic</th><th class="num">Partition</th><th class="num">Committed</th><th class="num">Log end</th><th class="num">Lag</th><th>Member</th></tr></thead><tbody>${rows}</tbody></table>
    <h2>Members</h2>${members ? `<table><thead><tr><th>Member</th><th>Client</th><th>Host</th><th>Assignment</th></tr></thead><tbody>${members}</tbody></table>` : `<p class="muted">No active members.</p>`}`;
}

// ---- message browser -----------------------------------------------------------------

const browse = { topic: "", partition: "0", from: "tail", at: "", limit: "50", view: "text", result: null, error: null };

function toHex(b64) {
  const s = atob(b64);
  let out = "";
  for (let i = 0; i < s.length; i++) out += s.charCodeAt(i).toString(16).padStart(2, "0") + (i % 16 === 15 ? "\n" : " ");
  return out.trim();
}

function showBytes(v) {
  if (v === null) return `<span class="muted">null</span>`;
  if (browse.view === "hex") return `<pre class="val">${esc(toHex(v.base64))}</pre>`;
  if (v.text === null) return `<pre class="val muted">(binary) ${esc(toHex(v.base64))}</pre>`;
  if (browse.view === "json") {
    try { return `<pre class="val">${esc(JSON.stringify(JSON.parse(v.text), null, 2))}</pre>`; } catch (e) { return `<pre class="val">${esc(v.text)} <span class="error">(not JSON)</span></pre>`; }
  }
  return `<pre class="val">${esc(v.text)}</pre>`;
}

async function messagesPage(topic, partition) {
  if (topic !== undefined && topic !== browse.topic) { browse.topic = topic; browse.result = null; }
  if (partition !== undefined) browse.partition = partition;
  if (document.activeElement && document.activeElement.closest && document.activeElement.closest("form.browse")) return null;
  const r = browse.result;
  const rows = r ? r.messages.map((m) => `<tr data-offset="${m.offset}"><td class="num">${m.offset}</td><td>${new Date(m.timestamp_ms).toISOString()}</td>
      <td>${showBytes(m.key)}</td><td>${showBytes(m.value)}</td>
      <td>${m.headers.map((h) => esc(h.key) + "=" + (h.value ? esc(h.value.text ?? "(binary)") : "null")).join("<br>") || "-"}</td></tr>`).join("") : "";
  return `<h1>Messages</h1>
    <form class="browse" id="browse">
      <label>Topic<input name="topic" value="${esc(browse.topic)}" required></label>
      <label>Partition<input name="partition" value="${esc(browse.partition)}" size="4"></label>
      <label>From<select name="from">${[["tail", "latest"], ["offset", "offset"], ["timestamp", "time (ms)"]].map(([v, l]) => `<option value="${v}"${browse.from === v ? " selected" : ""}>${l}</option>`).join("")}</select></label>
      <label>Offset / time<input name="at" value="${esc(browse.at)}" size="14"></label>
      <label>Limit<input name="limit" value="${esc(browse.limit)}" size="4"></label>
      <label>View<select name="view">${["text", "hex", "json"].map((v) => `<option${browse.view === v ? " selected" : ""}>${v}</option>`).join("")}</select></label>
      <button type="submit">Read</button>
    </form>
    ${browse.error ? `<p class="error">${esc(browse.error)}</p>` : ""}
    ${r ? `<p class="muted">${esc(r.topic)}-${r.partition}: log start ${r.log_start_offset}, high watermark ${r.high_watermark}, next ${r.next_offset}.</p>
      <table id="messages"><thead><tr><th class="num">Offset</th><th>Timestamp</th><th>Key</th><th>Value</th><th>Headers</th></tr></thead><tbody>${rows || `<tr><td colspan="5" class="muted">No messages there.</td></tr>`}</tbody></table>` : ""}`;
}

function bindMessages() {
  const f = $("#browse");
  if (!f || f.dataset.bound) return;
  f.dataset.bound = "1";
  f.view.addEventListener("change", () => { browse.view = f.view.value; f.blur(); render(); });
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    Object.assign(browse, { topic: f.topic.value.trim(), partition: f.partition.value.trim(), from: f.from.value, at: f.at.value.trim(), limit: f.limit.value.trim(), view: f.view.value });
    const q = new URLSearchParams({ limit: browse.limit });
    if (browse.from !== "tail") q.set(browse.from, browse.at);
    try {
      browse.result = await getJson(`api/topics/${encodeURIComponent(browse.topic)}/partitions/${encodeURIComponent(browse.partition)}/messages?${q}`);
      browse.error = null;
    } catch (e) {
      browse.result = null;
      browse.error = e.message;
    }
    document.activeElement && document.activeElement.blur();
    render();
  });
}

// ---- start -------------------------------------------------------------------------

window.addEventListener("hashchange", render);
// A page left for another (kept in the back/forward cache) lets go of its event stream:
// a browser allows only six connections to one host over HTTP/1.1.
window.addEventListener("pagehide", () => { if (st.es) { st.es.close(); st.es = null; } });
window.addEventListener("pageshow", (ev) => { if (ev.persisted) { st.lastHeard = Date.now(); connectEvents(); } });
$("#show-internal").addEventListener("change", renderEvents);
setInterval(() => { if (!st.switching && !location.hash.startsWith("#/messages")) render(); }, 3000);
(async () => {
  try {
    const c = await getJson("api/cluster");
    st.cluster = c;
    st.nodeId = c.node_id;
    rememberConsoles(c);
    showFollowing();
  } catch (e) {
    banner(`This node does not answer: ${e.message}`, "");
  }
  renderEvents();
  connectEvents();
  render();
})();
