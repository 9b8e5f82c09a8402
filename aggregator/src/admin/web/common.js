// Shared by the admin page's scripts: building elements with text only, the token,
// and calls to the admin API. Loaded first; exposes window.LogferryCommon. Every value
// from the API goes into the DOM as text (textContent, text nodes, form values): log
// lines are hostile input, and no script of the page parses HTML.
"use strict";

(function () {
  const TOKEN_KEY = "logferry.admin.token";
  const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

  const $ = (id) => document.getElementById(id);

  // An element with attributes/properties and children (strings become text nodes).
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") e.className = v;
      else if (k === "data") Object.assign(e.dataset, v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function setStatus(id, text, isError) {
    const s = $(id);
    s.textContent = text;
    s.classList.toggle("error", Boolean(isError));
  }

  // ---- auth and fetch ----

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (_) {
      return "";
    }
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = token();
    if (t) h["Authorization"] = "Bearer " + t;
    return h;
  }

  class ApiError extends Error {
    constructor(status, body) {
      let msg = "HTTP " + status;
      if (body && typeof body === "object" && body.error) {
        msg += ": " + body.error;
        const d = body.detail;
        if (d && typeof d === "object" && typeof d.message === "string") {
          // An invalid rule: the key it names, then the reason.
          msg += ": " + (d.key ? d.key + ": " : "") + d.message;
        } else if (d !== undefined && d !== null) {
          msg += ": " + (typeof d === "string" ? d : JSON.stringify(d));
        }
      } else if (typeof body === "string" && body) {
        msg += ": " + body.slice(0, 500);
      }
      if (status === 401) msg += " (enter a token above)";
      super(msg);
      this.status = status;
      this.body = body;
    }
  }

  // One API call. `opts.type` is the body's media type (JSON by default), `opts.accept`
  // the answer's; a JSON answer is parsed, any other is returned as text.
  async function api(method, path, body, opts) {
    const o = opts || {};
    const init = { method, headers: headers(o.accept ? { Accept: o.accept } : {}), cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      init.body = body;
      init.headers["Content-Type"] = o.type || "application/json";
    }
    const resp = await fetch(path, init);
    const text = await resp.text();
    let out = text;
    if ((resp.headers.get("Content-Type") || "").startsWith("application/json")) {
      try {
        out = text ? JSON.parse(text) : null;
      } catch (_) {
        out = text;
      }
    }
    if (!resp.ok) throw new ApiError(resp.status, out);
    return out;
  }

  // ---- formatting ----

  function str(v) {
    if (v === null || v === undefined) return "";
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  window.LogferryCommon = { TOKEN_KEY, LEVELS, $, el, clear, setStatus, token, headers, ApiError, api, str };
})();
