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
