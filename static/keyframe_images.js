// A keyframe's image (templates/partials/keyframe_image.html): drop a picture on the zone or choose a file,
// sent to PATCH /api/keyframes/{id} as multipart `image`; "Remove image" sends {"image_url": null}.
// A refusal (422) is shown in the row; on success the page reloads to show the new thumbnail and version.
(function () {
  "use strict";

  function showError(zone, message) {
    var box = zone.querySelector(".kf-image-error");
    box.textContent = message;
    box.hidden = !message;
  }

  function send(zone, init) {
    showError(zone, "");
    zone.classList.add("busy");
    return fetch("/api/keyframes/" + zone.dataset.keyframeImage, Object.assign({ method: "PATCH", credentials: "same-origin" }, init))
      .then(function (response) {
        if (response.ok) {
          window.location.reload();
          return;
        }
        return response.json().then(function (body) {
          var errors = (body && body.errors) || {};
          var message = errors.image || errors.image_url || body.detail || ("refused (" + response.status + ")");
          showError(zone, typeof message === "string" ? message : JSON.stringify(message));
        }, function () {
          showError(zone, "the server refused the image (" + response.status + ")");
        });
      })
      .catch(function () { showError(zone, "the server could not be reached; try again"); })
      .finally(function () { zone.classList.remove("busy"); });
  }

  function upload(zone, file) {
    if (!file) return;
    var form = new FormData();
    form.append("image", file, file.name || "image");
    send(zone, { body: form });
  }

  function wire(zone) {
    if (zone.dataset.wired || zone.hasAttribute("data-readonly")) return;
    zone.dataset.wired = "true";
    var input = zone.querySelector("input[type=file]");
    if (input) input.addEventListener("change", function () { upload(zone, input.files[0]); });
    var remove = zone.querySelector(".kf-image-remove");
    if (remove) {
      remove.addEventListener("click", function () {
        send(zone, { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ image_url: null }) });
      });
    }
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("dragging"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dragging");
      var files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) upload(zone, files[0]);
    });
  }

  function wireAll(root) {
    (root || document).querySelectorAll("[data-keyframe-image]").forEach(wire);
  }

  document.addEventListener("DOMContentLoaded", function () { wireAll(document); });
  // The timeline is swapped by htmx after keyframe edits: wire the new rows.
  document.addEventListener("htmx:afterSettle", function (event) { wireAll(event.target); });
})();
