from __future__ import annotations

from pathlib import Path

import pytest

from services.detect.evalset import Sequence, load_sequence

EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval"


def _seq(name: str) -> Sequence:
    folder = EVAL / name
    if not (folder / "sequence.json").exists():
        pytest.skip(f"real footage not found at {folder} (shared/eval beside the repo)")
    return load_sequence(folder)


@pytest.fixture(scope="session")
def trees() -> Sequence:
    return _seq("wallflower_wavingtrees")


@pytest.fixture(scope="session")
def highway() -> Sequence:
    return _seq("cdnet_highway")
