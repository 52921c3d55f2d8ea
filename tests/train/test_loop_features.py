"""Training features of the loop: label smoothing, validation split, early stopping, keep-best,
channels-last, augmentation, dropout/BN modes, and their command-line flags."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from digitlab.cli.main import build_parser
from digitlab.cli.train import resolve_config
from digitlab.errors import ConfigError
from digitlab.models.registry import build_model
from digitlab.train.callbacks import Callback
from digitlab.train.config import TrainConfig
from digitlab.train.device import seed_everything
from digitlab.train.loop import evaluate_tensors, fit, to_input_tensor, to_label_tensor

BASE = TrainConfig.from_flat(epochs=2, batch_size=32, optimizer="sgd", lr=0.05, schedule="onecycle", device="cpu", threads=1)


def _fast(seed=0, widths=(8, 16, 16)):
    seed_everything(seed)
    return build_model("fast", widths=list(widths))


class Spy(Callback):
    def on_train_begin(self, state):
        self.steps_per_epoch = state.steps_per_epoch

    def on_epoch_end(self, state, logs):
        self.best_epoch = state.best_epoch


def test_label_smoothing_puts_a_floor_under_the_training_loss(tiny_digits):
    # With smoothing eps over K classes the least cross-entropy is the entropy of the smoothed target.
    x, y = tiny_digits
    eps, k = 0.2, 10
    on, off = 1 - eps + eps / k, eps / k
    floor = -(on * math.log(on) + (k - 1) * off * math.log(off))
    smoothed = fit(_fast(), x, y, BASE.replace(epochs=4, label_smoothing=eps), verbose=False)
    plain = fit(_fast(), x, y, BASE.replace(epochs=4), verbose=False)
    assert smoothed["accuracy"][-1] > 0.95 and plain["accuracy"][-1] > 0.95
    assert smoothed["loss"][-1] > floor * 0.98
    assert plain["loss"][-1] < 0.5 * floor


def test_val_split_carves_validation_images_from_the_training_set(tiny_digits):
    x, y = tiny_digits
    spy = Spy()
    history = fit(_fast(), x, y, BASE.replace(val_split=100, epochs=1), callbacks=[spy], verbose=False)
    assert spy.steps_per_epoch == math.ceil(500 / 32)
    assert {"val_loss", "val_accuracy"} <= set(history)
    with pytest.raises(ConfigError, match="val split .* must be smaller"):
        fit(_fast(), x[:50], y[:50], BASE.replace(val_split=50), verbose=False)
    with pytest.raises(ConfigError, match="either validation_data or val_split"):
        fit(_fast(), x, y, BASE.replace(val_split=10), validation_data=(x, y), verbose=False)


def _random_labels(tiny_digits):
    # Labels that carry no signal: the net can only memorize, so validation loss rises after an epoch or two.
    x, _ = tiny_digits
    return x[:300], np.random.default_rng(2024).integers(0, 10, 300)  # not tiny_digits' own seed


def test_early_stopping_stops_when_val_loss_stops_improving(tiny_digits):
    x, y = _random_labels(tiny_digits)
    config = BASE.replace(epochs=40, schedule="constant", lr=0.1, val_split=100, early_stopping=2)
    spy = Spy()
    history = fit(_fast(widths=(16, 32, 64)), x, y, config, callbacks=[spy], verbose=False)
    assert history.epochs < 40
    # best_epoch counts epochs done (1-based); after it, `patience` epochs without a gain, then stop.
    assert history.epochs == spy.best_epoch + 2
    assert min(history["val_loss"]) == history["val_loss"][spy.best_epoch - 1]


def test_keep_best_restores_the_weights_of_the_best_val_loss_epoch(tiny_digits):
    x, y = _random_labels(tiny_digits)
    xv, yv = x[200:], y[200:]
    model = _fast(widths=(16, 32, 64))
    config = BASE.replace(epochs=8, schedule="constant", lr=0.1, keep_best=True)
    history = fit(model, x[:200], y[:200], config, validation_data=(xv, yv), verbose=False)
    best = min(history["val_loss"])
    assert best < history["val_loss"][-1]  # the last epoch was not the best, so restoring matters
    # The per-epoch validation runs in the training precision (bf16 on CPUs with bf16 hardware).
    from digitlab.train.device import use_cpu_bf16

    amp = use_cpu_bf16(config.runtime.cpu_amp)
    loss, _ = evaluate_tensors(model, to_input_tensor(xv), to_label_tensor(yv), amp=amp)
    assert loss == pytest.approx(best, rel=1e-5)


def test_early_stopping_and_keep_best_need_validation_data(tiny_digits):
    x, y = tiny_digits
    for flags in ({"early_stopping": 3}, {"keep_best": True}):
        with pytest.raises(ConfigError, match="set --val-split N"):
            fit(_fast(), x, y, BASE.replace(**flags), verbose=False)


def test_channels_last_trains_and_keeps_the_layout(tiny_digits):
    x, y = tiny_digits
    model = _fast()
    history = fit(model, x[:500], y[:500], BASE.replace(channels_last=True), validation_data=(x[500:], y[500:]),
                  verbose=False)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert history["val_accuracy"][-1] >= 0.9
    reference = fit(_fast(), x[:500], y[:500], BASE, validation_data=(x[500:], y[500:]), verbose=False)
    assert history["val_accuracy"][-1] == pytest.approx(reference["val_accuracy"][-1], abs=0.05)


@pytest.mark.parametrize("augment", ["affine", "elastic"])
def test_augmented_training_still_learns(tiny_digits, augment):
    x, y = tiny_digits
    history = fit(_fast(), x[:500], y[:500], BASE.replace(epochs=3, augment=augment),
                  validation_data=(x[500:], y[500:]), verbose=False)
    # tiny_digits' classes are bars 2 px apart, so +-2 px shifts blur them: far above chance (0.1) is the bar.
    assert history["val_accuracy"][-1] >= 0.6
    assert history["loss"][-1] < history["loss"][0]


def test_dropout_and_batch_norm_end_in_eval_mode(tiny_digits):
    x, y = tiny_digits
    seed_everything(0)
    model = build_model("best", widths=[4, 8, 8], dropout=0.3)
    fit(model, x[:64], y[:64], BASE.replace(epochs=1), verbose=False)
    assert not model.training
    xb = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(xb), model(xb))  # eval: dropout off, BN uses running statistics


def test_cli_flags_reach_the_config():
    args = build_parser().parse_args([
        "train", "--model", "best", "--optimizer", "adamw", "--lr", "0.002", "--weight-decay", "0.05",
        "--schedule", "cosine", "--warmup", "1.5", "--label-smoothing", "0.1", "--augment", "elastic",
        "--val-split", "5000", "--early-stopping", "3", "--keep-best", "--channels-last", "--epochs", "9",
        "--clean-epochs", "2", "--beta1", "0.7", "--beta2", "0.9",
        "--model-arg", "dropout=0.1",
    ])
    model, kwargs, config = resolve_config(args)
    assert (model, kwargs) == ("best", {"dropout": 0.1})
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.weight_decay, config.schedule.name, config.schedule.warmup_epochs) == (
        "adamw", 0.002, 0.05, "cosine", 1.5)
    assert (config.regularisation.label_smoothing, config.augmentation.name, config.val_split, config.early_stopping) == (0.1, "elastic", 5000, 3)
    assert config.keep_best and config.runtime.channels_last and config.epochs == 9 and config.augmentation.clean_epochs == 2
    assert (config.optimizer.beta1, config.optimizer.beta2) == (0.7, 0.9)


@pytest.mark.parametrize("flag, expected", [([], None), (["--cpu-bf16"], True), (["--no-cpu-bf16"], False)])
def test_cpu_bf16_flag(flag, expected):
    _, _, config = resolve_config(build_parser().parse_args(["train", *flag]))
    assert config.runtime.cpu_amp is expected  # None: automatic, on where the CPU has bf16 hardware
    # A preset's choice holds unless the flag is given.
    _, _, preset_config = resolve_config(build_parser().parse_args(["train", "--preset", "fast", *flag]))
    assert preset_config.runtime.cpu_amp is (True if expected is None else expected)


def test_float32_training_when_bf16_is_off(tiny_digits, monkeypatch):
    # With cpu_amp=False nothing runs in bf16: the validation loss equals a float32 evaluation exactly.
    x, y = tiny_digits
    model = _fast()
    history = fit(model, x[:300], y[:300], BASE.replace(epochs=1, cpu_amp=False), validation_data=(x[300:], y[300:]),
                  verbose=False)
    loss, _ = evaluate_tensors(model, to_input_tensor(x[300:]), to_label_tensor(y[300:]), amp=False)
    assert history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)


def test_clean_epochs_train_the_last_epochs_without_augmentation(tiny_digits, monkeypatch):
    import digitlab.train.loop as augment_module  # where fit looks make_augment up

    calls = []
    monkeypatch.setattr(augment_module, "make_augment", lambda name: lambda xb, generator: calls.append(1) or xb)

    class CallsPerEpoch(Callback):
        seen = []

        def on_epoch_end(self, state, logs):
            self.seen.append(len(calls))

    spy = CallsPerEpoch()
    x, y = tiny_digits
    fit(_fast(), x[:64], y[:64], BASE.replace(epochs=3, augment="affine", clean_epochs=1), callbacks=[spy],
        verbose=False)
    assert spy.seen == [2, 4, 4]  # 64 images / batch 32: two augmented batches per epoch, none in the last


@pytest.mark.parametrize("changes, match", [
    ({"epochs": 2, "clean_epochs": 2, "augment": "affine"}, "fewer than the epochs"),
    ({"clean_epochs": -1, "augment": "affine"}, "must be >= 0"),
    ({"clean_epochs": 1}, "set --augment"),
])
def test_clean_epochs_settings_are_checked(changes, match):
    with pytest.raises(ConfigError, match=match):
        BASE.replace(**changes)


def test_images_convert_straight_to_bfloat16_as_through_float32():
    x = np.arange(256, dtype=np.uint8).repeat(4)[: 28 * 28 * 1].reshape(1, 28, 28).repeat(3, axis=0)
    direct = to_input_tensor(x, dtype=torch.bfloat16)
    assert direct.dtype == torch.bfloat16 and direct.shape == (3, 1, 28, 28)
    assert torch.equal(direct, to_input_tensor(x).to(torch.bfloat16))


@pytest.mark.parametrize("argv, compiled, mode", [
    ([], False, "default"),
    (["--compile"], True, "default"),
    (["--compile-mode", "reduce-overhead"], True, "reduce-overhead"),  # a mode asks for compilation
])
def test_compile_flags(argv, compiled, mode):
    _, _, config = resolve_config(build_parser().parse_args(["train", "--model", "fast", *argv]))
    assert (config.runtime.compile, config.runtime.compile_mode) == (compiled, mode)


def test_an_unknown_compile_mode_is_refused():
    with pytest.raises(ConfigError, match="unknown compile mode 'fastest'.*reduce-overhead"):
        TrainConfig.from_flat(compile=True, compile_mode="fastest")
    with pytest.raises(SystemExit):  # argparse: one line and exit 2
        build_parser().parse_args(["train", "--compile-mode", "fastest"])


@pytest.mark.slow
def test_compiled_training_matches_eager_and_a_fresh_model_reuses_the_compiled_graphs(tiny_digits):
    # Benchmarks time a fresh compiled model after an untimed warm-up run: that only measures training if
    # the second model does not compile again.
    import torch._dynamo

    x, y = tiny_digits
    config = BASE.replace(epochs=1, cpu_amp=False)
    eager = fit(_fast(), x, y, config, verbose=False)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    first = fit(_fast(), x, y, config.replace(compile=True), verbose=False)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert graphs >= 1
    second = fit(_fast(), x, y, config.replace(compile=True), verbose=False)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # no recompilation
    assert first.last("loss") == pytest.approx(second.last("loss"), rel=1e-6)  # same seed, same training
    assert first.last("loss") == pytest.approx(eager.last("loss"), rel=1e-3)  # float32: the same training
    torch._dynamo.reset()


class StepWeights(Callback):
    """Records the model's weights after every optimizer step."""

    def __init__(self):
        self.steps = []

    def on_batch_end(self, state, step):
        self.steps.append({k: v.detach().clone() for k, v in state.model.named_parameters()})


def test_ema_ends_with_the_moving_average_of_every_step_s_weights(tiny_digits):
    # The mlp with rmsprop would take the fused step; with EMA on it takes the general loop, every step seen.
    x, y = tiny_digits
    decay = 0.8
    seed_everything(0)
    model = build_model("mlp", hidden=32)
    spy = StepWeights()
    fit(model, x, y, TrainConfig.from_flat(epochs=2, batch_size=16, device="cpu", threads=1, ema_decay=decay),
        callbacks=[spy], verbose=False)
    assert len(spy.steps) == 2 * math.ceil(len(x) / 16) > 40  # past the warm-up: d reaches 0.8 at n = 35
    expected = dict(spy.steps[0])  # the first update copies the weights
    for n, weights in enumerate(spy.steps[1:], start=1):  # then the decay warms up to `decay`
        d = min(decay, (1 + n) / (10 + n))
        expected = {k: d * expected[k] + (1 - d) * w for k, w in weights.items()}
    for name, value in model.named_parameters():
        torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-5)
        assert not torch.equal(value, spy.steps[-1][name])  # not the last step's weights


def test_with_ema_validation_and_keep_best_judge_the_average(tiny_digits):
    from digitlab.train.device import use_cpu_bf16

    x, y = _random_labels(tiny_digits)
    xv, yv = to_input_tensor(x[200:]), to_label_tensor(y[200:])
    config = BASE.replace(epochs=6, schedule="constant", lr=0.1, ema_decay=0.9)
    amp = use_cpu_bf16(config.runtime.cpu_amp)
    model = _fast(widths=(16, 32, 64))
    history = fit(model, x[:200], y[:200], config, validation_data=(x[200:], y[200:]), verbose=False)
    # The last epoch's validation scored the weights training ended with: the average.
    assert evaluate_tensors(model, xv, yv, amp=amp)[0] == pytest.approx(history["val_loss"][-1], rel=1e-5)
    kept = _fast(widths=(16, 32, 64))
    history = fit(kept, x[:200], y[:200], config.replace(keep_best=True), validation_data=(x[200:], y[200:]),
                  verbose=False)
    assert evaluate_tensors(kept, xv, yv, amp=amp)[0] == pytest.approx(min(history["val_loss"]), rel=1e-5)


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_ema_decay_must_be_in_0_1(decay):
    with pytest.raises(ConfigError, match=r"EMA decay must be in \[0, 1\)"):
        BASE.replace(ema_decay=decay)


def test_augmentation_strength_reaches_the_augmentation(tiny_digits, monkeypatch):
    import digitlab.train.loop as augment  # where fit looks make_augment up

    made = []
    real = augment.make_augment
    monkeypatch.setattr(augment, "make_augment", lambda name, **opts: made.append((name, opts)) or real(name, **opts))
    x, y = tiny_digits
    config = BASE.replace(epochs=1, augment="affine", augment_options={"rotate": 20, "shift": 5.6})
    made.clear()  # building the config checks the options through make_augment too: count only fit's call
    fit(_fast(), x, y, config, verbose=False)
    assert made == [("affine", {"rotate": 20, "shift": 5.6})]


def test_augment_args_merge_over_the_preset_and_are_checked():
    args = build_parser().parse_args(["train", "--preset", "best", "--augment-arg", "rotate=20",
                                      "--augment-arg", "shift=5.6", "--schedule", "exponential", "--lr-decay", "0.97"])
    config = resolve_config(args)[2]
    assert config.augmentation.name == "affine" and config.augmentation.options == {"rotate": 20, "shift": 5.6}
    assert (config.schedule.name, config.schedule.lr_decay) == ("exponential", 0.97)
    for argv, match in ((["--augment-arg", "spin=3"], "has no option spin"),
                        (["--augment-arg", "rotate"], "--augment-arg expects KEY=VALUE"),
                        (["--augment", "none", "--augment-arg", "rotate=5"], "'none' has no option rotate")):
        with pytest.raises(ConfigError, match=match):
            resolve_config(build_parser().parse_args(["train", "--preset", "best", *argv]))
    with pytest.raises(ConfigError, match="augment options must be a mapping"):
        BASE.replace(augment="affine", augment_options="rotate=20")


def test_ema_flag_reaches_the_config():
    args = build_parser().parse_args(["train", "--preset", "best", "--ema-decay", "0.999"])
    assert resolve_config(args)[2].regularisation.ema_decay == 0.999
    assert resolve_config(build_parser().parse_args(["train", "--preset", "best"]))[2].regularisation.ema_decay == 0.0


def test_the_average_s_bn_statistics_are_measured_on_the_training_images(tiny_digits):
    from torch.optim.swa_utils import update_bn

    from digitlab.train.device import use_cpu_bf16

    x, y = tiny_digits
    config = BASE.replace(epochs=3, ema_decay=0.9)
    model = _fast()
    last_step = {}

    class LastBuffers(Callback):
        def on_batch_end(self, state, step):
            last_step.update({k: v.clone() for k, v in state.model.named_buffers() if "running" in k})

    fit(model, x, y, config, callbacks=[LastBuffers()], verbose=False)
    ended = {k: v.clone() for k, v in model.named_buffers() if "running" in k}
    # Not the last step's statistics (those belong to other weights) ...
    assert any(not torch.allclose(ended[k], last_step[k]) for k in ended)
    # ... but what measuring the final weights on the (clean) training images gives.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_cpu_bf16(config.runtime.cpu_amp)):
        update_bn([to_input_tensor(x)], model)
    for name, value in model.named_buffers():
        if "running" in name:
            torch.testing.assert_close(value, ended[name], rtol=1e-3, atol=1e-4)
