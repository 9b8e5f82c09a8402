// The rules view of the admin page: the list with counters, and an editor that adds,
// replaces and deletes rules as JSON or TOML through the rules API (admins only; the
// API's errors, naming the key, are shown as they come). Exposes window.LogferryRules.
"use strict";

(function () {
  const { $, el, clear, setStatus, api, str } = window.LogferryCommon;

  // ---- rules ----

  // The editor: the rule being edited (its name, null for a new one) and the text last
  // put into the editor, to tell whether the operator has changed it.
  const rules = { editing: null, loaded: "" };
  const RULE_TEMPLATE = {
    name: "my-rule",
    enabled: true,
    when: { field: "level", gte: "error" },
    actions: [{ type: "tag", tags: ["error"] }],
  };
  const RULE_TEMPLATE_TOML = 'name = "my-rule"\nenabled = true\n\n[when]\nfield = "level"\ngte = "error"\n\n[[actions]]\ntype = "tag"\ntags = ["error"]\n';
  const TOML = "application/toml";

  function ruleFormat() {
    return $("rule-format").value === "toml" ? "toml" : "json";
  }

  function setRuleText(text) {
    $("rule-text").value = text;
    rules.loaded = text;
    $("rule-format-note").textContent = "";
  }

  // Puts `rule` (null: a new one) into the editor in the chosen format; the TOML form
  // of a stored rule comes from the API, which writes it as it reads it back.
  async function editRule(rule) {
    rules.editing = rule ? rule.name : null;
    $("rule-save").disabled = !rule;
    $("rule-editor-title").textContent = rule ? "Edit rule " + rule.name : "New rule";
    $("rule-error").textContent = "";
    if (ruleFormat() === "json") {
      setRuleText(JSON.stringify(rule || RULE_TEMPLATE, null, 2));
      return;
    }
    if (!rule) {
      setRuleText(RULE_TEMPLATE_TOML);
      return;
    }
    try {
      setRuleText(str(await api("GET", "/api/rules/" + encodeURIComponent(rule.name), undefined, { accept: TOML })));
    } catch (e) {
      $("rule-error").textContent = e.message;
    }
  }

  // A new format: the editor's text follows if the operator has not changed it.
  function ruleFormatChanged() {
    if ($("rule-text").value === rules.loaded) {
      const name = rules.editing;
      editRule(name === null ? null : { name });
    } else {
      $("rule-format-note").textContent = "your text is kept as typed; it is sent as " + ruleFormat().toUpperCase();
    }
  }

  async function deleteRule(name, button) {
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = "Confirm delete";
      return;
    }
    try {
      await api("DELETE", "/api/rules/" + encodeURIComponent(name));
      $("rule-error").textContent = "";
      if (rules.editing === name) editRule(null);
      setStatus("rules-status", "deleted " + name);
      await loadRules(true);
    } catch (e) {
      $("rule-error").textContent = e.message;
    }
  }

  async function loadRules(keepStatus) {
    if (!keepStatus) setStatus("rules-status", "loading…");
    try {
      const r = await api("GET", "/api/rules");
      const tbody = $("rules-list").tBodies[0];
      clear(tbody);
      for (const v of Array.isArray(r.rules) ? r.rules : []) {
        const rule = v.rule || {};
        const st = v.stats || {};
        const name = str(rule.name);
        const del = el("button", { type: "button", class: "rule-delete" }, "Delete");
        del.addEventListener("click", () => deleteRule(name, del));
        const edit = el("button", { type: "button", class: "rule-edit" }, "Edit");
        edit.addEventListener("click", () => editRule(rule));
        const firing = Array.isArray(st.firing) ? st.firing.length : 0;
        tbody.append(
          el("tr", { data: { rule: name } },
            el("td", {}, str(v.position)),
            el("td", { class: "name" }, name),
            el("td", {}, rule.enabled === false ? "no" : "yes"),
            el("td", { class: "num" }, str(st.matched || 0)),
            el("td", { class: "num" }, str(st.dropped || 0)),
            el("td", { class: "num" }, str(st.redacted || 0)),
            el("td", { class: "num" }, String(firing)),
            el("td", {}, edit, " ", del)),
        );
      }
      const origin = r.origin && typeof r.origin === "object" ? JSON.stringify(r.origin) : str(r.origin);
      if (!keepStatus) setStatus("rules-status", (r.rules || []).length + " rules; origin " + origin);
    } catch (e) {
      setStatus("rules-status", e.message, true);
    }
  }

  async function submitRule(replace) {
    const text = $("rule-text").value;
    const out = $("rule-error");
    out.textContent = "";
    const toml = ruleFormat() === "toml";
    if (!toml) {
      try {
        JSON.parse(text);
      } catch (e) {
        out.textContent = "not valid JSON: " + e.message;
        return;
      }
    }
    // TOML is checked by the API, whose errors name the key or the line.
    const opts = { type: toml ? TOML : "application/json" };
    try {
      let v;
      if (replace && rules.editing !== null) {
        v = await api("PUT", "/api/rules/" + encodeURIComponent(rules.editing), text, opts);
      } else {
        v = await api("POST", "/api/rules", text, opts);
      }
      const name = v && v.rule ? str(v.rule.name) : str(v && v.name);
      setStatus("rules-status", (replace ? "replaced " : "added ") + name);
      editRule(v && v.rule ? v.rule : null);
      await loadRules(true);
    } catch (e) {
      out.textContent = e.message;
    }
  }

  // Wires the view's buttons; called once the page is loaded.
  function wire() {
    $("rules-refresh").addEventListener("click", () => loadRules(false));
    $("rule-add").addEventListener("click", () => submitRule(false));
    $("rule-save").addEventListener("click", () => submitRule(true));
    $("rule-new").addEventListener("click", () => editRule(null));
    $("rule-format").addEventListener("change", ruleFormatChanged);
    editRule(null);
  }

  window.LogferryRules = { load: loadRules, wire };
})();
