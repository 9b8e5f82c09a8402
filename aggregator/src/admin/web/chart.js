// The traffic chart of the admin page: events per second by level over time, drawn as
// plain SVG from GET /api/stats (one line per level, one point per summary interval,
// missing intervals drawn as zero). Builds elements with createElementNS and text nodes
// only; colours and dash patterns come from style.css (classes level-<name>), so a level
// looks the same in the chart and in the event rows, and the lines differ by dash
// pattern as well as by colour.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "unknown"];
  // Drawing area in SVG units; the SVG scales to the page's width.
  const W = 900;
  const H = 240;
  const PAD = { left: 56, right: 12, top: 12, bottom: 28 };
  // Most points drawn per line (the stats keep 360 intervals by default).
  const MAX_POINTS = 2000;

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  // A round step for about `n` ticks up to `max`.
  function niceStep(max, n) {
    const raw = max / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  function fmtRate(v) {
    if (v >= 100) return String(Math.round(v));
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  function fmtTime(ms) {
    const d = new Date(ms);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0") + ":" + String(d.getSeconds()).padStart(2, "0");
  }

  // The series: for each level, [time ms, events/s] per interval, gaps filled with 0.
  function series(snapshot) {
    const stepMs = Math.max(1, Number(snapshot && snapshot.interval_secs) || 10) * 1000;
    const raw = (Array.isArray(snapshot && snapshot.intervals) ? snapshot.intervals : [])
      .map((i) => ({ t: Date.parse(i && i.start), secs: Number(i && i.seconds) || 0, levels: (i && i.levels) || {} }))
      .filter((i) => Number.isFinite(i.t))
      .sort((a, b) => a.t - b.t);
    const points = [];
    for (const i of raw) {
      const last = points[points.length - 1];
      // Intervals with no event are not summarised: they are drawn as zero.
      if (last) {
        for (let t = last.t + stepMs; t < i.t && points.length < MAX_POINTS; t += stepMs) points.push({ t, secs: stepMs / 1000, levels: {} });
      }
      if (points.length < MAX_POINTS) points.push(i);
    }
    const out = {};
    for (const l of LEVELS) out[l] = points.map((p) => [p.t, p.secs > 0 ? (Number(p.levels[l]) || 0) / p.secs : 0]);
    return out;
  }

  // Draws the chart into `container` (emptied first) and returns what it drew per level.
  function draw(container, snapshot) {
    while (container.firstChild) container.removeChild(container.firstChild);
    const all = series(snapshot);
    // Unknown-level events get a line only when there are some.
    const levels = LEVELS.filter((l) => l !== "unknown" || all[l].some((p) => p[1] > 0));
    const n = all.info.length;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-labelledby": "traffic-chart-title" });
    root.append(svg("title", { id: "traffic-chart-title" }, "Events per second by level, one point per " + (Number(snapshot && snapshot.interval_secs) || 10) + " s interval"));
    const x0 = PAD.left;
    const x1 = W - PAD.right;
    const y0 = H - PAD.bottom;
    const y1 = PAD.top;
    let max = 0;
    for (const l of levels) for (const p of all[l]) max = Math.max(max, p[1]);
    const step = niceStep(max > 0 ? max : 1, 4);
    const top = Math.max(step, Math.ceil((max > 0 ? max : 1) / step) * step);
    const tMin = n ? all.info[0][0] : 0;
    const tMax = n ? all.info[n - 1][0] : 1;
    const x = (t) => (tMax > tMin ? x0 + ((t - tMin) / (tMax - tMin)) * (x1 - x0) : (x0 + x1) / 2);
    const y = (v) => y0 - (v / top) * (y0 - y1);

    const grid = svg("g", { class: "grid" });
    for (let v = 0; v <= top + step / 2; v += step) {
      grid.append(svg("line", { x1: x0, x2: x1, y1: y(v), y2: y(v) }));
      grid.append(svg("text", { x: x0 - 6, y: y(v) + 4, "text-anchor": "end" }, fmtRate(v)));
    }
    grid.append(svg("text", { x: 4, y: y1 + 4, class: "unit" }, "/s"));
    if (n) {
      const ticks = Math.min(6, n);
      for (let k = 0; k < ticks; k++) {
        const i = ticks === 1 ? 0 : Math.round((k * (n - 1)) / (ticks - 1));
        const t = all.info[i][0];
        grid.append(svg("text", { x: x(t), y: H - 8, "text-anchor": k === 0 ? "start" : k === ticks - 1 ? "end" : "middle" }, fmtTime(t)));
      }
    }
    root.append(grid);

    const drawn = {};
    for (const l of levels) {
      const pts = all[l];
      const g = svg("g", { class: "series level-" + l, "data-level": l, "data-points": pts.length });
      const last = pts.length ? pts[pts.length - 1][1] : 0;
      const peak = pts.reduce((m, p) => Math.max(m, p[1]), 0);
      g.append(svg("title", {}, l + ": " + fmtRate(last) + "/s in the latest interval, peak " + fmtRate(peak) + "/s"));
      g.append(svg("polyline", { points: pts.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ") }));
      if (pts.length === 1) g.append(svg("circle", { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 3 }));
      root.append(g);
      drawn[l] = { points: pts.length, last, peak };
    }
    container.append(root);

    // The legend says in text what the lines show (colour is never the only cue).
    const legend = document.createElement("ul");
    legend.className = "legend";
    for (const l of levels) {
      const li = document.createElement("li");
      li.className = "level-" + l;
      li.dataset.level = l;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      li.append(swatch, document.createTextNode(l + " " + fmtRate(drawn[l].last) + "/s (peak " + fmtRate(drawn[l].peak) + ")"));
      legend.append(li);
    }
    container.append(legend);
    return drawn;
  }

  window.LogferryChart = { draw, series };
})();
