"""Tampered model files: every one refused with one ModelError line naming the problem, before allocation."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import save as serialize

from digitlab.errors import ModelError
from digitlab.models.registry import build_model, default_kwargs, list_models
from digitlab.models.schema import ARGUMENTS
from digitlab.models.storage import load_model, load_model_meta, save_model


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    return save_model(build_model("mlp", hidden=8), tmp_path / "run")


def _edit(run, change) -> None:
    meta = json.loads((run / "model.json").read_text())
    change(meta)
    (run / "model.json").write_text(json.dumps(meta))


def _refused(path, *needles) -> str:
    with pytest.raises(ModelError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def _kwargs(meta):
    return meta["architecture"]["kwargs"]


@pytest.mark.parametrize("change, needles", [
    (lambda m: _kwargs(m).update(hidden="512"), ("architecture.kwargs.hidden", "whole number")),
    (lambda m: _kwargs(m).update(hidden=512.5), ("architecture.kwargs.hidden",)),
    (lambda m: _kwargs(m).update(hidden=-5), ("architecture.kwargs.hidden", "from 1 to")),
    (lambda m: _kwargs(m).update(hidden=1000000), ("architecture.kwargs.hidden", "16384")),
    (lambda m: _kwargs(m).update(hidden=True), ("architecture.kwargs.hidden",)),
    (lambda m: _kwargs(m).update(dropout=2), ("architecture.kwargs.dropout", "[0, 1)")),
    (lambda m: _kwargs(m).update(num_classes=10**9), ("architecture.kwargs.num_classes",)),
    (lambda m: _kwargs(m).update(colour="red"), ("unknown arguments colour",)),
    (lambda m: m["architecture"].update(kwargs="hidden=8"), ("architecture.kwargs", "object")),
    (lambda m: m["architecture"].update(name="resnet"), ("architecture.name", "'resnet'")),
    (lambda m: m.update(architecture=[1, 2]), ("architecture",)),
    (lambda m: m.update(architecture={"name": "mlp", "kwargs": {}, "code": "x"}), ("unknown keys code",)),
    (lambda m: m.update(format_version=99), ("format_version",)),
    (lambda m: m.update(classes="0123456789"), ("classes",)),
    (lambda m: m.update(classes=[str(i) for i in range(3)]), ("classes", "architecture has 10")),
    (lambda m: m.update(weights="/etc/passwd"), ("weights must be the name of a .safetensors file", "own folder")),
    (lambda m: m.update(weights="../other/model.safetensors"), ("weights must be the name",)),
    (lambda m: m.update(weights_sha256="abc"), ("weights_sha256",)),
    (lambda m: m.update(num_params="many"), ("num_params",)),
    (lambda m: m.update(metrics="great"), ("metrics",)),
    (lambda m: m.update(format="other"), ("not a digitlab model description",)),
])
def test_tampered_model_json_is_refused_with_one_line(run, change, needles):
    _edit(run, change)
    _refused(run, str(run / "model.json") if "format" not in needles[0] else "", *needles)
    with pytest.raises(ModelError):
        load_model_meta(run)


def test_huge_architecture_is_refused_before_any_allocation(run):
    # Within each argument's bound, but the whole too big: caught on the meta device, no memory spent.
    _edit(run, lambda m: m["architecture"].update(name="deep", kwargs={"widths": [1024] * 10}))
    _refused(run, "parameters, over digitlab's limit")


def test_weights_outside_the_run_folder_are_refused_even_through_a_symlink(run, tmp_path):
    outside = save_model(build_model("mlp", hidden=8), tmp_path / "elsewhere")
    (run / "model.safetensors").unlink()
    (run / "model.safetensors").symlink_to(outside / "model.safetensors")
    _refused(run, "must be a regular file in the folder of model.json")


def _rewrite_weights(run, state) -> None:
    blob = serialize(state, metadata={"format": "digitlab-model"})
    (run / "model.safetensors").write_bytes(blob)
    import hashlib

    _edit(run, lambda m: m.update(weights_sha256=hashlib.sha256(blob).hexdigest()))  # a consistent forgery


@pytest.mark.parametrize("dtype, label", [(torch.float16, "F16"), (torch.int64, "I64"), (torch.float64, "F64")])
def test_weights_of_another_dtype_are_refused(run, dtype, label):
    state = {k: v.to(dtype) for k, v in load_model(run).state_dict().items()}
    _rewrite_weights(run, state)
    _refused(run, f"is {label}, expected F32")


def test_nan_weights_are_refused(run):
    state = dict(load_model(run).state_dict())
    state["dense2.bias"] = state["dense2.bias"].clone()
    state["dense2.bias"][3] = float("nan")
    _rewrite_weights(run, state)
    _refused(run, "dense2.bias holds NaN or infinite values")


def test_missing_or_extra_tensors_are_refused(run):
    state = dict(load_model(run).state_dict())
    state["backdoor"] = torch.zeros(2)
    del state["dense1.bias"]
    _rewrite_weights(run, state)
    _refused(run, "missing dense1.bias", "unexpected backdoor")


def test_header_lying_about_its_length_is_refused(run):
    (run / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}")
    _refused(run, "header", "corrupt")


def test_weights_swapped_for_a_same_shape_model_fail_the_recorded_hash(run, tmp_path):
    other = save_model(build_model("mlp", hidden=8), tmp_path / "other")
    (run / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    _refused(run, "do not match the weights_sha256 recorded in model.json")


def test_every_registered_model_has_a_schema_for_exactly_its_arguments():
    assert {e.name for e in list_models()} == set(ARGUMENTS)
    for name, checks in ARGUMENTS.items():
        assert set(checks) == set(default_kwargs(name)), name


@pytest.mark.parametrize("name", sorted(ARGUMENTS))
def test_every_model_with_default_arguments_round_trips(tmp_path, name):
    model = build_model(name)
    loaded = load_model(save_model(model, tmp_path / name))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


# --- a save killed part-way: old run, new run, or one-line refusal; never a loaded mixed pair -------

_SAVER = textwrap.dedent("""
    import sys, torch
    from digitlab.models.registry import build_model
    from digitlab.models.storage import save_model
    torch.manual_seed(2)
    model = build_model("mlp", hidden=256)
    save_model(model, sys.argv[2])  # warm up: the lazy imports of the first save are behind us
    print("ready", flush=True)
    sys.stdin.readline()
    while True:  # save again and again, so that the kill lands anywhere inside save_model
        save_model(model, sys.argv[1])
""")


@pytest.mark.slow
def test_kill_during_save_leaves_old_or_new_or_a_clean_refusal(tmp_path):
    torch.manual_seed(1)
    old_model = build_model("mlp", hidden=256)
    torch.manual_seed(2)
    new_weight = build_model("mlp", hidden=256).dense1.weight.detach().clone()
    rng = random.Random(0)
    outcomes = {"old": 0, "new": 0, "refused": 0}
    for trial in range(25):
        run = save_model(old_model, tmp_path / f"run-{trial}")
        saver = subprocess.Popen([sys.executable, "-c", _SAVER, str(run), str(tmp_path / "warm-up")], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        assert saver.stdout.readline().strip() == "ready"
        saver.stdin.write("go\n")
        saver.stdin.flush()
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(saver.pid, signal.SIGKILL)
        saver.wait()
        try:
            loaded = load_model(run)
        except ModelError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
            continue
        weight = loaded.dense1.weight.detach()
        if torch.equal(weight, old_model.dense1.weight.detach()):
            outcomes["old"] += 1
        else:
            assert torch.equal(weight, new_weight), f"trial {trial}: a mixed pair loaded"
            outcomes["new"] += 1
        # The next save cleans what the killed one left behind.
        save_model(old_model, run)
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert sum(outcomes.values()) == 25
    assert outcomes["new"] > 0, outcomes  # the kills did land inside saves
