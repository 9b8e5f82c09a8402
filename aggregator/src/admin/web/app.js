// The admin web page: search, live tail, stats, agents and sinks over the admin API,
// with the helpers of common.js, the chart of chart.js and the rules view of rules.js.
// Every value from the API goes into the DOM as text (textContent, text nodes, form
// values): log lines are hostile input, and this file never parses HTML.
"use strict";

(function () {
  const { TOKEN_KEY, LEVELS, $, el, clear, setStatus, token, headers, ApiError, api, str } = window.LogferryCommon;

  // The level's name as the page colours it: one of LEVELS, else "unknown".
  function levelName(ev) {
    const l = String((ev && ev.level) || "").toLowerCase();
    return LEVELS.includes(l) ? l : "unknown";
  }

  function eventCells(ev) {
    const source = ev && typeof ev.source === "object" && ev.source ? ev.source.path || ev.source.type : ev.source;
    const level = str(ev.level);
    return [
      el("td", { class: "ts" }, str(ev.timestamp)),
      el("td", { class: "level", data: { level } }, el("span", { class: "badge" }, level)),
      el("td", { class: "host" }, str(ev.host)),
      el("td", { class: "source" }, str(source)),
      el("td", { class: "message" }, str(ev.message)),
    ];
  }

  // The event each row shows, for the click that opens it (one listener per table).
  const rowEvents = new WeakMap();

  // An event row, coloured by its level (class level-<name>).
  function eventRow(ev) {
    const tr = el("tr", { class: "event level-" + levelName(ev), title: "click for the full event" }, ...eventCells(ev));
    rowEvents.set(tr, ev);
    return tr;
  }

  // Clicking a row of `tbody` shows or hides the full JSON in a row below it.
  function openRowsOnClick(tbody) {
    tbody.addEventListener("click", (e) => {
      const tr = e.target instanceof Element ? e.target.closest("tr.event") : null;
      if (!tr || !rowEvents.has(tr)) return;
      const next = tr.nextElementSibling;
      if (next && next.classList.contains("detail")) {
        next.remove();
        tr.classList.remove("open");
        return;
      }
      tr.classList.add("open");
      const pre = el("pre", { class: "json" }, JSON.stringify(rowEvents.get(tr), null, 2));
      tr.after(el("tr", { class: "detail" }, el("td", { colSpan: 5 }, pre)));
    });
  }

  // The checked levels, and the `level` query value (the lowest checked; the API answers
  // that level and above, the page then keeps the checked ones only).
  function levelFilter(fieldsetId) {
    const checked = Array.from($(fieldsetId).querySelectorAll("input[type=checkbox]:checked")).map((i) => i.value);
    if (checked.length === 0 || checked.length === LEVELS.length) return { set: null, min: "" };
    const min = LEVELS.find((l) => checked.includes(l)) || "";
    return { set: new Set(checked), min };
  }

  function levelOk(filter, ev) {
    return !filter.set || filter.set.has(String(ev.level || ""));
  }

  function params(pairs) {
    const p = new URLSearchParams();
    for (const [k, v] of pairs) if (v !== "" && v !== null && v !== undefined) p.set(k, v);
    return p;
  }

  // ---- tabs ----

  const loaders = {};

  function showTab(name) {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== "tab-" + name;
    if (loaders[name]) loaders[name]();
  }

  // ---- health ----

  async function health() {
    const h = $("health");
    try {
      const resp = await fetch("/readyz", { cache: "no-store", credentials: "omit" });
      let body = null;
      try {
        body = await resp.json();
      } catch (_) {
        body = null;
      }
      if (resp.ok) {
        h.dataset.state = "ready";
        h.textContent = "ready";
      } else {
        h.dataset.state = "not-ready";
        const reason = body && body.detail && body.detail.reason ? ": " + str(body.detail.reason) : "";
        h.textContent = "not ready" + reason;
      }
    } catch (e) {
      h.dataset.state = "down";
      h.textContent = "unreachable";
    }
  }

  // ---- search ----

  // Most result rows the page keeps: "More" stops there (narrow the search instead).
  // Rows are real table rows, so the browser's find, selection and copy work on all
  // of them; 10,000 render in well under a second.
  const MAX_SEARCH_ROWS = 10000;
  const search = { params: null, filter: null, cursor: null, shown: 0, hidden: 0 };

  async function runSearch(more) {
    const body = $("search-results").tBodies[0];
    if (!more) {
      const filter = levelFilter("search-levels");
      search.filter = filter;
      search.params = params([
        ["q", $("search-q").value],
        ["level", filter.min],
        ["source", $("search-source").value],
        ["host", $("search-host").value],
        ["since", $("search-since").value],
        ["until", $("search-until").value],
        ["limit", $("search-limit").value],
      ]);
      search.cursor = null;
      search.shown = 0;
      search.hidden = 0;
      clear(body);
    }
    const p = new URLSearchParams(search.params);
    if (more && search.cursor) p.set("cursor", search.cursor);
    const room = MAX_SEARCH_ROWS - search.shown;
    if (Number(p.get("limit") || 100) > room) p.set("limit", String(Math.max(1, room)));
    setStatus("search-status", "searching…");
    $("search-more").hidden = true;
    try {
      const page = await api("GET", "/api/logs?" + p.toString());
      const events = (Array.isArray(page.events) ? page.events : []).filter((ev) => ev && typeof ev === "object");
      // Rows are built off the page and added at once; the time to build, add and lay
      // them out is kept on the table (data-render-ms) for whoever measures the page.
      const started = performance.now();
      const rows = document.createDocumentFragment();
      for (const ev of events) {
        if (search.shown >= MAX_SEARCH_ROWS) break;
        if (levelOk(search.filter, ev)) {
          rows.append(eventRow(ev));
          search.shown++;
        } else {
          search.hidden++;
        }
      }
      body.append(rows);
      void body.offsetHeight;
      const table = $("search-results");
      table.dataset.renderMs = (performance.now() - started).toFixed(1);
      table.dataset.rows = String(search.shown);
      search.cursor = page.next_cursor || null;
      const full = search.shown >= MAX_SEARCH_ROWS;
      $("search-more").hidden = !search.cursor || full;
      let msg = search.shown + (search.shown === 1 ? " event" : " events");
      if (search.hidden) msg += " (" + search.hidden + " of other levels not shown)";
      if (search.cursor && full) msg += "; the page shows at most " + MAX_SEARCH_ROWS + ": narrow the search or the time range";
      else if (search.cursor) msg += "; more available";
      setStatus("search-status", msg);
    } catch (e) {
      setStatus("search-status", e.message, true);
    }
  }

  // ---- live tail ----

  // Tailed rows wait here and are added together a few times a second, so a burst of
  // events costs one layout, not one per event; never more than the kept lines wait.
  const tail = { controller: null, lagged: 0, count: 0, rows: 0, pending: [], timer: null };

  function tailSetRunning(running, text) {
    $("tail-start").disabled = running;
    $("tail-stop").disabled = !running;
    setStatus("tail-status", text, false);
  }

  function tailKeep() {
    return Math.max(10, Math.min(10000, Number($("tail-keep").value) || 500));
  }

  function tailAppend(ev, filter) {
    if (!levelOk(filter, ev)) return;
    tail.count++;
    tail.pending.push(ev);
    const keep = tailKeep();
    if (tail.pending.length > keep) tail.pending.splice(0, tail.pending.length - keep);
    if (tail.timer === null) tail.timer = setTimeout(tailFlush, 100);
  }

  // Adds the waiting rows and removes the oldest beyond the lines kept.
  function tailFlush() {
    if (tail.timer !== null) clearTimeout(tail.timer);
    tail.timer = null;
    const body = $("tail-results").tBodies[0];
    const rows = document.createDocumentFragment();
    for (const ev of tail.pending) rows.append(eventRow(ev));
    tail.rows += tail.pending.length;
    tail.pending = [];
    body.append(rows);
    const keep = tailKeep();
    // Each event is a row, plus a detail row when opened.
    while (tail.rows > keep && body.firstElementChild) {
      const first = body.firstElementChild;
      const second = first.nextElementSibling;
      first.remove();
      if (second && second.classList.contains("detail")) second.remove();
      tail.rows--;
    }
    if (tail.controller) setStatus("tail-status", "live: " + tail.count + " received", false);
  }

  // One SSE message (the lines of a block between blank lines).
  function tailMessage(block, filter) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? "" : line.slice(i + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return;
    const text = data.join("\n");
    if (event === "lagged") {
      tail.lagged += Number(text) || 0;
      $("tail-lagged").textContent = "fell behind: " + tail.lagged + " batches missed";
      return;
    }
    let ev;
    try {
      ev = JSON.parse(text);
    } catch (_) {
      ev = null;
    }
    if (ev === null || typeof ev !== "object" || Array.isArray(ev)) ev = { message: text };
    tailAppend(ev, filter);
  }

  async function startTail() {
    if (tail.controller) return;
    const filter = levelFilter("tail-levels");
    const p = params([
      ["q", $("tail-q").value],
      ["level", filter.min],
      ["source", $("tail-source").value],
      ["host", $("tail-host").value],
    ]);
    const controller = new AbortController();
    tail.controller = controller;
    tail.lagged = 0;
    tail.count = 0;
    tail.rows = 0;
    tail.pending = [];
    if (tail.timer !== null) clearTimeout(tail.timer);
    tail.timer = null;
    $("tail-lagged").textContent = "";
    clear($("tail-results").tBodies[0]);
    tailSetRunning(true, "connecting…");
    try {
      const resp = await fetch("/api/tail?" + p.toString(), {
        headers: headers({ Accept: "text/event-stream" }),
        signal: controller.signal,
        cache: "no-store",
        credentials: "omit",
      });
      if (!resp.ok) {
        let body = null;
        try {
          body = await resp.json();
        } catch (_) {
          body = null;
        }
        throw new ApiError(resp.status, body);
      }
      setStatus("tail-status", "live: waiting for events", false);
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          tailMessage(block, filter);
        }
      }
      if (tail.controller === controller) {
        tail.controller = null;
        tailFlush();
        tailSetRunning(false, "ended by the server (" + tail.count + " received)");
      }
    } catch (e) {
      if (tail.controller !== controller) return;
      tail.controller = null;
      if (e.name === "AbortError") {
        tailSetRunning(false, "stopped (" + tail.count + " received)");
      } else {
        tailSetRunning(false, "");
        setStatus("tail-status", e.message, true);
      }
    }
  }

  function stopTail() {
    const c = tail.controller;
    if (!c) return;
    tail.controller = null;
    c.abort();
    tailFlush();
    tailSetRunning(false, "stopped (" + tail.count + " received)");
  }

  // ---- stats ----

  function countTable(title, rows, other, total) {
    const max = Math.max(1, ...rows.map((r) => r[1]));
    const tbody = el("tbody");
    for (const [key, n] of rows) {
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.round((100 * n) / max) + "%";
      tbody.append(el("tr", { data: { key: String(key) } }, el("td", { class: "key" }, String(key)), el("td", { class: "num" }, String(n)), el("td", { class: "barcell" }, bar)));
    }
    if (other) tbody.append(el("tr", { class: "other" }, el("td", {}, "(others)"), el("td", { class: "num" }, String(other)), el("td", {})));
    if (rows.length === 0 && !other) tbody.append(el("tr", {}, el("td", { class: "muted", colSpan: 3 }, "none")));
    const caption = total === undefined ? title : title + " (" + total + ")";
    return el("table", { class: "counts", data: { stats: title } }, el("caption", {}, caption), tbody);
  }

  function counts(list) {
    return (Array.isArray(list) ? list : []).map((c) => [str(c.key), Number(c.count) || 0]);
  }

  async function loadStats() {
    setStatus("stats-status", "loading…");
    const out = $("stats-body");
    try {
      const s = await api("GET", "/api/stats");
      if (window.LogferryChart) window.LogferryChart.draw($("traffic-chart"), s.traffic || {});
      clear(out);
      const t = (s.traffic && s.traffic.total) || {};
      const levels = t.levels || {};
      out.append(
        el("p", { class: "summary" }, "Events: ", el("strong", { id: "stats-events" }, String(t.events || 0)), " over " + Math.round(t.seconds || 0) + " s (" + (Number(t.events_per_sec) || 0).toFixed(2) + "/s), intervals of " + str(s.traffic && s.traffic.interval_secs) + " s"),
      );
      out.append(countTable("Levels", [...LEVELS, "unknown"].map((l) => [l, Number(levels[l]) || 0]), 0));
      out.append(countTable("Top sources", counts(t.top_sources), t.other_sources));
      out.append(countTable("Top hosts", counts(t.top_hosts), t.other_hosts));
      out.append(countTable("Top namespaces", counts(t.top_namespaces), t.other_namespaces));
      if (t.access) {
        const classes = Array.isArray(t.access.status_classes) ? t.access.status_classes : [];
        out.append(countTable("HTTP status classes", classes.map((n, i) => [i + 1 + "xx", Number(n) || 0]), 0, t.access.requests));
        out.append(countTable("Top sections", counts(t.access.top_sections), t.access.other_sections));
      }
      const alerts = Array.isArray(s.alerts_firing) ? s.alerts_firing : [];
      out.append(genericTable("Alerts firing", alerts, ["rule", "group", "since"]));
      const n = s.notifications || {};
      out.append(countTable("Notifications", Object.keys(n).map((k) => [k, Number(n[k]) || 0]), 0));
      setStatus("stats-status", "as of " + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus("stats-status", e.message, true);
    }
  }

  // While the stats are shown and "auto" is ticked, they are fetched again every 5 s.
  function statsAutoRefresh() {
    if ($("stats-auto").checked && !$("tab-stats").hidden && !document.hidden) loadStats();
  }

  // ---- generic tables (agents, sinks) ----

  function genericTable(title, rows, columns) {
    const cols = columns || [];
    if (!columns) {
      for (const r of rows) for (const k of Object.keys(r || {})) if (!cols.includes(k)) cols.push(k);
    }
    const table = el("table", { class: "generic" }, el("caption", {}, title + " (" + rows.length + ")"));
    table.append(el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)))));
    const tbody = el("tbody");
    for (const r of rows) tbody.append(el("tr", {}, ...cols.map((c) => el("td", {}, str(r ? r[c] : "")))));
    if (rows.length === 0) tbody.append(el("tr", {}, el("td", { colSpan: Math.max(1, cols.length), class: "muted" }, "none")));
    table.append(tbody);
    return table;
  }

  async function loadAgents() {
    setStatus("agents-status", "loading…");
    try {
      const a = await api("GET", "/api/agents");
      const out = $("agents-body");
      clear(out);
      out.append(genericTable("Agents", Array.isArray(a.agents) ? a.agents : []));
      setStatus("agents-status", "as of " + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus("agents-status", e.message, true);
    }
  }

  async function loadSinks() {
    setStatus("sinks-status", "loading…");
    try {
      const s = await api("GET", "/api/sinks");
      const out = $("sinks-body");
      clear(out);
      out.append(genericTable("Sinks", Array.isArray(s.sinks) ? s.sinks : []));
      if (s.queue && typeof s.queue === "object") out.append(genericTable("Queue", [s.queue]));
      setStatus("sinks-status", "as of " + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus("sinks-status", e.message, true);
    }
  }

  // ---- wiring ----

  function tokenState() {
    $("token-state").textContent = token() ? "token set for this tab" : "no token";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
    loaders.stats = loadStats;
    loaders.rules = () => window.LogferryRules.load(false);
    loaders.agents = loadAgents;
    loaders.sinks = loadSinks;

    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      try {
        sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
      } catch (_) {
        // Storage refused (private mode): the token is then not kept.
      }
      $("token").value = "";
      tokenState();
    });
    $("token-clear").addEventListener("click", () => {
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch (_) {
        // Nothing stored.
      }
      tokenState();
    });

    $("search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      runSearch(false);
    });
    $("search-more").addEventListener("click", () => runSearch(true));

    $("tail-form").addEventListener("submit", (e) => {
      e.preventDefault();
      startTail();
    });
    $("tail-stop").addEventListener("click", stopTail);

    $("stats-refresh").addEventListener("click", loadStats);
    setInterval(statsAutoRefresh, 5000);
    openRowsOnClick($("search-results").tBodies[0]);
    openRowsOnClick($("tail-results").tBodies[0]);
    $("agents-refresh").addEventListener("click", loadAgents);
    $("sinks-refresh").addEventListener("click", loadSinks);
    window.LogferryRules.wire();
    tokenState();
    health();
    setInterval(health, 10000);
  });
})();
