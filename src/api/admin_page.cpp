// The page itself. Edit it as HTML: it is served byte for byte, and needs no build step.
#include "api/admin_page.hpp"

namespace sg::api {

namespace {

// clang-format off
constexpr std::string_view kPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>streamgate admin</title>
<style>
:root { --bg:#0f1419; --panel:#182029; --line:#2a3643; --text:#d8e0e8; --dim:#8a99a8;
        --ev:#5ab0ff; --dl:#7ddc8a; --bad:#ff7a6b; --warn:#ffc15a; }
* { box-sizing: border-box; }
body { margin: 0; padding: 16px 20px; background: var(--bg); color: var(--text);
       font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 8px 18px; margin-bottom: 14px; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 13px; margin: 0 0 8px; color: var(--dim); font-weight: 600;
     text-transform: uppercase; letter-spacing: .04em; }
.dim { color: var(--dim); }
.badge { padding: 1px 8px; border-radius: 9px; background: var(--line); font-size: 12px; }
.ok { background: #1f4d2c; color: #bff3c8; } .warn { background: #5a4a1c; color: #ffe3a8; }
.bad { background: #5c2320; color: #ffd0ca; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card, .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .v { font-size: 24px; font-variant-numeric: tabular-nums; }
.card .k { color: var(--dim); font-size: 12px; }
.row { display: grid; grid-template-columns: 2fr 1fr; gap: 10px; margin-top: 10px; }
@media (max-width: 800px) { .row { grid-template-columns: 1fr; } }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); }
th { color: var(--dim); font-weight: 500; font-size: 12px; }
td.n, th.n { text-align: right; }
svg { width: 100%; height: 160px; display: block; }
.legend > span { margin-right: 14px; font-size: 12px; }
.sw { display: inline-block; width: 10px; height: 3px; vertical-align: middle; margin-right: 4px; }
#status { font-size: 12px; }
#status.bad { background: none; color: var(--bad); }
</style>
</head>
<body>
<header>
  <h1>streamgate</h1>
  <span id="node" class="dim">…</span>
  <span id="state" class="badge">…</span>
  <span class="dim">broker <span id="broker">…</span></span>
  <span class="dim">version <span id="version">…</span></span>
  <span class="dim">up <span id="uptime">…</span></span>
  <span id="status" class="dim">connecting…</span>
</header>
<section class="cards">
  <div class="card"><div class="v" id="connections">–</div><div class="k">connections</div></div>
  <div class="card"><div class="v" id="orgs">–</div><div class="k">orgs</div></div>
  <div class="card"><div class="v" id="subscriptions">–</div><div class="k">subscriptions</div></div>
  <div class="card"><div class="v" id="events-rate">–</div><div class="k">events/s (<span id="events-total">0</span> total)</div></div>
  <div class="card"><div class="v" id="deliveries-rate">–</div><div class="k">deliveries/s (<span id="deliveries-total">0</span> total)</div></div>
  <div class="card"><div class="v" id="slow-closes">–</div><div class="k">slow-consumer closes</div></div>
  <div class="card"><div class="v" id="uploads">–</div><div class="k">uploads in progress</div></div>
  <div class="card"><div class="v" id="rooms">–</div><div class="k">chat rooms</div></div>
</section>
<section class="row">
  <div class="panel">
    <h2>Events and deliveries per second, last 2 minutes</h2>
    <svg id="chart" viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="events and deliveries per second">
      <line x1="0" y1="159" x2="600" y2="159" stroke="#2a3643"/>
      <polyline id="line-deliveries" fill="none" stroke="#7ddc8a" stroke-width="2" points=""/>
      <polyline id="line-events" fill="none" stroke="#5ab0ff" stroke-width="2" points=""/>
    </svg>
    <div class="legend"><span><i class="sw" style="background:#5ab0ff"></i>events/s</span><span><i class="sw" style="background:#7ddc8a"></i>deliveries/s</span><span class="dim">peak <span id="chart-max">0</span>/s</span></div>
  </div>
  <div class="panel">
    <h2>Top orgs by connections</h2>
    <table><thead><tr><th>org</th><th class="n">connections</th></tr></thead><tbody id="top-orgs"></tbody></table>
  </div>
</section>
<section class="panel" style="margin-top:10px">
  <h2>Cluster nodes</h2>
  <table><thead><tr><th>node</th><th>state</th><th class="n">connections</th><th class="n">orgs</th><th class="n">subscriptions</th><th class="n">events delivered</th></tr></thead><tbody id="nodes"></tbody></table>
  <div id="cluster-error" class="dim"></div>
</section>
<script>
"use strict";
// Polls /admin/stats every second. Counters come as totals; rates are the difference between
// two polls over the time between them. Every value goes into the page as text, never as
// HTML: org ids and node names come from tokens and hosts.
(function () {
  const kIntervalMs = 1000;
  const kPoints = 120;
  const history = [];
  let previous = null;
  const $ = (id) => document.getElementById(id);
  const fmt = (n) => Number(n).toLocaleString("en-US");
  const rate = (n) => (n >= 100 ? Math.round(n) : Math.round(n * 10) / 10).toLocaleString("en-US");
  function set(id, value) { $(id).textContent = value; }
  function duration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return d > 0 ? d + "d " + h + "h" : h > 0 ? h + "h " + m + "m" : m + "m " + (s % 60) + "s";
  }
  function badge(el, state) {
    el.textContent = state;
    el.className = "badge " + (state === "ready" || state === "up" ? "ok" : state === "draining" ? "warn" : "bad");
  }
  function rows(tbody, items, cells) {
    const out = items.map((item) => {
      const tr = document.createElement("tr");
      for (const [value, cls] of cells(item)) {
        const td = document.createElement("td");
        if (value instanceof Node) td.appendChild(value); else td.textContent = value;
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      return tr;
    });
    tbody.replaceChildren(...out);
  }
  function draw() {
    const max = Math.max(1, ...history.map((p) => Math.max(p.events, p.deliveries)));
    const line = (key) => history.map((p, i) =>
      ((kPoints - history.length + i) * 600 / (kPoints - 1)).toFixed(1) + "," +
      (158 - p[key] / max * 150).toFixed(1)).join(" ");
    $("line-events").setAttribute("points", line("events"));
    $("line-deliveries").setAttribute("points", line("deliveries"));
    set("chart-max", rate(max));
  }
  function show(s, at) {
    set("node", s.node);
    badge($("state"), s.state);
    set("broker", s.broker.kind + (s.broker.up ? " (up)" : " (unreachable)"));
    set("version", s.version + (s.commit ? " · " + s.commit.slice(0, 12) : ""));
    set("uptime", duration(s.uptimeSeconds));
    set("connections", fmt(s.connections));
    set("orgs", fmt(s.orgs));
    set("subscriptions", fmt(s.subscriptions));
    set("events-total", fmt(s.eventsPublished));
    set("deliveries-total", fmt(s.eventsDelivered));
    set("slow-closes", fmt(s.slowConsumerCloses));
    set("uploads", fmt(s.uploadsInProgress));
    set("rooms", fmt(s.rooms));
    if (previous) {
      const dt = Math.max(0.001, (at - previous.at) / 1000);
      const events = Math.max(0, s.eventsPublished - previous.s.eventsPublished) / dt;
      const deliveries = Math.max(0, s.eventsDelivered - previous.s.eventsDelivered) / dt;
      set("events-rate", rate(events));
      set("deliveries-rate", rate(deliveries));
      history.push({ events, deliveries });
      if (history.length > kPoints) history.shift();
      draw();
    }
    previous = { s, at };
    rows($("top-orgs"), s.topOrgs, (o) => [[String(o.orgId)], [fmt(o.connections), "n"]]);
    rows($("nodes"), s.nodes, (n) => {
      const b = document.createElement("span");
      badge(b, n.state);
      return [[n.node], [b], [fmt(n.connections), "n"], [fmt(n.orgs ?? 0), "n"],
              [fmt(n.subscriptions ?? 0), "n"], [fmt(n.eventsDelivered), "n"]];
    });
    set("cluster-error", s.clusterError ? "cluster view unavailable: " + s.clusterError : "");
  }
  async function poll() {
    const status = $("status");
    try {
      const r = await fetch("/admin/stats", { cache: "no-store", credentials: "same-origin" });
      if (r.status === 401) throw new Error("the API key was refused: reload the page to enter it");
      if (!r.ok) throw new Error("/admin/stats answered " + r.status);
      show(await r.json(), performance.now());
      status.textContent = "updated " + new Date().toLocaleTimeString("en-GB");
      status.className = "dim";
    } catch (e) {
      status.textContent = e.message;
      status.className = "bad";
    }
    setTimeout(poll, kIntervalMs);
  }
  poll();
})();
</script>
</body>
</html>
)html";
// clang-format on

}  // namespace

std::string_view admin_page() {
  return kPage;
}

}  // namespace sg::api
