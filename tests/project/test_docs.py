"""The docs hold together: the README stays short, every relative link and image in README.md and docs/
points at a file and heading that exist, and docs/architecture.md names every module of worker/."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _prose(path: Path) -> str:
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", _prose(path), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_readme_is_read_in_ten_minutes() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail into docs/"


def test_every_relative_link_and_image_resolves() -> None:
    broken = []
    for page in PAGES:
        for url in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", _prose(page)):
            if re.match(r"[a-z]+:", url):
                continue
            path, _, anchor = url.partition("#")
            target = (page.parent / path) if path else page
            if not target.exists():
                broken.append(f"{page.name}: {url}")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{page.name}: {url} (no such heading)")
    assert not broken, broken


def test_the_architecture_names_every_worker_module() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(p.name for p in (REPO / "worker").glob("*.py") if p.name != "__init__.py")
    missing = [name for name in modules if f"`{name}`" not in text]
    assert not missing, f"docs/architecture.md does not describe worker/{missing}"
