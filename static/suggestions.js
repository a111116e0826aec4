// Suggested bridges (templates/partials/suggestions.html): Edit, Accept (through the keyframe form, then
// remembered), Accept the whole storyboard, and "suggest bridges here" from a flagged frame's panel.
(() => {
  const keyframesChanged = () => document.body.dispatchEvent(new CustomEvent("segue:keyframes-changed"));

  // Edit: the suggested prompt becomes an ordinary text field; Accept inserts whatever it says then.
  document.addEventListener("click", (event) => {
    const edit = event.target.closest("[data-suggest-edit]");
    if (!edit) return;
    const input = edit.closest("form").querySelector("input[name=prompt]");
    input.readOnly = false;
    input.focus();
    input.select();
    edit.disabled = true;
  });

  // Accept went through POST /transitions/{id}/keyframes (the timeline swapped in): remember it.
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (!form || !form.matches || !form.matches("form[data-suggest-accept]")) return;
    if (!event.detail.successful || event.detail.xhr.status !== 200) return;
    const item = form.closest("li");
    htmx.ajax("POST", form.dataset.mark, { target: item, swap: "outerHTML" });
  });

  // Any change of the timeline (an accepted suggestion, a keyframe added by hand): new segments.
  document.body.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "timeline") keyframesChanged();
  });

  // A storyboard: accept each remaining item in order, one request after the other.
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-suggest-accept-all]");
    if (!button) return;
    button.disabled = true;
    const run = button.closest("#suggest-run");
    const ids = [...run.querySelectorAll("form[data-suggest-accept]")].map((f) => f.closest("li").id);
    for (const id of ids) {
      const form = document.getElementById(id)?.querySelector("form[data-suggest-accept]");
      if (!form) continue;
      await htmx.ajax("POST", form.getAttribute("action"), { source: form, target: "#timeline", swap: "outerHTML" });
    }
  });

  // "Suggest bridges here" on a frame's panel: inside the editor, ask right here and close the dialog;
  // on the frame's own page the form posts normally and the server brings you to the editor.
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-suggest-here]");
    if (!form || !document.getElementById("suggest-run")) return;
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    htmx.ajax("POST", form.getAttribute("action"), { target: "#suggest-run", swap: "outerHTML", values }).then(() => {
      document.getElementById("frame-dialog")?.close?.();
      document.getElementById("suggestions")?.scrollIntoView({ behavior: "smooth", block: "start" });
    });
  });
})();
