"""What several browser tests share: a JSON call to the running server's API, keeping a screenshot, and
dropping a file on an element."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any


def api(server: str, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    """Call the API of the server under test; the JSON answer ({} for an empty one)."""
    request = urllib.request.Request(
        server + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def keep_screenshot(tmp_path: Path, name: str) -> None:
    """Copy a screenshot the test took into SEGUE_SCREENSHOTS, when set (how docs/ images are made)."""
    if os.environ.get("SEGUE_SCREENSHOTS"):
        shutil.copy(tmp_path / name, Path(os.environ["SEGUE_SCREENSHOTS"]) / name)


#: page.evaluate(DROP, [selector, base64 PNG]): drag a PNG file over the element and drop it there.
DROP = """([selector, data]) => {
  const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "sunset.png", {type: "image/png"}));
  const zone = document.querySelector(selector);
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""
