// The confusion map's hover: show the frame under a plot point with its values (the title holds them).
(() => {
  let tip = null;
  const hide = () => { if (tip) { tip.remove(); tip = null; } };
  document.addEventListener("mouseover", (event) => {
    const point = event.target.closest && event.target.closest(".plot-points .point");
    if (!point) return;
    hide();
    tip = document.createElement("div");
    tip.className = "score-tip";
    if (point.dataset.url) {
      const img = document.createElement("img");
      img.src = point.dataset.url;
      img.alt = "";
      tip.appendChild(img);
    }
    tip.appendChild(document.createTextNode(point.getAttribute("title") || ""));
    const box = point.getBoundingClientRect();
    tip.style.left = Math.min(window.innerWidth - 250, box.right + 8) + "px";
    tip.style.top = Math.max(8, box.top - 60) + "px";
    document.body.appendChild(tip);
  });
  document.addEventListener("mouseout", (event) => {
    if (event.target.closest && event.target.closest(".plot-points .point")) hide();
  });
  document.addEventListener("htmx:beforeSwap", hide);
})();
