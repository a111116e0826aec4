"""Engine tests run offline against one tiny random-weight model built per test session."""

from __future__ import annotations

import os

# huggingface_hub reads this once, at import time: set it before anything imports diffusers.
os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Imported here, not at the top: pytest-xdist's controller loads every conftest and runs no test, and
    # torch and diffusers cost it seconds of CPU the test processes need at start.
    from engine.tiny_model import build_tiny_model

    os.environ["HF_HUB_OFFLINE"] = "1"
    return build_tiny_model(tmp_path_factory.mktemp("models") / "segue-tiny", seed=0)
