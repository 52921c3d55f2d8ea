"""The training loop: a plain loop in the spirit of Keras's `Model.fit`, built for speed.

Why it is fast (see airbench): the whole dataset lives on the device as one float tensor, batches
are slices of a `randperm`, augmentation is batched on tensors, and running metrics accumulate in
tensors so that no batch waits for the host. The host reads metrics only when the progress bar
redraws and at the end of each epoch.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from digitlab.errors import ConfigError
from digitlab.train.augment import make_augment
from digitlab.train.blend import BlendWithStart
from digitlab.train.callbacks import Callback, CallbackList, EarlyStopping, KeepBest
from digitlab.train.config import TrainConfig
from digitlab.train.device import configure_threads, cpu_float_mode, resolve_device, use_cpu_bf16
from digitlab.train.distill import Distillation
from digitlab.train.ema import EMA
from digitlab.train.fused_mlp import FusedMLPStep, unsupported_reason
from digitlab.train.history import History
from digitlab.train.mix import mix_font_digits
from digitlab.train.native import missing_reason
from digitlab.train.optim import make_optimizer, make_scheduler
from digitlab.train.predict import predict_logits
from digitlab.train.progress import default_progress
from digitlab.train.tensors import split_validation, to_input_tensor, to_label_tensor


@dataclass
class TrainState:
    """Everything a callback (progress, checkpoint, early stopping, ...) can read or restore."""

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
    best_epoch: int = -1  # epochs completed when val_loss was best
    best_weights: dict | None = None  # kept by KeepBest
    ema: Any = None  # torch.optim.swa_utils.AveragedModel of the weights, kept by the EMA callback
    epochs_without_improvement: int = 0
    stop_training: bool = False
    x_train: Any = None  # the training images as the loop holds them: float (N, 1, 28, 28) on the device
    y_train: Any = None
    amp: bool = False  # whether the steps run in bf16 autocast
    eval_model: Any = None  # what validation judges when not the model itself (the weight average)
    epoch_perm: Any = None  # the epoch's shuffle: step k trains on images epoch_perm[k * batch : (k + 1) * batch]
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

    def note_val_loss(self, logs: dict) -> None:
        """Best-epoch bookkeeping on val_loss, which early stopping, keep-best and checkpoints read."""
        if "val_loss" not in logs:
            return
        if logs["val_loss"] < self.best_val_loss:
            self.best_val_loss, self.best_epoch, self.epochs_without_improvement = logs["val_loss"], self.epoch, 0
        else:
            self.epochs_without_improvement += 1


def evaluate_tensors(model, x, y, batch_size: int = 2048, amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on prepared tensors, in eval mode."""
    logits = predict_logits(model, x, batch_size, x.device, amp=amp)
    return float(F.cross_entropy(logits, y)), int((logits.argmax(1) == y).sum()) / len(y)


def config_callbacks(config: TrainConfig) -> list[Callback]:
    """The callbacks a TrainConfig asks for, in the order they must run: the weight average before
    keep-best (whose weights win at the end), both before progress and the caller's callbacks."""
    callbacks: list[Callback] = []
    reg = config.regularisation
    if reg.teacher:
        callbacks.append(Distillation(reg.teacher, reg.distill_weight, reg.distill_temperature))
    if reg.ema_decay:
        callbacks.append(EMA(reg.ema_decay))
    if config.keep_best:
        callbacks.append(KeepBest())
    if reg.blend_start:  # last: it blends the weights training ends with, whichever those are
        callbacks.append(BlendWithStart(reg.blend_start))
    if config.early_stopping:
        callbacks.append(EarlyStopping(config.early_stopping))
    return callbacks


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
    callbacks: digitlab.train.callbacks.Callback objects, run after those the config asks for.
    """
    config = config or TrainConfig()
    runtime, augmentation = config.runtime, config.augmentation
    if len(x) != len(y):
        raise ConfigError(f"got {len(x)} images but {len(y)} labels: they must match")
    if len(x) == 0:
        raise ConfigError("the training set is empty")
    device = resolve_device(runtime.device)
    configure_threads(runtime.threads)
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN time its algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)  # dropout and any other global randomness
    generator = torch.Generator(device=device).manual_seed(config.seed)

    # bf16 autocast (weights, optimizer and loss stay float32): on CUDA (amp); on CPU where the hardware
    # has bf16 dot products, or when asked. It halves the mlp's GEMM time and trains the `fast` convnet
    # about 1.6x faster, at the same accuracy. The per-epoch validation runs in the training precision
    # too (it is a learning curve); final scores (evaluate, cross-validation folds) are float32.
    cpu_bf16 = device.type == "cpu" and use_cpu_bf16(runtime.cpu_amp)
    amp = runtime.amp and (device.type == "cuda" or cpu_bf16)
    # The first layer would cast every batch to bf16 anyway: store the training images in bf16 (half
    # the bytes to shuffle, one op less per step). Augmentation wants float32 images, so not then.
    bf16_images = cpu_bf16 and amp and augmentation.name == "none"
    x_t, y_t, x_val, y_val = _training_tensors(x, y, config, validation_data, device, bf16_images)

    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format).train()
    if runtime.channels_last:
        x_t = x_t.contiguous(memory_format=torch.channels_last)
    forward = model
    if runtime.compile:
        # A fresh model of the same architecture reuses the compiled graphs (they take the weights as
        # inputs), so only the first run in a process pays for compilation.
        forward = torch.compile(model, mode=None if runtime.compile_mode == "default" else runtime.compile_mode)
    if bf16_images:
        x_t = x_t.to(torch.bfloat16)  # a no-op unless the validation split was carved in float32

    steps_per_epoch = (len(x_t) + config.batch_size - 1) // config.batch_size
    optimizer = make_optimizer(model.parameters(), config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)
    augment = (make_augment(augmentation.name, **(augmentation.options or {}))
               if augmentation.name != "none" else None)
    state = TrainState(model, optimizer, scheduler, generator, config, device, steps_per_epoch,
                       x_train=x_t, y_train=y_t, amp=amp)
    fused = _fused_step(state, augment, verbose, bf16=amp and cpu_bf16)
    cbs = CallbackList([*config_callbacks(config), *([default_progress()] if verbose else []), *callbacks])

    with cpu_float_mode() if device.type == "cpu" else contextlib.nullcontext():
        cbs.on_train_begin(state)
        while state.epoch < config.epochs and not state.stop_training:
            cbs.on_epoch_begin(state)
            started = time.perf_counter()
            # The last clean_epochs fine-tune on the images as they are, the distribution they are tested on.
            augmenting = state.epoch < config.epochs - augmentation.clean_epochs
            _start_epoch(state)
            if fused is not None:
                x_epoch, y_epoch = _shuffle_epoch(state, fused.images, y_t)
                fused.train_epoch(state, x_epoch, y_epoch, cbs)
            else:
                _train_one_epoch(state, forward, augment if augmenting else None, cbs)
            logs = {**state.running_metrics(), "lr": optimizer.param_groups[0]["lr"]}
            cbs.on_epoch_trained(state)
            if x_val is not None:
                logs["val_loss"], logs["val_accuracy"] = evaluate_tensors(
                    state.eval_model or forward, x_val, y_val, runtime.eval_batch_size, amp)
            logs["epoch_time"] = time.perf_counter() - started
            state.history.append(logs)
            state.epoch += 1
            state.note_val_loss(logs)
            cbs.on_epoch_end(state, logs)
    cbs.on_train_end(state)
    model.eval()
    return state.history


def _training_tensors(x, y, config: TrainConfig, validation_data, device, bf16_images: bool):
    """(x_train, y_train, x_val, y_val) as tensors on the device; x_val is None without validation."""
    image_dtype = torch.bfloat16 if bf16_images and not config.val_split else None
    x_t, y_t = to_input_tensor(x, device, image_dtype), to_label_tensor(y, device)
    x_val = y_val = None
    if config.val_split:
        if validation_data is not None:
            raise ConfigError("give either validation_data or val_split, not both")
        x_t, y_t, x_val, y_val = split_validation(x_t, y_t, config.val_split, config.seed)
    elif validation_data is not None:
        x_val, y_val = to_input_tensor(validation_data[0], device), to_label_tensor(validation_data[1], device)
    fonts = config.augmentation.synthetic_fonts
    if fonts:  # after the split: validation stays the dataset's own images
        x_t, y_t = mix_font_digits(x_t, y_t, fonts, config.seed)
    if (config.early_stopping or config.keep_best) and x_val is None:
        raise ConfigError("early stopping and keep-best need validation data: set --val-split N (e.g. 5000)")
    return x_t, y_t, x_val, y_val


def _fused_step(state: TrainState, augment, verbose: bool, bf16: bool):
    """The article's mlp trains through a fused step with hand-written gradients (same result, about 2x
    faster); None when this run needs the general loop."""
    config = state.config
    reason = unsupported_reason(state.model, config, state.device, augmenting=augment is not None,
                                distilling=bool(config.regularisation.teacher))
    if reason is not None:
        return None
    fused = FusedMLPStep(state.model, state.optimizer, config, bf16=bf16, x=state.x_train)
    if verbose and fused.kind == "torch" and missing_reason():
        # Say once why this run is slower than it could be, and how to fix it.
        print(f"note: {missing_reason()} (about 1.4x slower)", file=sys.stderr)
    return fused


def _start_epoch(state: TrainState) -> None:
    """Zero the epoch's running loss and accuracy (tensors, so that no step waits for the host)."""
    state._loss_sum = torch.zeros((), device=state.device)
    state._correct = torch.zeros((), device=state.device, dtype=torch.long)
    state._seen = 0
    state._score_seen = None


def _shuffle_epoch(state: TrainState, x_t, y_t):
    """The epoch's shuffled images and labels; the permutation is kept in state.epoch_perm.

    The whole set is shuffled with one gather into a buffer kept across epochs; batches are then
    contiguous views. One big copy costs less than a small gather per step.
    """
    perm = torch.randperm(len(x_t), device=state.device, generator=state.generator)
    if state._shuffled is None or state._shuffled.shape != x_t.shape or state._shuffled.dtype != x_t.dtype:
        state._shuffled = torch.empty_like(x_t)
    state.epoch_perm = perm
    return torch.index_select(x_t, 0, perm, out=state._shuffled), y_t[perm]


def _train_one_epoch(state: TrainState, forward, augment, cbs: CallbackList) -> None:
    """One pass over the training tensors in `randperm` slices; metrics stay in tensors."""
    config, optimizer, size = state.config, state.optimizer, state.config.batch_size
    x_epoch, y_epoch = _shuffle_epoch(state, state.x_train, state.y_train)
    for step in range(state.steps_per_epoch):
        xb, yb = x_epoch[step * size : (step + 1) * size], y_epoch[step * size : (step + 1) * size]
        if augment is not None:
            xb = augment(xb, state.generator)
        with torch.autocast(state.device.type, dtype=torch.bfloat16, enabled=state.amp):
            logits = forward(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=config.regularisation.label_smoothing)
            loss = cbs.on_loss(state, logits, loss, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.scheduler.step()
        with torch.no_grad():
            state._loss_sum += loss.detach() * len(yb)
            state._correct += (logits.argmax(1) == yb).sum()
        state._seen += len(yb)
        cbs.on_batch_end(state, step)
