"""Optimizers (AdamW, SGD + Nesterov, RMSprop) and the one-cycle / cosine schedules with warm-up."""

from __future__ import annotations

import math

import pytest
import torch

from digitlab.models.registry import build_model
from digitlab.train.config import TrainConfig
from digitlab.train.device import seed_everything
from digitlab.train.loop import fit
from digitlab.train.optim import lr_factor, make_optimizer, make_scheduler


def test_onecycle_warms_up_linearly_then_decays_to_zero():
    total, warm = 100, 20
    f = [lr_factor(s, total, warm, "onecycle") for s in range(total)]
    assert f[0] == pytest.approx(1 / 20) and f[19] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(f[:20], f[1:20]))
    assert all(b < a for a, b in zip(f[20:], f[21:]))
    assert f[60] == pytest.approx(0.5)  # halfway down the linear decay
    assert lr_factor(total, total, warm, "onecycle") == 0.0


def test_onecycle_without_warmup_uses_a_quarter_of_training():
    f = [lr_factor(s, 100, 0, "onecycle") for s in range(100)]
    assert max(f) == 1.0 and f.index(1.0) == 24


def test_cosine_with_warmup():
    total, warm = 110, 10
    assert lr_factor(4, total, warm, "cosine") == pytest.approx(0.5)
    assert lr_factor(10, total, warm, "cosine") == pytest.approx(1.0)
    assert lr_factor(60, total, warm, "cosine") == pytest.approx(0.5)
    assert lr_factor(85, total, warm, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    assert lr_factor(total, total, warm, "cosine") == pytest.approx(0.0, abs=1e-12)


def test_constant_with_warmup():
    assert [lr_factor(s, 10, 4, "constant") for s in (0, 3, 4, 9)] == [0.25, 1.0, 1.0, 1.0]


def test_scheduler_steps_per_batch_from_the_config():
    param = torch.nn.Parameter(torch.zeros(1))
    config = TrainConfig.from_flat(epochs=4, optimizer="sgd", lr=0.2, schedule="onecycle", warmup_epochs=1)
    opt = make_optimizer([param], config)
    sched = make_scheduler(opt, config, steps_per_epoch=5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[4] == pytest.approx(0.2) and lrs[0] == pytest.approx(0.04)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_adamw_decay_is_decoupled_from_the_gradient():
    # With a zero gradient Adam's update is zero, so AdamW's only change is p *= 1 - lr * wd.
    p = torch.nn.Parameter(torch.full((3,), 2.0))
    opt = make_optimizer([p], TrainConfig.from_flat(optimizer="adamw", lr=0.1, weight_decay=0.5))
    assert isinstance(opt, torch.optim.AdamW)
    p.grad = torch.zeros(3)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 2.0 * (1 - 0.1 * 0.5)))


@pytest.mark.parametrize("name", ["adam", "adamw"])
@pytest.mark.parametrize("beta1,beta2", [(0.9, 0.999), (0.7, 0.9)])
def test_adam_betas_reach_the_update(name, beta1, beta2):
    # Gradient 1 then 0: the second step moves p by lr * m_hat / sqrt(v_hat), where bias correction
    # leaves m_hat = beta1 / (1 + beta1) and v_hat = beta2 / (1 + beta2): both betas show in it.
    p = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([p], TrainConfig.from_flat(optimizer=name, lr=0.1, beta1=beta1, beta2=beta2, eps=1e-12))
    assert opt.param_groups[0]["betas"] == (beta1, beta2)
    p.grad = torch.ones(1)
    opt.step()
    before = p.detach().clone()
    p.grad = torch.zeros(1)
    opt.step()
    expected = 0.1 * (beta1 / (1 + beta1)) / math.sqrt(beta2 / (1 + beta2))
    torch.testing.assert_close(before - p.detach(), torch.tensor([expected]))


@pytest.mark.parametrize("field,value", [("beta1", 1.0), ("beta2", -0.1), ("beta2", 1.5)])
def test_betas_outside_0_1_are_a_config_error(field, value):
    from digitlab.errors import ConfigError

    with pytest.raises(ConfigError, match=f"{field} must be in \\[0, 1\\)"):
        TrainConfig.from_flat(optimizer="adam", **{field: value})


def test_sgd_uses_nesterov_momentum_and_l2_decay():
    p = torch.nn.Parameter(torch.full((2,), 1.0))
    opt = make_optimizer([p], TrainConfig.from_flat(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.01))
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD) and group["nesterov"] and group["momentum"] == 0.9
    p.grad = torch.zeros(2)
    opt.step()  # first Nesterov step: p -= lr * (1 + momentum) * (grad + wd * p)
    torch.testing.assert_close(p.detach(), torch.full((2,), 1.0 - 0.1 * 1.9 * 0.01))
    plain = make_optimizer([p], TrainConfig.from_flat(optimizer="sgd", momentum=0.0))
    assert plain.param_groups[0]["nesterov"] is False


@pytest.mark.parametrize("optimizer,lr,schedule", [
    ("adamw", 3e-3, "cosine"), ("sgd", 0.05, "onecycle"), ("rmsprop", 1e-3, "constant"), ("adam", 2e-3, "onecycle"),
])
def test_each_optimizer_and_schedule_trains_a_convnet(tiny_digits, optimizer, lr, schedule):
    x, y = tiny_digits
    seed_everything(0)
    model = build_model("fast", widths=[8, 16, 16])
    config = TrainConfig.from_flat(epochs=3, batch_size=32, optimizer=optimizer, lr=lr, schedule=schedule, warmup_epochs=0.5,
                         weight_decay=1e-4, device="cpu", threads=1)
    history = fit(model, x[:500], y[:500], config, validation_data=(x[500:], y[500:]), verbose=False)
    assert history["val_accuracy"][-1] >= 0.9
    if schedule != "constant":
        assert history["lr"][-1] == pytest.approx(0.0, abs=1e-9)  # decayed to zero at the last step


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_torch_optimizers_use_the_fused_kernels_and_match_foreach(name):
    import copy

    torch.manual_seed(0)
    model = build_model("fast").to(memory_format=torch.channels_last)
    twin = copy.deepcopy(model)
    config = TrainConfig.from_flat(optimizer=name, weight_decay=1e-3)
    fused = make_optimizer(model.parameters(), config)
    assert fused.param_groups[0]["fused"] is True
    settings = {"sgd": dict(lr=config.optimizer.learning_rate, momentum=0.9, nesterov=True, weight_decay=1e-3),
                "adam": dict(lr=config.optimizer.learning_rate, eps=config.optimizer.eps, weight_decay=1e-3),
                "adamw": dict(lr=config.optimizer.learning_rate, eps=config.optimizer.eps, weight_decay=1e-3)}[name]
    reference = type(fused)(twin.parameters(), foreach=True, **settings)
    for _ in range(3):
        for p, q in zip(model.parameters(), twin.parameters()):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        fused.step()
        reference.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
        assert p.is_contiguous(memory_format=torch.channels_last) or p.dim() != 4
