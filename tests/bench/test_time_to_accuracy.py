"""bench/time_to_accuracy.py's own logic: preset options and the warm-up that covers every batch shape."""

from __future__ import annotations


import numpy as np
import pytest

from digitlab.data.dataset import Dataset
from digitlab.errors import ConfigError

BENCH_SCRIPT = "time_to_accuracy"


@pytest.mark.parametrize("spec, expected", [
    ("fast", ("fast", {})),
    ("fast+compile", ("fast", {"compile": True, "compile_mode": "default"})),
    ("fast-99.5+compile:reduce-overhead", ("fast-99.5", {"compile": True, "compile_mode": "reduce-overhead"})),
])
def test_preset_options(bench, spec, expected):
    assert bench.parse_spec(spec) == expected


@pytest.mark.parametrize("spec, match", [
    ("fast+jit", "unknown preset option 'jit'"),
    ("fast+compile:fastest", "unknown compile mode 'fastest'.*reduce-overhead"),
    ("quick", "unknown preset"),
])
def test_bad_preset_specs_fail_before_any_training(bench, spec, match):
    with pytest.raises(ConfigError, match=match):
        bench.parse_spec(spec)


@pytest.mark.parametrize("n_train, batch_size", [(60000, 128), (3000, 128), (1000, 100), (700, 64)])
def test_the_warm_up_sees_the_last_partial_batch_of_the_timed_runs(bench, n_train, batch_size):
    # cuDNN autotunes, and torch.compile compiles, once per new batch shape: the warm-up must meet them all.
    x = np.zeros((n_train, 28, 28), np.uint8)
    y = np.zeros(n_train, np.int64)
    data = Dataset("mnist", x, y, x[:300], y[:300], [str(k) for k in range(10)], "test")
    warm = bench.warmup_subset(data, batch_size, n_batches=4)
    assert len(warm.x_train) % batch_size == n_train % batch_size
    assert len(warm.x_train) // batch_size == 4 and len(warm.y_train) == len(warm.x_train)
