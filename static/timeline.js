// The timeline you can touch. Frame ticks show where the frames sit; hovering scrubs the player; clicking an
// empty spot fills the insert form with that t; dragging a keyframe marker (or moving it with the arrow keys)
// ends in one ordinary keyframe edit, POST /keyframes/{id}, so the forms' validation and errors apply.
// The #timeline section is replaced by htmx after every edit: everything here is delegated or redrawn.
(() => {
  "use strict";

  const SNAP_PX = 5; // a pointer this close to a frame tick lands on the frame's t
  const CLICK_PX = 4; // a press that moves less than this is a click, not a drag
  const COMMIT_DELAY_MS = 700; // arrow-key moves are sent once the keys rest
  const MIN = 0.0001; // positions stay strictly inside (0, 1), at the forms' precision
  const MAX = 0.9999;

  let playheadT = null;
  let drag = null; // {bar, marker, endpoint, from, t, startX, moved, pointerId}
  let keyMove = null; // {marker, id, from, t, timer}
  let refocus = null; // keyframe id whose marker gets the focus back after the swap

  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  const format = (t) => String(Number(t.toFixed(4)));
  const frameCount = (bar) => Math.max(2, parseInt(bar.dataset.frames, 10) || 2);
  const scrub = (t, commit = false) =>
    document.dispatchEvent(new CustomEvent("segue:scrub", { detail: { t, commit } }));

  function tAt(bar, clientX) {
    const r = bar.getBoundingClientRect();
    return clamp((clientX - r.left) / r.width, 0, 1);
  }

  // Where the frames sit: those of the render on the page, else the transition's evenly spaced frames.
  function frameTimes(bar) {
    const figures = document.querySelectorAll("[data-filmstrip] figure.frame[data-t]");
    if (figures.length) return Array.from(figures, (f) => parseFloat(f.dataset.t));
    const n = frameCount(bar);
    return Array.from({ length: n }, (_, i) => i / (n - 1));
  }

  function nearestFrame(times, t) {
    let lo = 0;
    let hi = times.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (times[mid] <= t) lo = mid;
      else hi = mid;
    }
    return Math.abs(times[hi] - t) < Math.abs(t - times[lo]) ? hi : lo;
  }

  function snap(bar, t) {
    const times = frameTimes(bar);
    const frameT = times[nearestFrame(times, t)];
    return Math.abs(frameT - t) * bar.getBoundingClientRect().width <= SNAP_PX ? frameT : t;
  }

  const inside = (t) => clamp(Number(t.toFixed(4)), MIN, MAX);

  function part(bar, className, tag = "span") {
    let el = bar.querySelector(`:scope > .${className}`);
    if (!el) {
      el = document.createElement(tag);
      el.className = className;
      el.setAttribute("aria-hidden", "true");
      bar.append(el);
    }
    return el;
  }

  // ------------------------------------------------------------ drawing

  function drawTicks(bar) {
    // A render's own frame ticks (templates/partials/frame_ticks.html) already say where its frames sit.
    const own = bar.parentElement.querySelector("[data-frame-ticks] .tick");
    bar.classList.toggle("with-frame-ticks", !!own);
    const existing = bar.querySelector(":scope > svg.timeline-ticks");
    if (own) {
      if (existing) existing.remove();
      return;
    }
    const times = frameTimes(bar);
    const n = times.length;
    const width = bar.getBoundingClientRect().width || 600;
    // Every frame when there is room; with hundreds of frames, every k-th so the ticks stay readable.
    const every = [1, 2, 5, 10, 20, 25, 50, 100].find((k) => (width / Math.max(1, n - 1)) * k >= 4) || 100;
    let path = "";
    for (let i = 0; i < n; i += every) path += `M${times[i].toFixed(5)} 0V1`;
    path += "M1 0V1";
    const svgNS = "http://www.w3.org/2000/svg";
    let svg = existing;
    if (!svg) {
      svg = document.createElementNS(svgNS, "svg");
      svg.setAttribute("class", "timeline-ticks");
      svg.setAttribute("viewBox", "0 0 1 1");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("aria-hidden", "true");
      svg.append(document.createElementNS(svgNS, "path"));
      bar.append(svg);
    }
    const p = svg.firstChild;
    p.setAttribute("d", path);
    p.setAttribute("vector-effect", "non-scaling-stroke");
    bar.dataset.tickEvery = String(every);
  }

  function placeGhost(bar) {
    const input = document.getElementById("kf-position");
    const ghost = part(bar, "ghost");
    ghost.classList.add("marker");
    const t = input ? parseFloat(input.value) : NaN;
    ghost.hidden = !(t > 0 && t < 1);
    if (!ghost.hidden) ghost.style.left = `${t * 100}%`;
  }

  function placePlayhead(bar) {
    const head = part(bar, "timeline-playhead");
    head.hidden = playheadT === null;
    if (playheadT !== null) head.style.left = `${playheadT * 100}%`;
  }

  function showHover(bar, t) {
    const line = part(bar, "timeline-hover");
    if (t === null) {
      line.hidden = true;
      return;
    }
    line.hidden = false;
    line.style.left = `${t * 100}%`;
    line.dataset.label = `t = ${format(t)} · frame ${nearestFrame(frameTimes(bar), t)}`;
  }

  function decorate() {
    const bar = document.querySelector("[data-timeline]");
    if (!bar) return;
    bar.dataset.decorated = String(document.querySelectorAll("[data-filmstrip] figure.frame").length);
    drawTicks(bar);
    placeGhost(bar);
    placePlayhead(bar);
    showHover(bar, null);
    if (refocus !== null) {
      const marker = bar.querySelector(`[data-keyframe-id="${refocus}"]`);
      refocus = null;
      if (marker) marker.focus({ preventScroll: true });
    }
  }

  // ------------------------------------------------------------ edits, through the keyframe forms' endpoints

  function moveMarker(marker, t) {
    marker.style.left = `${t * 100}%`;
    marker.setAttribute("aria-valuenow", String(t));
    marker.setAttribute("aria-valuetext", format(t));
  }

  function commitMove(marker, id, from, t) {
    if (Math.abs(t - from) < 1e-9) {
      moveMarker(marker, from);
      return;
    }
    marker.setAttribute("aria-busy", "true");
    // Only the position changes; the version the page shows goes along, as the keyframe's own form sends it,
    // so a move based on a stale page is refused like any other stale edit.
    const values = { position: format(t) };
    const version = document.querySelector(`#timeline form[action="/keyframes/${id}"] input[name="version"]`);
    if (version) values.version = version.value;
    htmx.ajax("POST", `/keyframes/${id}`, { target: "#timeline", swap: "outerHTML", values });
  }

  function insertAt(t) {
    const input = document.getElementById("kf-position");
    if (!input) return;
    input.value = format(inside(t));
    const bar = document.querySelector("[data-timeline]");
    if (bar) placeGhost(bar);
    const prompt = document.getElementById("kf-prompt");
    if (prompt) {
      prompt.focus({ preventScroll: true });
      prompt.closest("form").scrollIntoView({ block: "nearest" });
    }
  }

  // ------------------------------------------------------------ pointer: hover, click, drag

  document.addEventListener("pointerdown", (event) => {
    const bar = event.target.closest && event.target.closest("[data-timeline]");
    if (!bar || event.button !== 0) return;
    const marker = event.target.closest("[data-keyframe-id]");
    event.preventDefault(); // no text selection, and the marker keeps its focus
    if (marker) marker.focus({ preventScroll: true });
    const from = marker ? parseFloat(marker.dataset.position) : null;
    const endpoint = !!event.target.closest(".marker.endpoint");
    drag = { bar, marker, endpoint, from, t: from, startX: event.clientX, moved: false, pointerId: event.pointerId };
    bar.setPointerCapture(event.pointerId);
  });

  document.addEventListener("pointermove", (event) => {
    const bar = event.target.closest && event.target.closest("[data-timeline]");
    if (drag && drag.pointerId === event.pointerId) {
      const t = snap(drag.bar, tAt(drag.bar, event.clientX));
      if (Math.abs(event.clientX - drag.startX) >= CLICK_PX) drag.moved = true;
      if (drag.marker && drag.moved) {
        drag.t = inside(t);
        drag.marker.classList.add("dragging");
        moveMarker(drag.marker, drag.t);
        showHover(drag.bar, drag.t);
        scrub(drag.t);
        return;
      }
    }
    if (!bar) return;
    const t = snap(bar, tAt(bar, event.clientX));
    showHover(bar, t);
    scrub(t);
  });

  function endDrag(event, cancelled) {
    if (!drag || drag.pointerId !== event.pointerId) return;
    const d = drag;
    drag = null;
    if (d.bar.hasPointerCapture(event.pointerId)) d.bar.releasePointerCapture(event.pointerId);
    if (d.marker) d.marker.classList.remove("dragging");
    if (cancelled) {
      if (d.marker) moveMarker(d.marker, d.from);
      return;
    }
    if (d.marker && d.moved) {
      commitMove(d.marker, d.marker.dataset.keyframeId, d.from, d.t);
      return;
    }
    const t = d.marker ? d.from : snap(d.bar, tAt(d.bar, event.clientX));
    scrub(t, true); // a click sets the player there
    if (!d.marker && !d.endpoint) insertAt(t);
  }

  document.addEventListener("pointerup", (event) => endDrag(event, false));
  document.addEventListener("pointercancel", (event) => endDrag(event, true));
  document.addEventListener(
    "pointerleave",
    (event) => {
      if (!(event.target instanceof Element) || !event.target.matches("[data-timeline]")) return;
      if (drag) return;
      showHover(event.target, null);
      scrub(null);
    },
    true,
  );

  // ------------------------------------------------------------ keyboard on a focused marker

  document.addEventListener("keydown", (event) => {
    const marker = event.target instanceof Element && event.target.closest("[data-timeline] [data-keyframe-id]");
    if (!marker) return;
    const bar = marker.closest("[data-timeline]");
    const id = marker.dataset.keyframeId;
    if (!keyMove || keyMove.id !== id) {
      const from = parseFloat(marker.dataset.position);
      keyMove = { marker, id, from, t: from, timer: null };
    }
    const spacing = 1 / (frameCount(bar) - 1);
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      const delta = (event.key === "ArrowRight" ? 1 : -1) * spacing * (event.shiftKey ? 10 : 1);
      keyMove.t = inside(keyMove.t + delta);
      moveMarker(marker, keyMove.t);
      scrub(keyMove.t, true);
      clearTimeout(keyMove.timer);
      keyMove.timer = setTimeout(() => sendKeyMove(), COMMIT_DELAY_MS);
    } else if (event.key === "Enter") {
      event.preventDefault();
      sendKeyMove();
    } else if (event.key === "Escape") {
      event.preventDefault();
      clearTimeout(keyMove.timer);
      moveMarker(marker, keyMove.from);
      keyMove = null;
    }
  });

  function sendKeyMove() {
    if (!keyMove) return;
    const k = keyMove;
    keyMove = null;
    clearTimeout(k.timer);
    if (!k.marker.isConnected) return;
    refocus = k.id;
    commitMove(k.marker, k.id, k.from, k.t);
  }

  // ------------------------------------------------------------ keeping in step with the player and htmx

  document.addEventListener("segue:playhead", (event) => {
    playheadT = event.detail.t;
    const bar = document.querySelector("[data-timeline]");
    if (bar) placePlayhead(bar);
  });

  document.addEventListener("input", (event) => {
    if (event.target.id !== "kf-position") return;
    const bar = document.querySelector("[data-timeline]");
    if (bar) placeGhost(bar);
  });

  // Settles happen on every live tile swap: only a new timeline, or a render with other frames, needs work.
  document.addEventListener("htmx:afterSettle", () => {
    const bar = document.querySelector("[data-timeline]");
    const frames = String(document.querySelectorAll("[data-filmstrip] figure.frame").length);
    if (bar && bar.dataset.decorated !== frames) decorate();
  });
  window.addEventListener("resize", decorate);
  decorate();
})();
