// The player above the film strip: plays, steps and scrubs a render using the strip's own tiles.
// Frames come from the same <img> URLs the strip shows; new frames are learnt when htmx's SSE extension
// swaps a tile (a MutationObserver on the strip), so there is no second polling loop. A frame that is not
// rendered yet shows the nearest rendered one, marked. static/timeline.js talks to it through two events:
// "segue:scrub" {t, commit} (hover or click on the timeline) and "segue:playhead" {t, index} (what it shows).
(() => {
  "use strict";

  const PRELOAD_AHEAD = 12;
  const PRELOAD_BEHIND = 4;
  const CACHE_LIMIT = 96;
  const VIEW_KEY = "segue.strip.view";
  const TILE_KEY = "segue.strip.tile";
  let active = null; // the player of the render panel on the page

  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
  const percent = (x) => `${Math.round(x * 100)}%`;
  const clock = (seconds) => {
    const centis = Math.round(seconds * 100);
    const minutes = Math.floor(centis / 6000);
    const rest = centis - minutes * 6000;
    return `${minutes}:${String(Math.floor(rest / 100)).padStart(2, "0")}.${String(rest % 100).padStart(2, "0")}`;
  };
  const isTyping = (el) =>
    !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));

  class Player {
    constructor(root) {
      this.root = root;
      const panel = root.closest("#render-panel") || document;
      this.strip = panel.querySelector("[data-filmstrip]");
      this.figures = Array.from(this.strip.querySelectorAll("figure.frame"));
      this.n = this.figures.length;
      this.times = this.figures.map((f) => parseFloat(f.dataset.t));
      this.keyframes = JSON.parse(root.dataset.keyframes || "[]").sort((a, b) => a.position - b.position);
      this.index = 0;
      this.hover = null; // index under the pointer (timeline, strip or scrubber), shown instead of index
      this.hoverFromStrip = false;
      this.playing = false;
      this.direction = 1;
      this.fps = clamp(parseInt(root.dataset.fps, 10) || 12, 1, 60);
      this.mode = "loop";
      this.urls = [];
      this.nearest = [];
      this.cache = new Map();
      this.current = null;

      this.image = root.querySelector(".player-image");
      this.empty = root.querySelector(".player-empty");
      this.flag = root.querySelector(".player-flag");
      this.screen = root.querySelector(".player-screen");
      this.readout = root.querySelector(".player-readout");
      this.indexOut = root.querySelector("[data-player-index]");
      this.tOut = root.querySelector("[data-player-t]");
      this.blendOut = root.querySelector("[data-player-blend]");
      this.playButton = root.querySelector('[data-player-action="play"]');
      this.scrubber = root.querySelector("[data-player-scrubber]");
      this.head = root.querySelector(".scrubber-head");
      this.canvas = root.querySelector(".scrubber-frames");
      this.timeOut = root.querySelector("[data-player-time]");
      // The soundtrack (docs/animatics.md): frame i plays at offset + i / baseFps s of the audio. While the
      // sound plays, its clock drives the frames, so picture and sound stay in sync however the tab is timed.
      this.baseFps = this.fps;
      this.audio = root.querySelector("audio[data-player-audio]");
      this.soundToggle = root.querySelector("[data-player-sound]");
      this.audioOffset = this.audio ? parseFloat(this.audio.dataset.offset) || 0 : 0;

      this.tick = this.tick.bind(this);
      this.bindControls();
      this.bindStrip();
      this.bindScrubber();
      this.observer = new MutationObserver(() => this.scheduleRead());
      this.observer.observe(this.strip, { childList: true, subtree: true });
      this.resize = new ResizeObserver(() => this.drawScrubber());
      this.resize.observe(this.scrubber);
      this.readFrames();
      this.show();
      root.dataset.ready = "true";
    }

    // ------------------------------------------------------------ frames, from the strip

    scheduleRead() {
      if (this.readPending) return;
      this.readPending = true;
      requestAnimationFrame(() => {
        this.readPending = false;
        if (this.root.isConnected) {
          this.readFrames();
          this.show();
        }
      });
    }

    readFrames() {
      this.urls = this.figures.map((figure) => {
        const link = figure.querySelector(".frame-link");
        if (!link || link.dataset.status !== "done") return null;
        const img = link.querySelector("img");
        return img ? img.getAttribute("src") : null;
      });
      // nearest[i]: i when rendered, else the closest rendered index (the earlier one on a tie), or -1.
      const n = this.n;
      const left = new Array(n).fill(-1);
      let last = -1;
      for (let i = 0; i < n; i++) {
        if (this.urls[i]) last = i;
        left[i] = last;
      }
      this.nearest = new Array(n).fill(-1);
      let next = -1;
      for (let i = n - 1; i >= 0; i--) {
        if (this.urls[i]) next = i;
        const l = left[i];
        if (l < 0) this.nearest[i] = next;
        else if (next < 0) this.nearest[i] = l;
        else this.nearest[i] = i - l <= next - i ? l : next;
      }
      this.rendered = this.urls.filter(Boolean).length;
      this.root.dataset.rendered = String(this.rendered);
      this.drawScrubber();
    }

    indexAt(t) {
      // Frames are sorted by t: binary search for the closest.
      let lo = 0;
      let hi = this.n - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (this.times[mid] <= t) lo = mid;
        else hi = mid;
      }
      return Math.abs(this.times[hi] - t) < Math.abs(t - this.times[lo]) ? hi : lo;
    }

    blend(t) {
      const keys = this.keyframes;
      if (keys.length < 2) return null;
      const last = keys.length - 2;
      for (let s = 0; s <= last; s++) {
        const start = keys[s].position;
        const end = keys[s + 1].position;
        if (t < end || s === last) {
          return { a: keys[s].prompt, b: keys[s + 1].prompt, local: clamp((t - start) / (end - start), 0, 1) };
        }
      }
      return null;
    }

    // ------------------------------------------------------------ showing a frame

    show() {
      if (!this.n) return;
      const i = this.hover ?? this.index;
      const source = this.nearest[i];
      if (source >= 0) {
        const url = this.urls[source];
        if (this.image.getAttribute("src") !== url) this.image.src = url;
        this.image.alt = `frame ${source}`;
        this.image.hidden = false;
        this.empty.hidden = true;
      } else {
        this.image.hidden = true;
        this.empty.hidden = false;
      }
      const missing = source !== i;
      this.screen.classList.toggle("missing", missing);
      this.flag.hidden = !missing || source < 0;
      if (missing && source >= 0) this.flag.textContent = `#${i} not rendered yet · showing #${source}`;
      this.root.dataset.index = String(i);
      this.root.dataset.showing = String(source);

      const t = this.times[i];
      this.indexOut.textContent = String(i);
      this.tOut.textContent = t.toFixed(3);
      if (this.timeOut) this.timeOut.textContent = clock(i / this.baseFps);
      this.showBlend(t);
      this.head.style.left = `${t * 100}%`;
      this.scrubber.setAttribute("aria-valuenow", String(i));
      this.scrubber.setAttribute("aria-valuetext", `frame ${i} of ${this.n}, t ${t.toFixed(3)}`);

      const figure = this.figures[i];
      if (this.current !== figure) {
        if (this.current) this.current.classList.remove("current");
        figure.classList.add("current");
        this.current = figure;
      }
      if (!this.hoverFromStrip) this.keepInStrip(figure);
      this.preload(i);
      document.dispatchEvent(new CustomEvent("segue:playhead", { detail: { t, index: i } }));
    }

    showBlend(t) {
      const b = this.blend(t);
      let text = "";
      if (b && b.local <= 0) text = `“${b.a}”`;
      else if (b && b.local >= 1) text = `“${b.b}”`;
      else if (b) text = `${percent(1 - b.local)} “${b.a}” + ${percent(b.local)} “${b.b}”`;
      if (this.blendOut.textContent !== text) {
        this.blendOut.textContent = text;
        this.blendOut.title = text;
      }
    }

    keepInStrip(figure) {
      const strip = this.strip;
      if (!strip.classList.contains("strip")) return; // a grid scrolls the page: leave it alone
      const left = figure.offsetLeft;
      const right = left + figure.offsetWidth;
      if (left < strip.scrollLeft || right > strip.scrollLeft + strip.clientWidth) {
        strip.scrollLeft = left - (strip.clientWidth - figure.offsetWidth) / 2;
      }
    }

    preload(i) {
      const want = [];
      for (let d = 1; d <= PRELOAD_AHEAD; d++) want.push(i + d * this.direction);
      for (let d = 1; d <= PRELOAD_BEHIND; d++) want.push(i - d * this.direction);
      for (const k of want) {
        const j = this.nearest[this.mode === "loop" ? (k + this.n) % this.n : clamp(k, 0, this.n - 1)];
        const url = j >= 0 ? this.urls[j] : null;
        if (!url || this.cache.has(url)) continue;
        const img = new Image();
        img.decoding = "async";
        img.src = url;
        this.cache.set(url, img);
      }
      while (this.cache.size > CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value);
    }

    // ------------------------------------------------------------ playing

    toggle() {
      if (this.playing) this.pause();
      else this.play();
    }

    play() {
      if (this.n < 2 || this.playing) return;
      this.playing = true;
      this.last = performance.now();
      this.elapsed = 0;
      this.updatePlayButton();
      this.startSound();
      requestAnimationFrame(this.tick);
    }

    pause() {
      this.playing = false;
      this.updatePlayButton();
      if (this.audio) this.audio.pause();
    }

    // ------------------------------------------------------------ the soundtrack

    soundOn() {
      return !!this.audio && this.mode === "loop" && (!this.soundToggle || this.soundToggle.checked);
    }

    syncSound() {
      if (!this.audio) return;
      const at = this.audioOffset + this.index / this.baseFps;
      if (Number.isFinite(at)) {
        try {
          this.audio.currentTime = at;
        } catch {
          /* not loaded yet: it starts from the top */
        }
      }
    }

    startSound() {
      if (!this.soundOn() || !this.playing) return;
      this.audio.playbackRate = clamp(this.fps / this.baseFps, 0.0625, 16);
      this.syncSound();
      const started = this.audio.play();
      if (started && started.catch) started.catch(() => {}); // autoplay refused: the frames play silently
    }

    soundIndex() {
      // The frame the sound is at, or null when the sound is not driving (paused, ended, off).
      const a = this.audio;
      if (!this.soundOn() || a.paused || a.ended || a.seeking || this.hover !== null) return null;
      return Math.floor((a.currentTime - this.audioOffset) * this.baseFps + 1e-6);
    }

    updatePlayButton() {
      const b = this.playButton;
      b.textContent = this.playing ? "❚❚" : "▶︎";
      b.setAttribute("aria-label", this.playing ? "Pause (space)" : "Play (space)");
      b.setAttribute("aria-pressed", String(this.playing));
      this.root.dataset.playing = String(this.playing);
      // Announcing twelve frames a second would drown a screen reader: only speak when paused.
      this.readout.setAttribute("aria-live", this.playing ? "off" : "polite");
    }

    tick(now) {
      if (!this.playing) return;
      if (!this.root.isConnected) return this.destroy();
      const step = 1000 / this.fps;
      this.elapsed = Math.min(this.elapsed + now - this.last, step * 4); // no burst after a hidden tab
      this.last = now;
      const heard = this.soundIndex();
      if (heard !== null) {
        this.elapsed = 0;
        if (heard >= this.n) {
          this.index = 0; // the end of the video: loop, and the sound with it
          this.syncSound();
          this.show();
        } else if (heard >= 0 && heard !== this.index) {
          this.index = heard;
          this.show();
        }
      } else if (this.hover !== null) {
        this.elapsed = 0; // the pointer holds the picture; resume from the position on leave
      } else if (this.elapsed >= step) {
        while (this.elapsed >= step) {
          this.elapsed -= step;
          this.advance();
        }
        this.show();
      }
      requestAnimationFrame(this.tick);
    }

    advance() {
      if (this.mode === "pingpong") {
        let next = this.index + this.direction;
        if (next < 0 || next >= this.n) {
          this.direction = -this.direction;
          next = this.index + this.direction;
        }
        this.index = clamp(next, 0, this.n - 1);
      } else {
        this.direction = 1;
        this.index = (this.index + 1) % this.n;
        if (this.index === 0 && this.soundOn()) {
          this.syncSound(); // a soundtrack shorter than the video ended: it starts again with the loop
          this.startSound();
        }
      }
    }

    step(delta) {
      this.pause();
      this.hover = null;
      this.hoverFromStrip = false;
      this.index = clamp(this.index + delta, 0, this.n - 1);
      this.syncSound();
      this.show();
    }

    seek(index, commit) {
      if (commit) {
        this.index = clamp(index, 0, this.n - 1);
        this.hover = null;
        this.syncSound();
      } else {
        this.hover = index === null ? null : clamp(index, 0, this.n - 1);
      }
      this.show();
    }

    destroy() {
      this.playing = false;
      if (this.audio) this.audio.pause();
      this.observer.disconnect();
      this.resize.disconnect();
      if (active === this) active = null;
    }

    // ------------------------------------------------------------ controls

    bindControls() {
      this.root.addEventListener("click", (event) => {
        const button = event.target.closest("[data-player-action]");
        if (!button) return;
        const action = button.dataset.playerAction;
        if (action === "play") this.toggle();
        else if (action === "prev") this.step(-1);
        else if (action === "next") this.step(1);
      });
      const mode = this.root.querySelector("[data-player-mode]");
      mode.addEventListener("change", () => {
        this.mode = mode.value;
        if (this.soundOn()) this.startSound();
        else if (this.audio) this.audio.pause(); // a sound cannot play backwards: ping-pong is silent
      });
      if (this.soundToggle) {
        this.soundToggle.addEventListener("change", () => {
          if (this.soundOn()) this.startSound();
          else this.audio.pause();
        });
      }
      const fps = this.root.querySelector("[data-player-fps]");
      fps.addEventListener("change", () => {
        this.fps = clamp(parseInt(fps.value, 10) || 12, 1, 60);
        fps.value = String(this.fps);
        if (this.audio) this.audio.playbackRate = clamp(this.fps / this.baseFps, 0.0625, 16); // the sound follows the speed
      });
      this.bindStripView();
    }

    bindStripView() {
      const buttons = this.root.querySelectorAll("[data-strip-view]");
      const density = this.root.querySelector("[data-strip-density]");
      const range = density.querySelector("input");
      const apply = (view, tile) => {
        this.strip.classList.toggle("strip", view === "strip");
        this.strip.classList.toggle("grid-view", view === "grid");
        this.strip.style.setProperty("--tile", `${tile}px`);
        density.hidden = view !== "grid";
        buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.stripView === view)));
        range.value = String(tile);
      };
      const stored = (key, fallback) => {
        try {
          return localStorage.getItem(key) || fallback;
        } catch {
          return fallback;
        }
      };
      const remember = (key, value) => {
        try {
          localStorage.setItem(key, value);
        } catch {
          /* private mode: the choice lasts for this page */
        }
      };
      let view = stored(VIEW_KEY, "strip");
      let tile = clamp(parseInt(stored(TILE_KEY, "96"), 10) || 96, 48, 192);
      apply(view, tile);
      buttons.forEach((b) =>
        b.addEventListener("click", () => {
          view = b.dataset.stripView;
          remember(VIEW_KEY, view);
          apply(view, tile);
          this.keepInStrip(this.figures[this.index]);
        }),
      );
      range.addEventListener("input", () => {
        tile = parseInt(range.value, 10);
        remember(TILE_KEY, String(tile));
        apply(view, tile);
      });
    }

    bindStrip() {
      this.strip.addEventListener("pointerover", (event) => {
        const figure = event.target.closest("figure.frame");
        if (!figure) return;
        this.hoverFromStrip = true;
        this.seek(parseInt(figure.dataset.index, 10), false);
      });
      this.strip.addEventListener("pointerleave", () => {
        this.hoverFromStrip = false;
        this.seek(null, false);
      });
      // Clicking a tile also opens its details (htmx); the player stays on it afterwards.
      this.strip.addEventListener("click", (event) => {
        const figure = event.target.closest("figure.frame");
        if (!figure) return;
        this.hoverFromStrip = true;
        this.seek(parseInt(figure.dataset.index, 10), true);
      });
    }

    bindScrubber() {
      const s = this.scrubber;
      const at = (event) => {
        const r = s.getBoundingClientRect();
        return this.indexAt(clamp((event.clientX - r.left) / r.width, 0, 1));
      };
      s.addEventListener("pointerdown", (event) => {
        if (event.button !== 0) return;
        s.setPointerCapture(event.pointerId);
        this.pause();
        this.seek(at(event), true);
      });
      s.addEventListener("pointermove", (event) => {
        this.seek(at(event), s.hasPointerCapture(event.pointerId));
      });
      s.addEventListener("pointerleave", () => this.seek(null, false));
      s.addEventListener("keydown", (event) => {
        const keys = { Home: -this.n, End: this.n, PageUp: -10, PageDown: 10 };
        if (!(event.key in keys)) return;
        event.preventDefault();
        this.step(keys[event.key]);
      });
    }

    drawScrubber() {
      const c = this.canvas;
      const width = c.clientWidth;
      const height = c.clientHeight;
      if (!width || !height || !this.n) return;
      const ratio = window.devicePixelRatio || 1;
      c.width = Math.round(width * ratio);
      c.height = Math.round(height * ratio);
      const g = c.getContext("2d");
      g.scale(ratio, ratio);
      g.clearRect(0, 0, width, height);
      const spacing = width / Math.max(1, this.n - 1);
      const gap = spacing >= 6 ? 1 : 0;
      g.fillStyle = "#c3c9f4"; // rendered frames; the track shows through where frames are missing
      for (let i = 0; i < this.n; i++) {
        if (!this.urls[i]) continue;
        const x0 = i === 0 ? 0 : ((this.times[i - 1] + this.times[i]) / 2) * width;
        const x1 = i === this.n - 1 ? width : ((this.times[i] + this.times[i + 1]) / 2) * width;
        g.fillRect(x0, 0, Math.max(1, x1 - x0 - gap), height);
      }
    }
  }

  // ------------------------------------------------------------ one keyboard handler for the page

  document.addEventListener("keydown", (event) => {
    const p = active;
    if (!p || !p.root.isConnected) return;
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const el = event.target instanceof Element ? event.target : null;
    if (isTyping(el) || document.querySelector("dialog[open]")) return;
    if (el && el.closest("[data-timeline] [role=slider]")) return; // keyframe markers use the arrows
    if (event.key === " ") {
      // A focused button or link keeps its own space, except the player's transport buttons.
      if (el && el.closest("button, a, summary, [role=button]") && !el.closest("[data-player-action]")) return;
      event.preventDefault();
      p.toggle();
    } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      p.step((event.key === "ArrowRight" ? 1 : -1) * (event.shiftKey ? 10 : 1));
    }
  });

  document.addEventListener("segue:scrub", (event) => {
    const p = active;
    if (!p || !p.root.isConnected || !p.n) return;
    const { t, commit } = event.detail;
    p.hoverFromStrip = false;
    if (t === null || t === undefined) p.seek(null, false);
    else p.seek(p.indexAt(t), !!commit);
  });

  function start(scope) {
    const roots = [];
    if (scope.matches && scope.matches("[data-player]")) roots.push(scope);
    if (scope.querySelectorAll) roots.push(...scope.querySelectorAll("[data-player]"));
    for (const root of roots) {
      if (root.segPlayer || !root.isConnected) continue;
      if (active) active.destroy();
      root.segPlayer = new Player(root);
      active = root.segPlayer;
    }
  }

  document.addEventListener("htmx:load", (event) => start(event.detail.elt));
  start(document);
})();
