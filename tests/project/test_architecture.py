"""The house rules: one layer per folder, arrows only point down, the web process stays torch-free."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contract_holds() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_web_app_loads_without_torch_or_transformers() -> None:
    code = (
        "import sys; from app.main import create_app; create_app(); "
        "from services.prompts import prompt_warning; "
        "prompt_warning('prompt', 'a city ' * 60, 'segue-mini'); "
        "heavy = sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules); print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_render_worker_never_loads_the_web_app() -> None:
    # What `segue worker` starts (celery -A worker.celery_app): the Celery app, its tasks, then every worker
    # module a task reaches; none of them may pull in FastAPI, Starlette, Jinja or Segue's web app.
    code = (
        "import importlib, pkgutil, sys; import worker; from worker.celery_app import celery; "
        "celery.loader.import_default_modules(); "
        "[importlib.import_module('worker.' + m.name) for m in pkgutil.iter_modules(worker.__path__)]; "
        "assert 'worker.tasks' in sys.modules and 'worker.render' in sys.modules; "
        "web = ('fastapi', 'starlette', 'jinja2', 'jinja2_fragments', 'sse_starlette', 'app'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in web))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
