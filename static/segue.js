// Small behaviours htmx does not cover: the frame dialog opens when a frame's details arrive.
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target && event.detail.target.id === "modal") {
    const dialog = document.getElementById("frame-dialog");
    if (dialog && !dialog.open) dialog.showModal();
  }
  if (event.detail.target && event.detail.target.id === "timeline") {
    const dialog = document.getElementById("frame-dialog");
    if (dialog && dialog.open) dialog.close();
  }
});
document.addEventListener("click", (event) => {
  const dialog = document.getElementById("frame-dialog");
  if (dialog && event.target === dialog) dialog.close();  // click on the backdrop
});

// Positions and sizes the server computes travel as data-css-* attributes and are applied here through the
// CSSOM: the Content-Security-Policy (style-src 'self') refuses style="" attributes in HTML. Numbers only.
(() => {
  const UNITS = { left: "%", top: "%", width: "%", height: "px" };
  const SELECTOR = "[data-css-left], [data-css-top], [data-css-width], [data-css-height], [data-css-aspect]";
  const number = (value) => {
    const n = Number.parseFloat(value);
    return Number.isFinite(n) ? n : null;
  };
  const place = (el) => {
    for (const [property, unit] of Object.entries(UNITS)) {
      const n = number(el.getAttribute(`data-css-${property}`));
      if (n !== null) el.style[property] = `${n}${unit}`;
    }
    const aspect = (el.getAttribute("data-css-aspect") || "").split("/").map(number);
    if (aspect.length === 2 && aspect[0] > 0 && aspect[1] > 0) el.style.aspectRatio = `${aspect[0]} / ${aspect[1]}`;
  };
  // Every frame of the confusion map's problems gets an outline in the film strip (tiles may be swapped in
  // later): the problem list names them in data-involved.
  const markFlagged = () => {
    const list = document.querySelector("#scores [data-involved]");
    const flagged = new Set(
      ((list && list.dataset.involved) || "").split(" ").filter(Boolean).map((index) => `frame-${index}`),
    );
    document.querySelectorAll(".flagged-frame").forEach((el) => {
      if (!flagged.has(el.id)) el.classList.remove("flagged-frame");
    });
    flagged.forEach((id) => {
      const frame = document.getElementById(id);
      if (frame) frame.classList.add("flagged-frame");
    });
  };
  const apply = (root) => {
    if (root.matches && root.matches(SELECTOR)) place(root);
    if (root.querySelectorAll) root.querySelectorAll(SELECTOR).forEach(place);
    markFlagged();
  };
  htmx.onLoad(apply);
  document.addEventListener("DOMContentLoaded", () => apply(document.body));
})();
