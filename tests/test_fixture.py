"""The committed tiny model is what its script builds: the fixture is reproducible, not a mystery blob."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import FIXTURES, TINY_HF


@pytest.mark.export
def test_hf_fixture_rebuilds_byte_identically(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_tiny_model", FIXTURES / "make_tiny_model.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / TINY_HF.name
    mod.build_hf(out)
    assert mod.digest(out) == mod.digest(TINY_HF)
