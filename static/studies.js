// Studies (docs/studies.md). On a participant's page (/p/<token>): one item at a time from
// GET /api/p/<token>/next, answered with POST /api/p/<token>/answers and its response time in ms (from the
// item being shown to the click). The server decides what comes next, so a reload resumes. On the
// researcher's study page: the participant links' Copy buttons.
(() => {
  "use strict";

  const PLAY_FPS = 8;

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function participant(body) {
    const token = body.dataset.token;
    const api = `/api/p/${encodeURIComponent(token)}`;
    const main = document.getElementById("participant");
    const intro = document.getElementById("intro");
    const card = document.getElementById("item");
    const stage = document.getElementById("stage");
    const question = document.getElementById("question");
    const error = document.getElementById("item-error");
    const done = document.getElementById("done");
    const progress = document.getElementById("progress");
    let shownAt = 0;
    let player = null;
    let busy = false;

    function setProgress(answered, total) {
      progress.textContent = `${answered} of ${total} answered`;
      main.dataset.answered = String(answered);
      main.dataset.total = String(total);
    }

    function stopPlayer() {
      if (player !== null) clearInterval(player);
      player = null;
    }

    function showError(message) {
      error.textContent = message;
      error.hidden = false;
    }

    async function send(item, answer, comment = "") {
      if (busy) return;
      busy = true;
      const ms = Math.max(0, Math.round(performance.now() - shownAt));
      try {
        const response = await fetch(`${api}/answers`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ item_id: item.item_id, answer, ms, comment }),
        });
        if (response.status === 201 || response.status === 409) {
          await next(); // 409: this item was answered already (another tab, a retry); the first answer stands
          return;
        }
        const data = await response.json().catch(() => ({}));
        const errors = data.errors ? Object.values(data.errors).join("; ") : data.detail;
        showError(errors || `The answer was not saved (${response.status}); please try again.`);
      } catch (_err) {
        showError("The answer could not be sent; check the connection and try again.");
      } finally {
        busy = false;
      }
    }

    // A big frame that plays the render's frames in a loop, and the strip of all frames under it.
    function viewer(item, onStripClick) {
      const screen = el("img", { class: "study-screen", alt: "the transition, playing" });
      const strip = el("div", { class: "study-strip" + (onStripClick ? " clickable" : "") });
      const marker = el("div", { class: "study-marker", hidden: "" });
      const frames = item.frames.filter((f) => f.url);
      for (const f of frames) {
        strip.append(el("img", { src: f.url, alt: `t = ${f.t.toFixed(2)}`, "data-index": String(f.index) }));
      }
      strip.append(marker);
      let at = 0;
      if (frames.length) screen.src = frames[0].url;
      player = setInterval(() => {
        at = (at + 1) % Math.max(1, frames.length);
        if (frames.length) screen.src = frames[at].url;
      }, 1000 / PLAY_FPS);
      if (onStripClick) {
        strip.addEventListener("click", (event) => {
          const box = strip.getBoundingClientRect();
          const t = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
          marker.hidden = false;
          marker.style.left = `${t * 100}%`;
          stopPlayer();
          const nearest = frames.reduce((a, b) => (Math.abs(b.t - t) < Math.abs(a.t - t) ? b : a), frames[0]);
          if (nearest) screen.src = nearest.url;
          onStripClick(t);
        });
      }
      return el("div", { class: "study-viewer" }, [screen, strip]);
    }

    function rate(item) {
      const comment = el("textarea", { id: "comment", rows: "2", maxlength: "2000", placeholder: "optional" });
      const buttons = el("div", { class: "rating-buttons", role: "group", "aria-label": "Coherence, 1 to 5" });
      for (let n = 1; n <= 5; n += 1) {
        const button = el("button", { type: "button", class: "rating", "data-rating": String(n), text: String(n) });
        button.addEventListener("click", () => send(item, n, comment.value));
        buttons.append(button);
      }
      const scale = el("p", { class: "muted scale", text: "1: falls apart · 5: one smooth, believable change" });
      const label = el("label", { class: "field" }, [el("span", { text: "Comment" }), comment]);
      stage.append(viewer(item, null), buttons, scale, label);
    }

    function mark(item) {
      let chosen = null;
      const confirm = el("button", { type: "button", class: "primary", id: "confirm-mark", disabled: "", text: "This is where it first appears" });
      const readout = el("span", { class: "muted", id: "mark-readout", text: "Click on the strip." });
      confirm.addEventListener("click", () => chosen !== null && send(item, Number(chosen.toFixed(4))));
      stage.append(
        viewer(item, (t) => {
          chosen = t;
          confirm.disabled = false;
          readout.textContent = `t = ${t.toFixed(2)}`;
        }),
        el("div", { class: "mark-actions" }, [confirm, readout]),
      );
    }

    function triplet(item) {
      const row = el("div", { class: "triplet", role: "group", "aria-label": "Three pictures" });
      for (const f of item.frames) {
        const button = el("button", { type: "button", class: "triplet-choice", "data-index": String(f.index) }, [
          el("img", { src: f.url || "", alt: `picture ${row.children.length + 1}` }),
        ]);
        button.addEventListener("click", () => send(item, f.index));
        row.append(button);
      }
      stage.append(row);
    }

    async function next() {
      stopPlayer();
      error.hidden = true;
      const response = await fetch(`${api}/next`, { headers: { Accept: "application/json" } });
      if (response.status === 204) {
        card.hidden = true;
        done.hidden = false;
        setProgress(Number(main.dataset.total), Number(main.dataset.total));
        return;
      }
      if (!response.ok) {
        showError(`This link does not open any questions (${response.status}).`);
        return;
      }
      const item = await response.json();
      setProgress(item.answered, item.total);
      stage.replaceChildren();
      question.textContent = `${item.position} of ${item.total}: ${item.question}`;
      card.dataset.kind = item.kind;
      card.dataset.itemId = String(item.item_id);
      card.hidden = false;
      ({ rate, mark, triplet })[item.kind](item);
      shownAt = performance.now();
    }

    const start = document.getElementById("start");
    if (start) {
      start.addEventListener("click", () => {
        intro.hidden = true;
        next();
      });
    }
  }

  function copyButtons() {
    for (const button of document.querySelectorAll(".copy-link")) {
      button.addEventListener("click", async () => {
        const input = button.parentElement.querySelector(".participant-link");
        input.select();
        try {
          await navigator.clipboard.writeText(input.value);
          button.textContent = "Copied";
        } catch (_err) {
          button.textContent = "Selected: press Ctrl+C";
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (document.body.classList.contains("participant")) participant(document.body);
    copyButtons();
  });
})();
