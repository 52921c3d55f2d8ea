"""Shared by the bench tests: the bench/ script under test, loaded as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench_script(name: str):
    """bench/NAME.py as the module NAME, as it runs: bench/ on the path for its own imports (step_profile
    imports time_to_accuracy), and the module in sys.modules so that worker processes find its functions."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench(request):
    """The script named by the test module's BENCH_SCRIPT."""
    return load_bench_script(request.module.BENCH_SCRIPT)
