"""The training loop on small synthetic data: it learns, it is reproducible, it reports a History."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from digitlab.errors import ConfigError
from digitlab.evaluate.metrics import evaluate, predict_proba
from digitlab.models.registry import build_model
from digitlab.train.config import TrainConfig
from digitlab.train.device import seed_everything
from digitlab.train.loop import fit
from digitlab.train.optim import lr_factor
from digitlab.train.rmsprop import KerasRMSprop


def _model(seed=0):
    seed_everything(seed)
    return build_model("mlp", hidden=64)


def test_fit_learns_and_returns_history(tiny_digits):
    x, y = tiny_digits
    model = _model()
    history = fit(model, x[:500], y[:500], TrainConfig(epochs=3, batch_size=32),
                  validation_data=(x[500:], y[500:]), verbose=False)
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time"}
    assert history.epochs == 3
    assert history["loss"][-1] < history["loss"][0]
    scores = evaluate(model, x[500:], y[500:])
    assert scores["accuracy"] >= 0.9
    assert scores["accuracy"] == pytest.approx(history["val_accuracy"][-1])


def test_fit_is_reproducible_with_a_seed(tiny_digits):
    x, y = tiny_digits
    runs = []
    for _ in range(2):
        model = _model(3)
        fit(model, x, y, TrainConfig(epochs=2, batch_size=50, seed=3), verbose=False)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])
    other = _model(3)
    fit(other, x, y, TrainConfig(epochs=2, batch_size=50, seed=4), verbose=False)
    assert not torch.equal(runs[0], torch.cat([p.detach().flatten() for p in other.parameters()]))


def test_rmsprop_uses_keras_defaults():
    from digitlab.train.optim import make_optimizer

    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], TrainConfig())
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.Optimizer)
    assert (group["lr"], group["alpha"], group["eps"]) == (1e-3, 0.9, 1e-7)


def test_rmsprop_step_matches_the_keras_formula():
    # Keras 3: v = rho v + (1 - rho) g^2 ; w -= lr g / sqrt(v + eps), exactly, tiny gradients included
    # (torch's RMSprop puts eps outside the sqrt and would take a 3x larger step for g = 1e-4).
    from digitlab.train.optim import make_optimizer

    g = torch.tensor([0.3, -0.02, 2.0, 1e-4])
    w = torch.nn.Parameter(torch.zeros(4))
    opt = make_optimizer([w], TrainConfig())
    v = torch.zeros(4, dtype=torch.float64)
    expected = torch.zeros(4, dtype=torch.float64)
    for _ in range(3):
        w.grad = g.clone()
        opt.step()
        v = 0.9 * v + 0.1 * g.double() ** 2
        expected = expected - 1e-3 * g.double() / torch.sqrt(v + 1e-7)
    assert torch.allclose(w.detach().double(), expected, rtol=1e-5, atol=0)


def test_rmsprop_weight_decay_state_dict_and_a_torch_rmsprop_checkpoint():
    from digitlab.train.optim import make_optimizer

    w = torch.nn.Parameter(torch.ones(3))
    opt = make_optimizer([w], TrainConfig.from_flat(weight_decay=0.1))
    w.grad = torch.zeros(3)
    opt.step()  # the gradient is only the decay term 0.1 * w: the step shrinks w
    assert torch.all(w.detach() < 1.0)
    state = opt.state_dict()
    assert set(state["state"][0]) == {"step", "square_avg"}  # no scratch buffers saved
    # A checkpoint written by torch.optim.RMSprop (the optimizer digitlab used before) resumes here.
    legacy_w = torch.nn.Parameter(torch.ones(3))
    legacy = torch.optim.RMSprop([legacy_w], lr=1e-3, alpha=0.9, eps=1e-7)
    legacy_w.grad = torch.full((3,), 0.5)
    legacy.step()
    resumed = make_optimizer([legacy_w], TrainConfig())
    resumed.load_state_dict(legacy.state_dict())
    before = resumed.state[legacy_w]["square_avg"].clone()
    resumed.step()
    assert torch.allclose(resumed.state[legacy_w]["square_avg"], 0.9 * before + 0.1 * 0.25)


def test_building_the_rmsprop_optimizer_skips_the_torch_dynamo_import():
    """torch._dynamo costs about a second to import; `digitlab train --model mlp` never needs it."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from digitlab.train.rmsprop import KerasRMSprop\n"
            "w = torch.nn.Parameter(torch.zeros(2))\n"
            "opt = KerasRMSprop([{'params': [w]}, {'params': [torch.nn.Parameter(torch.ones(1))], 'lr': 0.5}])\n"
            "assert [g['lr'] for g in opt.param_groups] == [1e-3, 0.5], opt.param_groups\n"
            "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    # The checks torch's add_param_group makes still apply.
    w = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="appear in more than one"):
        KerasRMSprop([{"params": [w]}, {"params": [w]}])


def test_lr_schedules_warm_up_then_decay():
    total, warm = 100, 10
    assert lr_factor(0, total, warm, "constant") == pytest.approx(0.1)
    assert lr_factor(50, total, warm, "constant") == 1.0
    assert lr_factor(9, total, warm, "cosine") == pytest.approx(1.0)
    assert lr_factor(10, total, warm, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, total, warm, "cosine") == pytest.approx(0.5)
    assert lr_factor(99, total, warm, "cosine") < 0.01
    assert lr_factor(99, total, 0, "onecycle") < 0.02
    assert max(lr_factor(s, total, 0, "onecycle") for s in range(total)) == pytest.approx(1.0)
    assert all(math.isfinite(lr_factor(s, total, warm, "onecycle")) for s in range(total))


def test_the_exponential_schedule_decays_by_lr_decay_per_epoch():
    steps_per_epoch, warm = 50, 10
    per_step = 0.98 ** (1 / steps_per_epoch)
    assert lr_factor(0, 1000, warm, "exponential", per_step) == pytest.approx(0.1)  # warm-up first
    assert lr_factor(warm, 1000, warm, "exponential", per_step) == pytest.approx(1.0)
    assert lr_factor(warm + steps_per_epoch, 1000, warm, "exponential", per_step) == pytest.approx(0.98)
    assert lr_factor(warm + 100 * steps_per_epoch, 1000, warm, "exponential", per_step) == pytest.approx(0.98 ** 100)


def test_the_scheduler_follows_lr_decay(tiny_digits):
    from digitlab.train.optim import make_optimizer, make_scheduler

    config = TrainConfig.from_flat(epochs=3, optimizer="adam", lr=1e-3, schedule="exponential", lr_decay=0.5)
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(2))], config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch=4)
    for _ in range(8):  # two epochs
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25)
    with pytest.raises(ConfigError, match=r"lr decay .* must be in \(0, 1\]"):
        config.replace(lr_decay=0.0)


def test_val_split_early_stopping_and_keep_best(tiny_digits):
    x, y = tiny_digits
    # A third of the labels are random: memorising them makes val_loss rise after a few epochs.
    rng = np.random.default_rng(1)
    y = np.where(rng.random(len(y)) < 1 / 3, rng.integers(0, 10, len(y)), y)
    model = _model()
    cfg = TrainConfig.from_flat(epochs=30, batch_size=32, lr=0.05, val_split=100, early_stopping=2, keep_best=True)
    history = fit(model, x, y, cfg, verbose=False)
    assert history.epochs < 30  # stopped early
    best = int(np.argmin(history["val_loss"]))
    assert history.epochs - 1 - best == 2  # exactly `patience` epochs without improvement


def test_bad_inputs_are_config_errors(tiny_digits):
    x, y = tiny_digits
    with pytest.raises(ConfigError, match="must match"):
        fit(_model(), x, y[:10], TrainConfig(epochs=1), verbose=False)
    with pytest.raises(ConfigError, match="need validation data"):
        fit(_model(), x, y, TrainConfig(epochs=1, early_stopping=2), verbose=False)
    with pytest.raises(ConfigError, match="shaped"):
        fit(_model(), np.zeros((4, 32, 32), np.uint8), np.zeros(4, np.int64), TrainConfig(epochs=1), verbose=False)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        TrainConfig.from_flat(optimizer="adagrad")
    with pytest.raises(ConfigError, match="epochs must be"):
        TrainConfig(epochs=0)


def test_predict_proba_rows_sum_to_one(tiny_digits):
    x, _ = tiny_digits
    proba = predict_proba(_model(), x[:10])
    assert proba.shape == (10, 10) and proba.dtype == np.float32
    assert np.allclose(proba.sum(1), 1, atol=1e-5)


@pytest.mark.integration
def test_mlp_one_epoch_on_real_mnist(mnist):
    seed_everything(0)
    model = build_model("mlp")
    history = fit(model, mnist.x_train, mnist.y_train, TrainConfig(epochs=1, batch_size=128), verbose=False)
    scores = evaluate(model, mnist.x_test, mnist.y_test)
    assert history["accuracy"][0] > 0.9
    assert scores["accuracy"] >= 0.95
