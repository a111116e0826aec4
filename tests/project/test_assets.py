"""Every script and style is loaded once, from templates/base.html: no partial links its own, no script
guards against being loaded twice, no template carries a <style> block."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TAGS = re.compile(r"<script\b[^>]*\bsrc=|<link\b[^>]*rel=\"stylesheet\"|<style\b", re.IGNORECASE)


def test_only_the_base_template_loads_scripts_and_styles() -> None:
    # The API docs pages (templates/docs/) are standalone documents with their own vendored assets.
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "templates").rglob("*.html"))
        if path.name != "base.html" and "docs" not in path.parts and TAGS.search(path.read_text())
    ]
    assert offenders == []


def test_the_base_template_loads_each_asset_once_and_every_one_exists() -> None:
    base = (ROOT / "templates" / "base.html").read_text()
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', base)
    assert len(assets) == len(set(assets))
    assert all((ROOT / "static" / name).is_file() for name in assets)
    ours = {p.name for p in (ROOT / "static").glob("*.js")} | {
        p.name for p in (ROOT / "static").glob("*.css")
    }
    assert ours <= set(assets), f"not loaded by base.html: {sorted(ours - set(assets))}"


def test_no_script_guards_against_running_twice() -> None:
    guards = [
        p.name
        for p in (ROOT / "static").glob("*.js")
        if re.search(r"window\.(__)?segue\w*\)\s*return", p.read_text())
    ]
    assert guards == []
