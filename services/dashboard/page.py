"""The dashboard page: one self-contained HTML document (inline CSS, JS and SVG charts).

Nothing is fetched from elsewhere (the machines it runs on may have no network): the
script asks ``/api/summary`` every ``refresh_ms`` and redraws. Text from the stream (item
titles, user ids, reasons) is set with ``textContent`` only, never parsed as HTML, and
the Content-Security-Policy allows exactly this script and style, and requests to the
page's own origin.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root { --ink:#1d2330; --muted:#6b7385; --line:#e3e6ee; --card:#fff; --bg:#f4f6fa;
  --rec:#2f6fde; --click:#9aa3b5; --p50:#18a06b; --p95:#e08a1e; --worker:#8a56d6;
  --up:#18a06b; --starting:#e0a31e; --down:#d64545; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 10px 18px;
  background: #1d2330; color: #fff; }
header h1 { font-size: 16px; margin: 0; font-weight: 600; }
header .chips { display: flex; gap: 8px; flex-wrap: wrap; flex: 1; }
header .updated { color: #c3c9d6; font-size: 12px; white-space: nowrap; }
.chip { display: inline-flex; align-items: center; gap: 6px; padding: 2px 9px;
  border-radius: 11px; background: #2c3445; font-size: 12px; }
.dot { width: 8px; height: 8px; border-radius: 50%; background: var(--muted); }
.dot.up, .dot.reading { background: var(--up); }
.dot.starting, .dot.slow { background: var(--starting); }
.dot.down { background: var(--down); }
main { padding: 12px 18px; display: grid; gap: 12px; }
.kpis { display: grid; grid-template-columns: repeat(7, 1fr); gap: 12px; }
.kpi, .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
.kpi { padding: 8px 12px; }
.kpi .label { color: var(--muted); font-size: 11px; text-transform: uppercase;
  letter-spacing: .04em; }
.kpi .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
.kpi .note { color: var(--muted); font-size: 11px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.row { display: grid; gap: 12px; }
.charts { grid-template-columns: 1fr 1fr; }
.lower { grid-template-columns: 2fr 1fr; align-items: start; }
.card { padding: 10px 12px; min-width: 0; }
.card h2 { font-size: 13px; margin: 0 0 6px; display: flex; gap: 12px; align-items: baseline; }
.card h2 .legend { font-weight: 400; color: var(--muted); font-size: 11px; }
.legend i { display: inline-block; width: 10px; height: 3px; margin: 0 4px 2px 8px;
  vertical-align: middle; }
svg.chart { width: 100%; height: 190px; display: block; }
svg.chart text { font-size: 10px; fill: var(--muted); }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
.side { display: grid; gap: 12px; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; color: var(--muted); font-weight: 500; font-size: 11px;
  border-bottom: 1px solid var(--line); padding: 3px 6px; }
td { border-bottom: 1px solid var(--line); padding: 4px 6px; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.latest { max-height: 560px; overflow: auto; }
.latest ol { margin: 0; padding-left: 18px; }
.latest li { margin-bottom: 2px; }
.title { font-weight: 500; }
.id { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.score { color: var(--muted); font-variant-numeric: tabular-nums; margin-left: 4px; }
.reasons { display: block; color: #3d5a8a; font-size: 12px; }
.reason + .reason::before { content: " · "; color: var(--muted); }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11px;
  background: #eef1f7; }
.badge.degraded { background: #fde8e8; color: var(--down); }
.badge.READY { background: #e3f5ec; color: #11784f; }
.bar { display: grid; grid-template-columns: 70px 1fr 48px; gap: 8px; align-items: center;
  margin: 3px 0; }
.bar .fill { height: 10px; border-radius: 3px; background: var(--rec); min-width: 2px; }
.error { color: var(--down); font-size: 12px; }
"""

BODY = """
<header>
  <h1>StreamRec &middot; live</h1>
  <div class="chips" id="chips"></div>
  <div class="updated" id="updated">connecting&hellip;</div>
</header>
<main>
  <section class="kpis">
    <div class="kpi"><div class="label">Recommendations/s</div>
      <div class="value" id="kpi-rec-rate">&ndash;</div>
      <div class="note" id="kpi-rec-note"></div></div>
    <div class="kpi"><div class="label">Clicks/s</div>
      <div class="value" id="kpi-click-rate">&ndash;</div>
      <div class="note" id="kpi-click-note"></div></div>
    <div class="kpi"><div class="label">Click &rarr; answer p50</div>
      <div class="value" id="kpi-e2e-p50">&ndash;</div>
      <div class="note" id="kpi-e2e-note"></div></div>
    <div class="kpi"><div class="label">Click &rarr; answer p99</div>
      <div class="value" id="kpi-e2e-p99">&ndash;</div>
      <div class="note">from Kafka timestamps</div></div>
    <div class="kpi"><div class="label">In-worker p50</div>
      <div class="value" id="kpi-worker-p50">&ndash;</div>
      <div class="note" id="kpi-worker-note"></div></div>
    <div class="kpi"><div class="label">Dead letters</div>
      <div class="value" id="kpi-dlq">&ndash;</div>
      <div class="note" id="kpi-dlq-note"></div></div>
    <div class="kpi"><div class="label">Users in segments</div>
      <div class="value" id="kpi-users">&ndash;</div>
      <div class="note" id="kpi-users-note"></div></div>
  </section>
  <section class="row charts">
    <div class="card"><h2>Throughput <span class="legend">
      <i class="sw-rec"></i>recommendations/s <i class="sw-click"></i>clicks/s</span></h2>
      <svg class="chart" id="chart-throughput"></svg></div>
    <div class="card"><h2>Latency (ms) <span class="legend">
      <i class="sw-p50"></i>click&rarr;answer p50 <i class="sw-p95"></i>p95
      <i class="sw-worker"></i>in-worker p50</span></h2>
      <svg class="chart" id="chart-latency"></svg></div>
  </section>
  <section class="row lower">
    <div class="card"><h2>Latest recommendations <span class="legend" id="latest-note"></span></h2>
      <div class="latest"><table><thead><tr><th>time</th><th>user</th><th>segment</th>
        <th>model</th><th>ms</th><th>top items and why</th></tr></thead>
        <tbody id="latest"></tbody></table></div></div>
    <div class="side">
      <div class="card"><h2>Models</h2>
        <table><thead><tr><th>Triton model</th><th>version</th><th>state</th></tr></thead>
          <tbody id="models"></tbody></table>
        <div id="trainer" class="muted"></div>
        <div>In answers: <span id="versions-seen" class="muted"></span></div></div>
      <div class="card"><h2>Segments <span class="legend">users by latest segment</span></h2>
        <div id="segments"></div></div>
      <div class="card"><h2>Workers</h2>
        <table><thead><tr><th>worker</th><th>state</th><th>clicks</th><th>DLQ</th>
          <th>degraded</th><th>catalog</th></tr></thead><tbody id="workers"></tbody></table></div>
    </div>
  </section>
</main>
"""

SCRIPT = """
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const COLORS = {rec: "#2f6fde", click: "#9aa3b5", p50: "#18a06b", p95: "#e08a1e",
  worker: "#8a56d6"};
let refreshMs = 1500;

function $(id) { return document.getElementById(id); }
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}
function put(id, text) { $(id).textContent = text; }
function num(v, digits) {
  if (v === null || v === undefined) return "\\u2013";
  return Number(v).toLocaleString("en-US", {maximumFractionDigits: digits || 0});
}
function ms(v, digits) { return v === null ? "\\u2013" : num(v, digits) + " ms"; }
function host(url) { return url.replace(/^https?:\\/\\//, ""); }
function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString("en-GB", {hour12: false});
}

for (const [key, color] of Object.entries(COLORS)) {
  for (const sw of document.querySelectorAll(".sw-" + key)) sw.style.background = color;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function drawChart(node, seconds, series) {
  node.replaceChildren();
  const W = 640, H = 190, L = 40, R = 8, T = 8, B = 20;
  node.setAttribute("viewBox", "0 0 " + W + " " + H);
  node.setAttribute("preserveAspectRatio", "none");
  const values = series.flatMap(s => s.values.filter(v => v !== null));
  const top = niceMax(Math.max(0, ...values));
  const n = Math.max(seconds.length - 1, 1);
  const x = i => L + (W - L - R) * i / n;
  const y = v => T + (H - T - B) * (1 - v / top);
  for (const f of [0, 0.5, 1]) {
    node.append(svg("line", {x1: L, x2: W - R, y1: y(top * f), y2: y(top * f), class: "grid"}));
    const label = svg("text", {x: L - 4, y: y(top * f) + 3, "text-anchor": "end"});
    label.textContent = num(top * f, top < 10 ? 1 : 0);
    node.append(label);
  }
  const span = seconds.length;
  const ticks = [[0, "-" + span + " s", "start"],
    [Math.floor(n / 2), "-" + Math.round(span / 2) + " s", "middle"], [n, "now", "end"]];
  for (const [i, text, anchor] of ticks) {
    const label = svg("text", {x: x(i), y: H - 5, "text-anchor": anchor});
    label.textContent = text;
    node.append(label);
  }
  for (const s of series) {
    let points = [];
    const flush = () => {
      if (points.length > 1) {
        node.append(svg("polyline", {points: points.join(" "), fill: "none",
          stroke: s.color, "stroke-width": 1.8, "stroke-linejoin": "round"}));
      } else if (points.length === 1) {
        const [px, py] = points[0].split(",");
        node.append(svg("circle", {cx: px, cy: py, r: 2, fill: s.color}));
      }
      points = [];
    };
    s.values.forEach((v, i) => {
      if (v === null) flush(); else points.push(x(i).toFixed(1) + "," + y(v).toFixed(1));
    });
    flush();
  }
}

function chip(name, state, detail) {
  const c = el("span", "chip");
  c.append(el("span", "dot " + state));
  c.append(el("span", null, name + (detail ? " \\u00b7 " + detail : "")));
  c.title = state;
  c.dataset.component = name;
  c.dataset.state = state;
  return c;
}

function renderChips(stream, comp) {
  const chips = [chip("stream", stream.reader.state, stream.reader.titles + " titles")];
  for (const w of comp.workers || []) chips.push(chip("worker " + host(w.url), w.state));
  if (comp.trainer) chips.push(chip("trainer", comp.trainer.state));
  if (comp.triton) chips.push(chip("triton", comp.triton.state));
  $("chips").replaceChildren(...chips);
}

function renderKpis(stream, comp) {
  const t = stream.throughput, lat = stream.latency_ms;
  put("kpi-rec-rate", num(t.recommendations_per_s, 1));
  put("kpi-rec-note",
    "last " + stream.rate_s + " s \\u00b7 " + num(stream.totals.recommendations) + " read");
  put("kpi-click-rate", num(t.clicks_per_s, 1));
  put("kpi-click-note",
    "peak " + num(t.peak_recommendations_per_s) + " answers/s in " + stream.window_s + " s");
  put("kpi-e2e-p50", ms(lat.end_to_end.p50, 0));
  put("kpi-e2e-note", num(lat.end_to_end.n) + " joined in " + stream.window_s + " s");
  put("kpi-e2e-p99", ms(lat.end_to_end.p99, 0));
  put("kpi-worker-p50", ms(lat.worker.p50, 1));
  put("kpi-worker-note", "p99 " + ms(lat.worker.p99, 1));
  // Nobody can read the counters of a worker that does not answer: no number then.
  const dlq = comp.dead_letters;
  const known = dlq && dlq.workers_answering > 0;
  put("kpi-dlq", known ? num(dlq.total) : "\\u2013");
  put("kpi-dlq-note", dlq
    ? dlq.workers_answering + " of " + dlq.workers + " workers answering" : "polling\\u2026");
  put("kpi-users", num(stream.segments.users));
  put("kpi-users-note", stream.segments.sizes.length + " segments \\u00b7 "
    + num(stream.totals.degraded) + " degraded answers");
}

function renderLatest(latest) {
  const rows = latest.map(r => {
    const tr = el("tr");
    tr.dataset.user = r.user_id;
    tr.dataset.eventId = r.event_id;
    tr.append(el("td", "muted", clock(r.read_at)));
    tr.append(el("td", "id", r.user_id));
    tr.append(el("td", "num", r.segment === null ? "\\u2013" : r.segment));
    const model = el("td");
    const flag = r.degraded ? " degraded" : "";
    model.append(el("span", "badge" + flag, r.model_version + flag));
    tr.append(model);
    const e2e = r.end_to_end_ms === null ? "" : " / " + num(r.end_to_end_ms);
    tr.append(el("td", "num", num(r.latency_ms, 1) + e2e));
    const items = el("td");
    const ol = el("ol");
    for (const item of r.items.slice(0, 3)) {
      const li = el("li");
      li.append(item.title ? el("span", "title", item.title) : el("span", "id", item.item_id));
      li.append(el("span", "score", num(item.score, 3)));
      const why = el("span", "reasons");
      for (const reason of item.reasons) why.append(el("span", "reason", reason));
      li.append(why);
      ol.append(li);
    }
    items.append(ol);
    tr.append(items);
    return tr;
  });
  $("latest").replaceChildren(...rows);
  put("latest-note", "newest first \\u00b7 ms: in-worker / click\\u2192answer");
}

function renderModels(stream, comp) {
  const triton = comp.triton;
  const rows = [];
  if (triton && triton.state !== "down") {
    for (const m of triton.models) {
      const tr = el("tr");
      tr.dataset.model = m.name;
      tr.append(el("td", "id", m.name));
      tr.append(el("td", "num", m.version === null ? "\\u2013" : m.version));
      const st = el("td");
      st.append(el("span", "badge " + m.state, m.state));
      tr.append(st);
      rows.push(tr);
    }
  } else if (triton) {
    const tr = el("tr");
    const td = el("td", "error", "Triton " + triton.state + ": " + (triton.error || ""));
    td.colSpan = 3;
    tr.append(td);
    rows.push(tr);
  }
  $("models").replaceChildren(...rows);
  const tr = comp.trainer;
  let text = "";
  if (tr && tr.state !== "down") {
    text = "trainer" + (tr.state === "up" ? "" : " (" + tr.state + ")")
      + ": serving version " + tr.serving + " of [" + tr.versions.join(", ") + "]";
    const online = Object.entries(tr.online || {}).map(([v, o]) =>
      v + " HR@10 " + num(o.hr_at_10, 3) + " (" + o.judged + ")");
    if (online.length) text += " \\u00b7 online " + online.join(", ");
    const job = tr.last_job;
    if (job) {
      text += " \\u00b7 last job " + job.state + (job.decision ? " (" + job.decision + ")" : "");
    }
  } else if (tr) {
    text = "trainer down: " + (tr.error || "");
  }
  put("trainer", text);
  const seen = Object.entries(stream.model_versions).map(([v, n]) => v + " \\u00d7" + num(n));
  put("versions-seen", seen.length ? seen.join(", ") : "none yet");
}

function renderSegments(seg) {
  const top = Math.max(1, ...seg.sizes.map(s => s.users));
  const rows = seg.sizes.slice(0, 12).map(s => {
    const row = el("div", "bar");
    row.dataset.segment = s.segment;
    row.append(el("span", null, s.segment === "none" ? "no segment" : "segment " + s.segment));
    const track = el("div");
    const fill = el("div", "fill");
    fill.style.width = (100 * s.users / top).toFixed(1) + "%";
    track.append(fill);
    row.append(track);
    row.append(el("span", "num", num(s.users)));
    return row;
  });
  if (!rows.length) rows.push(el("div", "muted", "no answers read yet"));
  $("segments").replaceChildren(...rows);
}

function renderWorkers(workers) {
  $("workers").replaceChildren(...(workers || []).map(w => {
    const tr = el("tr");
    tr.dataset.worker = w.url;
    tr.append(el("td", "id", host(w.url)));
    const st = el("td");
    st.append(el("span", "dot " + w.state));
    st.append(document.createTextNode(" " + w.state));
    if (w.error) st.title = w.error;
    tr.append(st);
    for (const k of ["clicks", "dead_letters", "degraded", "catalog_items"]) {
      tr.append(el("td", "num", num(w[k])));
    }
    return tr;
  }));
}

function render(s) {
  refreshMs = s.refresh_ms || refreshMs;
  const stream = s.stream, comp = s.components;
  renderChips(stream, comp);
  renderKpis(stream, comp);
  drawChart($("chart-throughput"), stream.seconds, [
    {values: stream.throughput.clicks, color: COLORS.click},
    {values: stream.throughput.recommendations, color: COLORS.rec}]);
  drawChart($("chart-latency"), stream.seconds, [
    {values: stream.latency_ms.end_to_end_p95, color: COLORS.p95},
    {values: stream.latency_ms.end_to_end_p50, color: COLORS.p50},
    {values: stream.latency_ms.worker_p50, color: COLORS.worker}]);
  renderLatest(stream.latest);
  renderModels(stream, comp);
  renderSegments(stream.segments);
  renderWorkers(comp.workers);
  put("updated", "updated " + clock(s.generated_at));
}

async function refresh() {
  try {
    const resp = await fetch("/api/summary", {cache: "no-store"});
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    render(await resp.json());
  } catch (err) {
    put("updated", "dashboard server unreachable (" + err.message + ")");
  } finally {
    setTimeout(refresh, refreshMs);
  }
}
refresh();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy() -> str:
    """Only this page's own script and style run, and it talks to its own origin only."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256(SCRIPT)}",
            f"style-src {_sha256(STYLE)}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def render() -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>StreamRec live</title><style>{STYLE}</style></head>"
        f"<body>{BODY}<script>{SCRIPT}</script></body></html>\n"
    )
