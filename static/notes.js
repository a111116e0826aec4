// Review notes (templates/partials/notes.html, docs/notes.md):
// - the list follows co-viewers: a `note` event on the transition's co-viewing stream (static/editor.js opens
//   it as #live.source) fetches the card's live part again; a reply being typed is not wiped (the fetch
//   waits until that field is left);
// - the add form's t follows the player's frame (segue:playhead) until the viewer types a t;
// - the notes shown in the list also mark the timeline: a tick (a band for a range) at each note's t, put in
//   again whenever the list or the timeline is swapped; ticks never take a click (the timeline's own);
// - the author's name is remembered in this browser (localStorage) and filled into every note and reply form.
(() => {
  const NAME_KEY = "segue.notes.author";
  const stored = () => { try { return localStorage.getItem(NAME_KEY) || ""; } catch (_) { return ""; } };
  const store = (value) => { try { localStorage.setItem(NAME_KEY, value); } catch (_) { /* private mode */ } };

  const fillNames = (root) => {
    const name = stored();
    (root || document).querySelectorAll("[data-remember]").forEach((input) => {
      if (!input.value && name) input.value = name;
    });
  };
  document.addEventListener("input", (event) => {
    const target = event.target;
    if (target && target.id === "note-author") {
      store(target.value.trim());
      document.querySelectorAll('input[type="hidden"][data-remember]').forEach((i) => { i.value = target.value.trim(); });
    }
    if (target && target.id === "note-t") target.dataset.typed = target.value ? "1" : "";
  });

  // ---------------------------------------------------------------- t from the player
  let playheadT = null;
  const fillT = () => {
    const input = document.getElementById("note-t");
    if (!input || input.dataset.typed || playheadT === null || document.activeElement === input) return;
    input.value = String(Math.round(playheadT * 10000) / 10000);
  };
  document.addEventListener("segue:playhead", (event) => {
    if (!event.detail || typeof event.detail.t !== "number") return;
    playheadT = event.detail.t;
    fillT();
  });

  // "Add a note at this frame" in a frame's dialog: the form takes that frame's t.
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("[data-note-at]");
    const input = document.getElementById("note-t");
    if (!link || !input) return;  // the frame's own page: the link leads to the transition
    event.preventDefault();
    const dialog = document.getElementById("frame-dialog");
    if (dialog && dialog.open) dialog.close();
    input.value = link.dataset.noteAt;
    input.dataset.typed = "1";
    const text = document.getElementById("note-text");
    document.getElementById("note-form").scrollIntoView({block: "center"});
    if (text) text.focus();
  });

  // ---------------------------------------------------------------- live for co-viewers
  let timer = null;
  let waiting = false;
  const busyReply = () => {
    const el = document.activeElement;
    return el && el.closest && el.closest("#notes-live") && el.value;
  };
  const refresh = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const live = document.getElementById("notes-live");
      if (!live) return;
      if (busyReply()) { waiting = true; return; }
      waiting = false;
      htmx.ajax("GET", live.dataset.url, {target: "#notes-live", swap: "outerHTML"});
    }, 150);
  };
  document.addEventListener("focusout", () => { if (waiting) refresh(); });
  window.segueNotesRefresh = refresh;

  const follow = () => {
    const live = document.getElementById("live");
    if (!live || !live.source) return false;
    if (live.dataset.notesFollowed) return true;
    live.dataset.notesFollowed = "1";
    live.source.addEventListener("note", refresh);
    return true;
  };

  // ---------------------------------------------------------------- ticks on the timeline
  const tickTimeline = () => {
    const bar = document.querySelector("#timeline .timeline-bar");
    if (!bar) return;
    bar.querySelectorAll(":scope > .note-tick").forEach((el) => el.remove());
    document.querySelectorAll("#notes-live .note-mark").forEach((mark) => {
      const t = Number.parseFloat(mark.dataset.t);
      if (!Number.isFinite(t)) return;
      const tick = document.createElement("span");
      tick.className = mark.className.replace("note-mark", "note-tick");
      tick.dataset.noteId = mark.dataset.noteId;
      tick.title = mark.title;
      tick.style.left = `${t * 100}%`;
      const width = Number.parseFloat(mark.getAttribute("data-css-width"));
      if (Number.isFinite(width)) tick.style.width = `${width}%`;
      bar.appendChild(tick);
    });
  };
  document.addEventListener("htmx:afterSettle", tickTimeline);

  document.addEventListener("htmx:afterSwap", (event) => {
    fillNames(event.detail.target && event.detail.target.parentNode);
    fillT();
  });
  const init = () => {
    fillNames(document);
    tickTimeline();
    if (!follow()) {  // editor.js opens the stream on load; wait for it if it is later
      let tries = 0;
      const again = setInterval(() => { if (follow() || ++tries > 50) clearInterval(again); }, 100);
    }
  };
  if (document.readyState === "complete") init();
  else window.addEventListener("load", init);
})();
