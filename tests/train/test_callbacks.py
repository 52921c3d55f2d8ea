"""The callback protocol: hook order, the loss hook, and the callbacks a TrainConfig asks for."""

from __future__ import annotations

import pytest
import torch

from digitlab.models.registry import build_model
from digitlab.train.callbacks import Callback, EarlyStopping, KeepBest
from digitlab.train.config import TrainConfig
from digitlab.train.device import seed_everything
from digitlab.train.distill import Distillation
from digitlab.train.ema import EMA
from digitlab.train.loop import config_callbacks, evaluate_tensors, fit
from digitlab.train.tensors import split_validation, to_input_tensor, to_label_tensor

CONFIG = TrainConfig.from_flat(epochs=2, batch_size=100, optimizer="sgd", lr=0.05, device="cpu", threads=1, fused=False)


def _model():
    seed_everything(0)
    return build_model("mlp", hidden=16)


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, state):
        self.calls.append("train_begin")

    def on_epoch_begin(self, state):
        self.calls.append("epoch_begin")

    def on_batch_end(self, state, step):
        self.calls.append(f"batch {step}")

    def on_epoch_trained(self, state):
        self.calls.append("epoch_trained")

    def on_epoch_end(self, state, logs):
        self.calls.append(f"epoch_end {state.epoch} {sorted(logs)}")

    def on_train_end(self, state):
        self.calls.append("train_end")


def test_hooks_run_in_the_documented_order(tiny_digits):
    x, y = tiny_digits
    recorder = Recorder()
    fit(_model(), x[:200], y[:200], CONFIG, validation_data=(x[200:300], y[200:300]), callbacks=[recorder],
        verbose=False)
    epoch = ["epoch_begin", "batch 0", "batch 1", "epoch_trained"]
    logs = "['accuracy', 'epoch_time', 'loss', 'lr', 'val_accuracy', 'val_loss']"
    assert recorder.calls == ["train_begin", *epoch, f"epoch_end 1 {logs}", *epoch, f"epoch_end 2 {logs}",
                              "train_end"]


def test_a_loss_callback_changes_what_the_step_minimises(tiny_digits):
    x, y = tiny_digits

    class ZeroLoss(Callback):
        def __init__(self):
            self.steps = []

        def on_loss(self, state, logits, loss, step):
            self.steps.append(step)
            return loss * 0.0  # no gradient: the weights must not move

    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    zero = ZeroLoss()
    fit(model, x[:200], y[:200], CONFIG, callbacks=[zero], verbose=False)
    assert zero.steps == [0, 1, 0, 1]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name])


def test_the_config_asks_for_its_callbacks_in_the_order_they_must_run():
    assert config_callbacks(CONFIG) == []
    made = config_callbacks(CONFIG.replace(teacher="pretrained", ema_decay=0.9, keep_best=True, early_stopping=2))
    assert [type(cb) for cb in made] == [Distillation, EMA, KeepBest, EarlyStopping]
    assert made[3].patience == 2 and made[1].decay == 0.9


def test_early_stopping_stops_and_keep_best_restores_the_best_epoch(tiny_digits):
    x, y = tiny_digits
    config = CONFIG.replace(epochs=6, lr=5.0, val_split=100, early_stopping=1, keep_best=True, cpu_amp=False)
    model = _model()
    losses = fit(model, x[:300], y[:300], config, verbose=False)["val_loss"]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert len(losses) in (6, best + 2)  # stopped one epoch after the last best (patience 1), or ran out
    *_, x_val, y_val = split_validation(to_input_tensor(x[:300]), to_label_tensor(y[:300]), 100, config.seed)
    assert evaluate_tensors(model, x_val, y_val)[0] == pytest.approx(losses[best], rel=1e-5)
