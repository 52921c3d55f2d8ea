"""The training loop: a plain loop in the spirit of Keras's `Model.fit`, built for speed.

Why it is fast (see airbench): the whole dataset lives on the device as one float tensor, batches
are slices of a `randperm`, augmentation is batched on tensors, and running metrics accumulate in
tensors so that no batch waits for the host. The host reads metrics only when the progress bar
redraws and at the end of each epoch.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, update_bn

from digitlab.errors import ConfigError
from digitlab.train.augment import make_augment
from digitlab.train.callbacks import Callback, CallbackList
from digitlab.train.config import TrainConfig
from digitlab.train.device import configure_threads, cpu_float_mode, resolve_device, use_cpu_bf16
from digitlab.train.distill import distillation_loss, load_teacher, teacher_targets
from digitlab.train.fused_mlp import FusedMLPStep, unsupported_reason
from digitlab.train.history import History
from digitlab.train.native import missing_reason
from digitlab.train.optim import make_optimizer, make_scheduler
from digitlab.train.predict import predict_logits
from digitlab.train.progress import default_progress
from digitlab.train.tensors import to_input_tensor, to_label_tensor


@dataclass
class TrainState:
    """Everything a callback (progress, checkpoint, early stopping) can read or restore."""

    model: Any
    optimizer: Any
    scheduler: Any
    generator: Any  # torch.Generator for shuffling and augmentation
    config: TrainConfig
    device: Any
    steps_per_epoch: int
    epoch: int = 0  # epochs completed
    history: History = field(default_factory=History)
    best_val_loss: float = float("inf")
    best_epoch: int = -1
    best_weights: dict | None = None
    ema: Any = None  # torch.optim.swa_utils.AveragedModel of the weights, when config.ema_decay > 0
    epochs_without_improvement: int = 0
    stop_training: bool = False
    # Running sums of the current epoch, kept as tensors (no host sync per batch).
    _loss_sum: Any = None
    _correct: Any = None
    _seen: int = 0
    _shuffled: Any = None  # the epoch's shuffled copy of the training images (a reused buffer)
    # Set by a step that keeps the epoch's logits and scores them only when asked (the fused mlp):
    # seen -> (loss sum, correct count) over the first `seen` images of the epoch.
    _score_seen: Any = None

    def running_metrics(self) -> dict:
        """The epoch's running loss and accuracy so far (reads tensors: a host sync)."""
        if not self._seen:
            return {}
        if self._score_seen is not None:
            self._loss_sum, self._correct = self._score_seen(self._seen)
        return {"loss": float(self._loss_sum) / self._seen, "accuracy": float(self._correct) / self._seen}


def _split_validation(x, y, n_val: int, seed: int):
    if n_val >= len(x):
        raise ConfigError(f"val split ({n_val}) must be smaller than the training set ({len(x)} images)")
    # Its own generator, so the split is the same whatever the model or training seed does.
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(10_000 + seed))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def evaluate_tensors(model, x, y, batch_size: int = 2048, amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on prepared tensors, in eval mode."""
    logits = predict_logits(model, x, batch_size, x.device, amp=amp)
    return float(F.cross_entropy(logits, y)), int((logits.argmax(1) == y).sum()) / len(y)


def fit(
    model,
    x,
    y,
    config: TrainConfig | None = None,
    *,
    validation_data: tuple | None = None,
    callbacks: Sequence[Callback] = (),
    verbose: bool = True,
) -> History:
    """Train `model` in place and return its History.

    x: uint8 (N, 28, 28) images (or float (N, 1, 28, 28) in [0, 1]); y: int labels (N,).
    validation_data: (x_val, y_val), evaluated after every epoch (val_loss, val_accuracy).
    With `config.val_split > 0` the validation set is carved from (x, y) instead.
    """
    config = config or TrainConfig()
    if len(x) != len(y):
        raise ConfigError(f"got {len(x)} images but {len(y)} labels: they must match")
    if len(x) == 0:
        raise ConfigError("the training set is empty")
    device = resolve_device(config.device)
    configure_threads(config.threads)
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN time its algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)  # dropout and any other global randomness
    generator = torch.Generator(device=device).manual_seed(config.seed)

    # bf16 autocast (weights, optimizer and loss stay float32): on CUDA (amp); on CPU where the hardware
    # has bf16 dot products, or when asked. It halves the mlp's GEMM time and trains the `fast` convnet
    # about 1.6x faster, at the same accuracy. The per-epoch validation runs in the training precision
    # too (it is a learning curve); final scores (evaluate, cross-validation folds) are float32.
    cpu_bf16 = device.type == "cpu" and use_cpu_bf16(config.cpu_amp)
    amp = config.amp and (device.type == "cuda" or cpu_bf16)
    # The first layer would cast every batch to bf16 anyway: store the training images in bf16 (half
    # the bytes to shuffle, one op less per step). Augmentation wants float32 images, so not then.
    bf16_images = cpu_bf16 and amp and config.augment == "none"
    image_dtype = torch.bfloat16 if bf16_images and not config.val_split else None
    x_t, y_t = to_input_tensor(x, device, image_dtype), to_label_tensor(y, device)
    if config.val_split:
        if validation_data is not None:
            raise ConfigError("give either validation_data or val_split, not both")
        x_t, y_t, x_val, y_val = _split_validation(x_t, y_t, config.val_split, config.seed)
    elif validation_data is not None:
        x_val, y_val = to_input_tensor(validation_data[0], device), to_label_tensor(validation_data[1], device)
    else:
        x_val = y_val = None
    if (config.early_stopping or config.keep_best) and x_val is None:
        raise ConfigError("early stopping and keep-best need validation data: set --val-split N (e.g. 5000)")

    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format).train()
    if config.channels_last:
        x_t = x_t.contiguous(memory_format=torch.channels_last)
    forward = model
    if config.compile:
        # A fresh model of the same architecture reuses the compiled graphs (they take the weights as
        # inputs), so only the first run in a process pays for compilation.
        forward = torch.compile(model, mode=None if config.compile_mode == "default" else config.compile_mode)
    if bf16_images:
        x_t = x_t.to(torch.bfloat16)  # a no-op unless the validation split was carved in float32

    soft_t = None
    if config.teacher:
        with torch.no_grad():  # the student's class count, probed in eval mode: BN statistics stay as they are
            num_classes = model.eval()(x_t[:2].float()).shape[1]
        model.train()
        soft_t = teacher_targets(load_teacher(config.teacher, device), x_t, config.distill_temperature,
                                 num_classes, amp)

    n = len(x_t)
    steps_per_epoch = (n + config.batch_size - 1) // config.batch_size
    optimizer = make_optimizer(model.parameters(), config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)
    augment = None
    if config.augment != "none":
        augment = make_augment(config.augment, **(config.augment_options or {}))

    state = TrainState(model, optimizer, scheduler, generator, config, device, steps_per_epoch)
    if config.ema_decay:
        state.ema = make_ema(model, config.ema_decay)
    # The article's mlp trains through a fused step with hand-written gradients (same result, about 2x faster).

    fused = None
    if unsupported_reason(model, config, device, augmenting=augment is not None, distilling=soft_t is not None) is None:
        fused = FusedMLPStep(model, optimizer, config, bf16=amp and cpu_bf16, x=x_t)
        if verbose and fused.kind == "torch":
            if missing_reason():  # say once why this run is slower than it could be, and how to fix it
                print(f"note: {missing_reason()} (about 1.4x slower)", file=sys.stderr)
    cbs = CallbackList([*( [default_progress()] if verbose else []), *callbacks])
    with cpu_float_mode() if device.type == "cpu" else contextlib.nullcontext():
        cbs.on_train_begin(state)  # a resume callback restores weights, optimizer, RNG and epoch here

        while state.epoch < config.epochs and not state.stop_training:
            cbs.on_epoch_begin(state)
            started = time.perf_counter()
            # The last clean_epochs fine-tune on the images as they are, the distribution they are tested on.
            augmenting = state.epoch < config.epochs - config.clean_epochs
            if fused is not None:
                _start_epoch(state)
                x_epoch, y_epoch, _ = _shuffle_epoch(state, fused.images, y_t)
                fused.train_epoch(state, x_epoch, y_epoch, cbs)
            else:
                _train_one_epoch(state, x_t, y_t, forward, augment if augmenting else None, amp, cbs, soft_t)
            logs = state.running_metrics()
            logs["lr"] = optimizer.param_groups[0]["lr"]
            if state.ema is not None:
                recalibrate_ema(state, x_t, amp)
            if x_val is not None:
                logs["val_loss"], logs["val_accuracy"] = evaluate_tensors(
                    kept_model(state, forward), x_val, y_val, config.eval_batch_size, amp
                )
            logs["epoch_time"] = time.perf_counter() - started
            state.history.append(logs)
            state.epoch += 1
            _track_best(state, logs)
            cbs.on_epoch_end(state, logs)

        if config.keep_best and state.best_weights is not None:
            model.load_state_dict(state.best_weights)
        elif state.ema is not None:
            model.load_state_dict(state.ema.module.state_dict())
    cbs.on_train_end(state)
    model.eval()
    return state.history


# Training images the averaged weights' BN statistics are measured on, after every epoch.
EMA_BN_IMAGES = 10_000


def make_ema(model, decay: float):
    """An exponential moving average of `model`'s weights, kept by torch's AveragedModel.

    Its module is a copy of the model; `update_parameters(model)` after each step moves its weights
    (1 - d) of the way to the model's (the first call copies) and copies the model's buffers."""
    return AveragedModel(model, multi_avg_fn=ema_update(decay), use_buffers=False)


def ema_update(decay: float):
    """The average's step, with the decay warmed up as TensorFlow's ExponentialMovingAverage does: after
    n updates d = min(decay, (1 + n) / (10 + n)). Why: at a fixed 0.999 a run of a few hundred steps
    ends with an average that is mostly its initial weights (one epoch of 5,000 images: 15% accuracy).
    The decay is computed on the device from AveragedModel's counter, so no step waits for the host."""
    @torch.no_grad()
    def update(averaged: list, current: list, n_averaged) -> None:
        n = n_averaged.to(averaged[0].dtype)
        d = torch.clamp((1 + n) / (10 + n), max=decay)
        torch._foreach_mul_(averaged, d)
        torch._foreach_add_(averaged, torch._foreach_mul(current, 1 - d))

    return update


def recalibrate_ema(state: TrainState, x_t, amp: bool) -> None:
    """Measure the BN statistics of the averaged weights (torch's update_bn) on the first training images.

    Why: an average of weights is not a model the running statistics were collected on. Averaging the
    statistics too (or keeping the model's) left the BN layers mis-scaled: on `fast-99.5` (55,000
    images, 10 epochs, decay 0.999) the average scored validation loss 0.94 against the model's 0.12.
    The images are the clean training images (what the model is tested on), in the training precision;
    dropout's random draws come from a forked RNG, so training's own stream is untouched."""
    size = state.config.eval_batch_size
    batches = (x_t[i : i + size] for i in range(0, min(len(x_t), EMA_BN_IMAGES), size))
    devices = [state.device] if state.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.autocast(state.device.type, dtype=torch.bfloat16, enabled=amp):
        update_bn(batches, state.ema.module)


def kept_model(state: TrainState, forward):
    """What validation judges: the weight average when there is one (it is what training ends with)."""
    return state.ema.module if state.ema is not None else forward


def _start_epoch(state: TrainState) -> None:
    """Zero the epoch's running loss and accuracy (tensors, so that no step waits for the host)."""
    state._loss_sum = torch.zeros((), device=state.device)
    state._correct = torch.zeros((), device=state.device, dtype=torch.long)
    state._seen = 0
    state._score_seen = None


def _shuffle_epoch(state: TrainState, x_t, y_t):
    """The epoch's shuffled images and labels, and the permutation.

    The whole set is shuffled with one gather into a buffer kept across epochs; batches are then
    contiguous views. One big copy costs less than a small gather per step.
    """
    perm = torch.randperm(len(x_t), device=state.device, generator=state.generator)
    if state._shuffled is None or state._shuffled.shape != x_t.shape or state._shuffled.dtype != x_t.dtype:
        state._shuffled = torch.empty_like(x_t)
    return torch.index_select(x_t, 0, perm, out=state._shuffled), y_t[perm], perm


def _train_one_epoch(state: TrainState, x_t, y_t, forward, augment, amp: bool, cbs: CallbackList,
                     soft_t=None) -> None:
    """One pass over the training tensors in `randperm` slices; metrics stay in tensors.

    soft_t: the teacher's soft targets (N, C) for distillation, shuffled along with the images."""
    config, device, optimizer = state.config, state.device, state.optimizer
    _start_epoch(state)
    x_epoch, y_epoch, perm = _shuffle_epoch(state, x_t, y_t)
    soft_epoch = soft_t[perm] if soft_t is not None else None
    for step in range(state.steps_per_epoch):
        xb = x_epoch[step * config.batch_size : (step + 1) * config.batch_size]
        yb = y_epoch[step * config.batch_size : (step + 1) * config.batch_size]
        if augment is not None:
            xb = augment(xb, state.generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = forward(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=config.label_smoothing)
            if soft_epoch is not None:
                soft = soft_epoch[step * config.batch_size : (step + 1) * config.batch_size]
                w = config.distill_weight
                loss = (1 - w) * loss + w * distillation_loss(logits, soft, config.distill_temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.scheduler.step()
        if state.ema is not None:
            state.ema.update_parameters(state.model)
        with torch.no_grad():
            state._loss_sum += loss.detach() * len(yb)
            state._correct += (logits.argmax(1) == yb).sum()
        state._seen += len(yb)
        cbs.on_batch_end(state, step)


def _track_best(state: TrainState, logs: dict) -> None:
    """Best-epoch bookkeeping for keep_best and early stopping (monitor: val_loss)."""
    config = state.config
    if "val_loss" not in logs:
        return
    if logs["val_loss"] < state.best_val_loss:
        state.best_val_loss, state.best_epoch = logs["val_loss"], state.epoch
        state.epochs_without_improvement = 0
        if config.keep_best:
            kept = state.ema.module if state.ema is not None else state.model
            state.best_weights = copy.deepcopy({k: v.detach().clone() for k, v in kept.state_dict().items()})
    else:
        state.epochs_without_improvement += 1
        if config.early_stopping and state.epochs_without_improvement >= config.early_stopping:
            state.stop_training = True
