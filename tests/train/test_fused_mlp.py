"""The fused mlp step: the same training as the general loop (autograd + KerasRMSprop), and only where it applies."""

from __future__ import annotations

import pytest
import torch

from digitlab.models.registry import build_model
from digitlab.train.callbacks import Callback
from digitlab.train.config import TrainConfig
from digitlab.train.device import cpu_supports_bf16, seed_everything
from digitlab.train.fused_mlp import FusedMLPStep, unsupported_reason
from digitlab.train.loop import fit


class _Capture(Callback):
    """Keeps the running metrics a progress bar would show after step 3, the optimizer's state and the
    scheduler's position at the end of training."""

    def on_batch_end(self, state, step):
        if state.epoch == 1 and step == 3:
            self.running = state.running_metrics()

    def on_train_end(self, state):
        self.optimizer_state = {k: v for k, v in state.optimizer.state_dict().items()}
        self.scheduler_epoch = state.scheduler.last_epoch
        self.fused = state.config.runtime.fused


@pytest.fixture(params=["native", "torch"])
def step_kind(request, monkeypatch):
    """Run a test with the fused step's native kernels, then with its torch version (DIGITLAB_NATIVE=0)."""
    from digitlab.train import native

    monkeypatch.setattr(native, "_loaded", None)
    if request.param == "torch":
        monkeypatch.setenv(native.ENV_SWITCH, "0")
    else:
        monkeypatch.delenv(native.ENV_SWITCH, raising=False)
        assert native.mlp_kernels() is not None, native.status()  # fail, not skip: the machine has a compiler
    return request.param


def _train(x, y, fused: bool, **settings):
    seed_everything(3)
    model = build_model("mlp", hidden=48)
    config = TrainConfig.from_flat(seed=3, fused=fused, **settings)
    capture = _Capture()
    history = fit(model, x, y, config, callbacks=[capture], verbose=False)
    return model, history, capture


# Odd sizes on purpose: 500 images in batches of 64 leave a last batch of 52.
SETTINGS = dict(epochs=2, batch_size=64, cpu_amp=False, label_smoothing=0.1, weight_decay=1e-4,
                schedule="cosine", warmup_epochs=0.5)


def _with_blank_border(x):
    """Images whose first 3 rows and last 2 columns are blank everywhere, as MNIST's borders are."""
    x = x.copy()
    x[:, :3, :] = 0
    x[:, :, -2:] = 0
    return x


@pytest.mark.parametrize("blank_border, weight_decay", [(False, 1e-4), (True, 0.0), (True, 1e-4)])
def test_fused_training_equals_the_general_loop_in_float32(tiny_digits, blank_border, weight_decay, step_kind):
    x, y = tiny_digits[0][:500], tiny_digits[1][:500]
    if blank_border:
        x = _with_blank_border(x)
    settings = dict(SETTINGS, weight_decay=weight_decay)
    fused_model, fused_history, fused_cap = _train(x, y, True, **settings)
    plain_model, plain_history, plain_cap = _train(x, y, False, **settings)

    for (name, a), b in zip(fused_model.state_dict().items(), plain_model.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name
    # The weights moved: equal because both trained, not because neither did.
    assert not torch.allclose(fused_model.dense2.weight, build_model("mlp", hidden=48).dense2.weight)
    assert fused_history["loss"] == pytest.approx(plain_history["loss"], rel=1e-5)
    assert fused_history["accuracy"] == plain_history["accuracy"]
    assert fused_history["lr"] == plain_history["lr"]
    # What a progress bar shows mid-epoch (the fused step scores its kept logits when asked).
    assert fused_cap.running["loss"] == pytest.approx(plain_cap.running["loss"], rel=1e-5)
    assert fused_cap.running["accuracy"] == plain_cap.running["accuracy"]

    # The optimizer's state is where the general loop leaves it, so checkpoints resume either way.
    fused_state, plain_state = fused_cap.optimizer_state["state"], plain_cap.optimizer_state["state"]
    assert fused_state.keys() == plain_state.keys() == {0, 1, 2, 3}
    for k in plain_state:
        assert float(fused_state[k]["step"]) == float(plain_state[k]["step"]) == 16  # 2 epochs x 8 steps
        assert torch.allclose(fused_state[k]["square_avg"], plain_state[k]["square_avg"], rtol=1e-4, atol=1e-12)
    assert fused_cap.scheduler_epoch == plain_cap.scheduler_epoch == 16


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no bf16 kernels")
def test_fused_training_in_bf16_tracks_the_general_loop(tiny_digits, step_kind):
    x, y = tiny_digits[0][:500], tiny_digits[1][:500]
    settings = dict(SETTINGS, cpu_amp=True, label_smoothing=0.0, weight_decay=0.0, schedule="constant",
                    warmup_epochs=0.0, epochs=3)
    fused_model, fused_history, _ = _train(x, y, True, **settings)
    plain_model, plain_history, _ = _train(x, y, False, **settings)
    # bf16 products round differently in the two paths, so close rather than equal. The torch version
    # rounds where autocast does; the native head keeps the small layer in float32, so a little further.
    tolerance = 1e-3 if step_kind == "torch" else 5e-3
    assert fused_history["loss"] == pytest.approx(plain_history["loss"], rel=tolerance)
    assert fused_history["loss"][-1] < 0.5 * fused_history["loss"][0]
    seed_everything(3)
    init = build_model("mlp", hidden=48)
    with torch.no_grad():
        for a, b, start in zip(fused_model.parameters(), plain_model.parameters(), init.parameters()):
            assert (a - b).norm() < 0.05 * (b - start).norm()  # the two runs moved the weights alike


def test_a_fused_run_reads_and_writes_the_model_and_optimizer_state(tiny_digits, step_kind):
    """Epoch by epoch the fused step reads the weights and RMSprop state in and writes them back, so a
    resumed run goes on, and the weights of always-blank pixels keep their values."""
    from digitlab.train.loop import to_input_tensor
    from digitlab.train.rmsprop import KerasRMSprop

    x = to_input_tensor(_with_blank_border(tiny_digits[0][:256]))
    seed_everything(0)
    model = build_model("mlp", hidden=16)
    optimizer = KerasRMSprop(model.parameters(), lr=1e-3, rho=0.5)
    step = FusedMLPStep(model, optimizer, TrainConfig.from_flat(batch_size=64, cpu_amp=False), bf16=False, x=x)
    assert step.kind == step_kind
    # The torch update keeps the state shifted by eps / rho (see fused_mlp_torch.FusedAdamRMSprop); the native one does not.
    shift = 1e-7 / 0.5 if step_kind == "torch" else 0.0
    assert len(step.alive) == 25 * 26 and step.images.shape == (256, 25 * 26 + 1)
    assert torch.all(step.images[:, -1] == 1)  # the bias column
    blank = torch.ones(28, 28, dtype=torch.bool)
    blank[3:, :-2] = False
    blank = blank.flatten()
    assert torch.equal(step.images[:, :-1], x.reshape(256, -1)[:, ~blank])
    with torch.no_grad():
        model.dense1.weight.fill_(0.01)
        model.dense1.bias.fill_(0.2)
    optimizer.state[model.dense1.weight]["square_avg"] = torch.full_like(model.dense1.weight, 4.0)
    step.load()
    layer1 = step._views(step.weights)[0]
    assert torch.all(layer1[:, :-1] == 0.01) and torch.all(layer1[:, -1] == 0.2)
    shifted = step._views(step.square_avg)
    assert torch.allclose(shifted[0][:, :-1], torch.tensor(4.0 + shift))
    assert torch.equal(shifted[0][:, -1], torch.full((16,), shift))  # b1 has no state yet: v = 0
    with torch.no_grad():
        layer1[:, :-1] = 0.5
        layer1[:, -1] = -0.3
    step.store(steps=3)
    w, avg = model.dense1.weight, optimizer.state[model.dense1.weight]["square_avg"]
    assert torch.all(w[:, ~blank] == 0.5) and torch.all(w[:, blank] == 0.01)
    assert torch.allclose(model.dense1.bias, torch.tensor(-0.3))
    assert torch.allclose(avg[:, ~blank], torch.tensor(4.0)) and torch.allclose(avg[:, blank], torch.tensor(0.5))
    assert float(optimizer.state[model.dense2.bias]["step"]) == 3


@pytest.mark.parametrize(
    "model_name, model_args, settings, reason",
    [
        ("mlp", {}, {}, None),
        ("mlp", {}, {"fused": False}, "turned off"),
        ("mlp", {"dropout": 0.2}, {}, "dropout"),
        ("mlp", {}, {"optimizer": "adam"}, "optimizer is adam"),
        ("mlp", {}, {"compile": True}, "torch.compile"),
        ("mlp", {}, {"rho": 0.0}, "rho is 0"),
        ("mlp", {}, {"ema_decay": 0.99}, "weight averaging (EMA)"),
        ("fast", {}, {}, "not the mlp"),
    ],
)
def test_the_fused_step_is_used_only_where_it_computes_the_same_training(model_name, model_args, settings, reason):
    model = build_model(model_name, **model_args)
    got = unsupported_reason(model, TrainConfig.from_flat(**settings), torch.device("cpu"), augmenting=False, distilling=False)
    assert got is None if reason is None else reason in got
    mlp = build_model("mlp")
    cpu = torch.device("cpu")
    assert "augmentation" in unsupported_reason(mlp, TrainConfig(), cpu, augmenting=True, distilling=False)
    assert "distillation" in unsupported_reason(mlp, TrainConfig(), cpu, augmenting=False, distilling=True)
    assert "cuda" in unsupported_reason(mlp, TrainConfig(), torch.device("cuda"), augmenting=False, distilling=False)


def test_fit_uses_the_fused_step_for_the_mlp(tiny_digits, monkeypatch):
    """The default path for the article's network really is the fused one (and not for other settings)."""
    calls = []
    original = FusedMLPStep.train_epoch

    def spy(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FusedMLPStep, "train_epoch", spy)
    x, y = tiny_digits[0][:128], tiny_digits[1][:128]
    fit(build_model("mlp", hidden=8), x, y, TrainConfig(epochs=2, batch_size=64), verbose=False)
    assert len(calls) == 2
    fit(build_model("mlp", hidden=8), x, y, TrainConfig.from_flat(epochs=1, batch_size=64, fused=False), verbose=False)
    fit(build_model("mlp", hidden=8), x, y, TrainConfig.from_flat(epochs=1, batch_size=64, optimizer="sgd"), verbose=False)
    assert len(calls) == 2


def test_the_cli_turns_the_fused_step_off_and_on():
    from digitlab.cli.main import build_parser
    from digitlab.cli.train import resolve_config

    def config(*argv):
        return resolve_config(build_parser().parse_args(["train", *argv]))[2]

    assert config().runtime.fused is True
    assert config("--no-fused").runtime.fused is False
    assert config("--fused").runtime.fused is True
