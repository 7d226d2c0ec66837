// The status page's script: reads /status every 2 s and renders it; sends drain/enable/refresh with the
// admin token. Served from /status.js so the page's Content-Security-Policy needs no inline script.
// Everything is written with textContent: node names and errors are never parsed as HTML.
"use strict";

(function () {
  const PERIOD_MS = 2000;
  // The admin token lives in this variable only: never in storage, a cookie or the URL.
  let token = null;
  // The previous sample of each node's response counter, for requests/s.
  let previous = null;

  const $ = (id) => document.getElementById(id);

  function setText(id, value) {
    $(id).textContent = value === undefined || value === null ? "–" : String(value);
  }

  function cell(row, text, className, header) {
    const c = document.createElement(header ? "th" : "td");
    if (header) c.scope = "row";
    c.textContent = text === undefined || text === null ? "–" : String(text);
    if (className) c.className = className;
    row.appendChild(c);
    return c;
  }

  function uptime(seconds) {
    if (typeof seconds !== "number") return "–";
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = Math.floor(seconds % 60);
    if (d > 0) return d + "d " + h + "h " + m + "m";
    if (h > 0) return h + "h " + m + "m " + s + "s";
    if (m > 0) return m + "m " + s + "s";
    return s + "s";
  }

  // The reason a node is in its health state, wherever /status puts it (a plain field, or a health object).
  function reasonOf(node) {
    const h = node.health;
    const candidates = [
      node.reason,
      node.health_reason,
      h && typeof h === "object" ? h.reason : undefined,
      node.last_check && typeof node.last_check === "object" ? node.last_check.reason : undefined,
    ];
    for (const c of candidates) {
      if (typeof c === "string" && c !== "") return c;
    }
    return "";
  }

  function rates(status, now) {
    const counts = {};
    for (const n of status.nodes || []) counts[n.name] = n.requests;
    const out = {};
    if (previous && now > previous.at) {
      const seconds = (now - previous.at) / 1000;
      for (const name of Object.keys(counts)) {
        const before = previous.counts[name];
        const after = counts[name];
        if (typeof before === "number" && typeof after === "number" && after >= before) {
          out[name] = ((after - before) / seconds).toFixed(1);
        }
      }
    }
    previous = { at: now, counts: counts };
    return out;
  }

  function actionButton(label, node, action) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.node = node;
    b.dataset.action = action;
    b.className = "action";
    b.disabled = token === null;
    b.setAttribute("aria-label", label + " " + node);
    b.addEventListener("click", () => act(node, action));
    return b;
  }

  function renderNodes(status, perSecond) {
    const body = $("nodes-body");
    body.replaceChildren();
    for (const n of status.nodes || []) {
      const row = document.createElement("tr");
      row.dataset.node = n.name;
      cell(row, n.name, null, true);
      cell(row, n.url);
      // Words and a symbol, not colour alone.
      const healthy = n.healthy === true;
      cell(row, healthy ? "✔ healthy" : "✖ down", healthy ? "health-healthy" : "health-down");
      cell(row, reasonOf(n) || (healthy ? "" : "no reason reported"), "reason");
      cell(row, n.draining ? "yes (drained)" : "no", n.draining ? "draining-yes" : "draining-no");
      cell(row, n.inflight, "num inflight");
      cell(row, n.owned_keys, "num owned-keys");
      cell(row, perSecond[n.name] === undefined ? "–" : perSecond[n.name], "num rate");
      const actions = cell(row, "");
      actions.appendChild(actionButton(n.draining ? "Enable" : "Drain", n.name, n.draining ? "enable" : "drain"));
      actions.appendChild(actionButton("Refresh", n.name, "refresh"));
      body.appendChild(row);
    }
  }

  function renderPairs(id, object, render) {
    const body = $(id);
    body.replaceChildren();
    for (const key of Object.keys(object || {}).sort()) {
      const row = document.createElement("tr");
      row.dataset.key = key;
      cell(row, key.replace(/_/g, " "), null, true);
      render(row, object[key]);
      body.appendChild(row);
    }
  }

  function render(status) {
    setText("version", status.version);
    setText("uptime", uptime(status.uptime_seconds));
    const config = status.config || {};
    setText("config-version", config.version);
    setText("updated", new Date().toLocaleTimeString());

    renderNodes(status, rates(status, Date.now()));

    const table = status.table || {};
    setText("table-entries", table.entries);
    setText("table-max", typeof table.max_entries === "number" ? table.max_entries.toLocaleString("en-US") : table.max_entries);
    setText("table-inserts", table.inserts);
    setText("table-evictions", table.evictions);
    setText("table-expiries", table.expiries);
    renderPairs("kinds-body", table.by_kind, (row, n) => cell(row, n, "num"));

    const counters = status.counters || {};
    renderPairs("refreshes-body", counters.refreshes, (row, r) => {
      cell(row, r && r.ok, "num");
      cell(row, r && r.failed, "num");
    });
    renderPairs("replays-body", counters.replays, (row, n) => cell(row, n, "num"));
    renderPairs("routes-body", counters.routes, (row, n) => cell(row, n, "num"));

    setText("reload-version", config.version);
    setText("reload-applied", config.applied);
    setText("reload-failed", config.failed);
    setText("reload-error", config.last_error ? config.last_error : "none");
  }

  function headers() {
    return token === null ? {} : { Authorization: "Bearer " + token };
  }

  function problem(text) {
    const p = $("connection");
    p.textContent = text;
    p.className = "problem";
  }

  async function poll() {
    try {
      const response = await fetch("/status", { headers: headers(), cache: "no-store" });
      if (response.status === 401) {
        problem(token === null
          ? "This admin listener needs the admin token to show status: enter it below."
          : "The admin token was refused.");
        return;
      }
      if (!response.ok) {
        problem("/status answered " + response.status + ".");
        return;
      }
      render(await response.json());
      const p = $("connection");
      p.textContent = "Live: refreshed every " + PERIOD_MS / 1000 + " s.";
      p.className = "";
    } catch (e) {
      problem("Cannot reach tokenroute's admin API (" + e.message + ").");
    }
  }

  async function act(node, action) {
    if (token === null) return;
    const result = $("action-result");
    result.className = "";
    result.textContent = action + " " + node + "…";
    try {
      const response = await fetch("/nodes/" + encodeURIComponent(node) + "/" + action, {
        method: "POST",
        headers: headers(),
        cache: "no-store",
      });
      let detail = "";
      try {
        const body = await response.json();
        detail = body && body.error ? ": " + body.error : "";
      } catch (_) {
        detail = "";
      }
      if (response.ok) {
        result.textContent = action + " " + node + ": done.";
      } else {
        result.className = "problem";
        result.textContent = action + " " + node + " failed (" + response.status + ")" + detail;
      }
    } catch (e) {
      result.className = "problem";
      result.textContent = action + " " + node + " failed: " + e.message;
    }
    poll();
  }

  function setToken(value) {
    token = value === "" ? null : value;
    $("token").value = "";
    $("token-state").textContent = token === null
      ? "No token: drain, enable and refresh are disabled. The token stays in this tab's memory only."
      : "Token set for this tab (memory only): actions are enabled.";
    for (const b of document.querySelectorAll("button.action")) b.disabled = token === null;
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      setToken($("token").value.trim());
    });
    $("forget-token").addEventListener("click", () => setToken(""));
    poll();
    setInterval(poll, PERIOD_MS);
  });
})();
