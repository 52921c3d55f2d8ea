"""CPU settings for training: bf16 autocast choice, the allocator, denormal flushing."""

from __future__ import annotations

import platform

import pytest
import torch

from digitlab.train import device as dev


def test_cpu_bf16_auto_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.use_cpu_bf16(None) is True
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    assert dev.use_cpu_bf16(None) is False
    assert dev.use_cpu_bf16(False) is False  # an explicit "no" always wins


def test_cpu_bf16_forced_on_needs_onednn_bf16(monkeypatch):
    monkeypatch.setattr(dev, "cpu_supports_bf16", lambda: False)
    assert dev.use_cpu_bf16(True) is False
    monkeypatch.setattr(dev, "cpu_supports_bf16", lambda: True)
    assert dev.use_cpu_bf16(True) is True


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tune_allocator_applies_on_glibc_and_is_idempotent():
    assert dev.tune_allocator() is True
    assert dev.tune_allocator() is True


def test_cpu_float_mode_flushes_denormals_only_inside(monkeypatch):
    monkeypatch.setattr(dev, "_process_prepared", False)
    torch.set_flush_denormal(False)  # torch's default (a CLI test in this process may have changed it)
    tiny = torch.tensor([1e-39])  # a float32 denormal
    with dev.cpu_float_mode():
        assert float(tiny * 1.0) == 0.0
    assert float(tiny * 1.0) > 0.0  # torch's default (denormals kept) is back afterwards


def test_a_prepared_process_keeps_flushing_after_fit(monkeypatch):
    monkeypatch.setattr(dev, "_process_prepared", False)
    try:
        dev.prepare_training_process()
        with dev.cpu_float_mode():
            pass
        assert float(torch.tensor([1e-39]) * 1.0) == 0.0
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("argv, trains", [
    (["train", "--epochs", "0"], True), (["cv", "--folds", "1"], True), (["models"], False),
])
def test_training_commands_prepare_the_process_first(argv, trains, monkeypatch, capsys):
    from digitlab.cli.main import main

    calls = []
    monkeypatch.setattr(dev, "prepare_training_process", lambda: calls.append(argv[0]))
    main(argv)  # train/cv fail on the bad setting, after the preparation
    assert calls == ([argv[0]] if trains else [])
