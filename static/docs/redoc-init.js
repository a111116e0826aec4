// ReDoc at /redoc (app/routes/docs.py), offline, started here rather than by an inline script (CSP).
(() => {
  const root = document.getElementById("redoc");
  // ReDoc styles itself with <style> elements: they carry the nonce the page's policy names for them.
  Redoc.init(root.dataset.openapiUrl, { nonce: root.dataset.nonce }, root);
})();
