// The editor's history and co-viewing behaviours (templates/pages/transition.html, pages/compare.html):
// - Ctrl+Z / Cmd+Z undoes, Ctrl+Shift+Z / Ctrl+Y redoes (not while typing in a field: that is the field's undo);
// - every write names the version this page shows (hidden `version` inputs, kept in step here), so a stale
//   write comes back as a 409 that is shown inline with the current state;
// - the transition's co-viewing stream: a viewer's page follows edits and new renders live; an editor
//   is told when someone else saved, and decides when to load it;
// - the comparison page's metrics slot, filled when GET /api/renders/{id}/scores answers.
(() => {
  const CLIENT = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : Math.random().toString(36).slice(2) + Date.now().toString(36);

  const head = () => document.getElementById("editor-head");
  const pageVersion = () => {
    const h = head();
    return h ? parseInt(h.dataset.version, 10) : NaN;
  };

  // ------------------------------------------------------------------ versions and conflicts
  document.addEventListener("htmx:configRequest", (event) => {
    event.detail.headers["X-Segue-Client"] = CLIENT;
  });
  document.addEventListener("htmx:beforeSwap", (event) => {
    // A 409 carries the fresh state and what changed meanwhile: show it like a success.
    if (event.detail.xhr && event.detail.xhr.status === 409) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  const syncVersions = () => {
    const v = pageVersion();
    if (Number.isNaN(v)) return;
    document.querySelectorAll('form input[type="hidden"][name="version"]').forEach((input) => {
      input.value = String(v);
    });
  };
  let noticeVersion = null;  // the version the co-viewing notice announces
  document.addEventListener("htmx:afterSettle", () => {
    syncVersions();
    if (noticeVersion !== null && pageVersion() >= noticeVersion) {  // the page caught up (or a conflict showed it)
      noticeVersion = null;
      const box = document.getElementById("live-notice");
      if (box) { box.innerHTML = ""; box.hidden = true; }
    }
  });

  // ------------------------------------------------------------------ keyboard shortcuts
  const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.altKey || typing(document.activeElement)) return;
    const key = event.key.toLowerCase();
    let button = null;
    if (key === "z" && !event.shiftKey) button = document.getElementById("undo-button");
    else if ((key === "z" && event.shiftKey) || key === "y") button = document.getElementById("redo-button");
    if (!button) return;
    event.preventDefault();
    if (!button.disabled) button.click();
  });

  // ------------------------------------------------------------------ copy a new share link
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    const input = document.querySelector(button.dataset.copy);
    if (!input) return;
    input.select();
    const done = () => { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done, () => document.execCommand("copy") && done());
    else if (document.execCommand("copy")) done();
  });

  // ------------------------------------------------------------------ live co-viewing
  const notice = (html) => {
    const box = document.getElementById("live-notice");
    if (!box) return;
    box.innerHTML = html;
    box.hidden = !html;
  };
  const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

  const startLive = () => {
    const live = document.getElementById("live");
    if (!live || !window.EventSource || live.dataset.connected) return;
    live.dataset.connected = "1";
    const id = live.dataset.transitionId;
    const canEdit = live.dataset.canEdit === "true";
    let refreshTimer = null;
    const refresh = () => {  // header, settings, timeline and history, each swapped in by id
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => {
        htmx.ajax("GET", `/transitions/${id}/live`, {target: "#live", swap: "none"}).then(() => notice(""));
      }, 120);
    };
    window.segueRefresh = refresh;
    const source = new EventSource(live.dataset.events);
    live.source = source;
    source.addEventListener("changed", (message) => {
      const data = JSON.parse(message.data);
      live.dataset.lastVersion = data.version;
      if (data.client === CLIENT || data.version <= pageVersion()) return;  // this page's own edit
      if (!canEdit) { refresh(); return; }
      noticeVersion = data.version;
      const who = data.link_id ? `someone with link #${data.link_id}` : "the owner";
      notice(`Version ${data.version} was saved by ${escapeHtml(who)}: ${escapeHtml(data.summary)}. ` +
             `<button type="button" class="small" id="load-latest">Show the latest version</button> ` +
             `<span class="muted">(a change you save from this page now gets a conflict showing both)</span>`);
    });
    source.addEventListener("render", (message) => {
      const data = JSON.parse(message.data);
      const panel = document.getElementById("render-panel");
      if (!panel || panel.dataset.renderId === String(data.render_id)) return;
      htmx.ajax("GET", `/transitions/${id}/render-panel?render=${data.render_id}`, {target: "#render-panel", swap: "outerHTML"});
    });
    source.addEventListener("deleted", () => {
      notice("This transition was deleted.");
      source.close();
    });
    document.addEventListener("click", (event) => {
      if (event.target && event.target.id === "load-latest") refresh();
    });
  };

  // ------------------------------------------------------------------ comparison: the metrics slot
  const fillMetrics = async () => {
    const slot = document.getElementById("compare-metrics");
    if (!slot) return;
    const status = slot.querySelector(".metrics-status");
    const get = async (url) => {
      try {
        const response = await fetch(url, {headers: {Accept: "application/json"}});
        return response.status === 200 ? await response.json() : null;
      } catch (_) { return null; }
    };
    const [a, b] = await Promise.all([get(slot.dataset.scoresA), get(slot.dataset.scoresB)]);
    const sa = a && a.summary, sb = b && b.summary;
    if (!sa && !sb) {
      status.textContent = "No scores yet for these renders (they appear here once the scorer has run).";
      return;
    }
    const names = [...new Set([...Object.keys(sa || {}), ...Object.keys(sb || {})])];
    const show = (v) => (v === null || v === undefined) ? "—" : (typeof v === "number" ? (Number.isInteger(v) ? v : v.toFixed(4)) : escapeHtml(v));
    const rows = names.map((n) => `<tr data-metric="${escapeHtml(n)}"><td>${escapeHtml(n.replace(/_/g, " "))}</td><td>${show(sa && sa[n])}</td><td>${show(sb && sb[n])}</td></tr>`);
    slot.querySelector("tbody").innerHTML = rows.join("");
    slot.querySelector("table").hidden = false;
    status.textContent = !sa || !sb ? `Scores exist for render #${sa ? slot.dataset.a : slot.dataset.b} only.` : "";
    status.hidden = !status.textContent;
  };

  const init = () => { syncVersions(); startLive(); fillMetrics(); };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
