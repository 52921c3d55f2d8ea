"""A fused training step for the article's mlp: the gradients written out by hand, one flat optimizer.

Why: on a CPU the article's network is small enough that the matrix products are only half of a
training step. The rest is overhead that autograd, autocast, module calls and a per-tensor optimizer
add to every step: about 80 small operator calls, each a few microseconds of dispatch. This path
computes the same step in 4 calls (native kernels) or about 20 (torch ops):

    forward   h = relu([x | 1] [W1 | b1]^T); logits = h W2^T + b2   (bf16 on CPUs with bf16 hardware)
    loss      softmax cross-entropy, optional label smoothing  (float32)
    backward  dlogits = (softmax - target) / batch
              dW2 = dlogits^T h;  db2 = sum(dlogits)
              dh = (dlogits W2) * [h > 0];  [dW1 | db1] = dh^T [x | 1]
    update    Keras's RMSprop on one flat float32 buffer of the weights (those of blank pixels never move)

The weights, gradients and RMSprop averages each live in one flat float32 tensor. Pixels that are
blank in every training image (67 of MNIST's 784, at the borders) are left out of the products: their
weights get no gradient, so skipping them changes nothing. Layer 1's bias rides in its product as one
more input column of ones.

Two implementations of the step, the same training:
- native (where a C compiler is found, see digitlab.train.native): torch runs the two large products,
  and two native calls do the rest, the small layer, softmax and ReLU gradients in one and the
  RMSprop update with the bf16 copy of the weights in the other. 4 calls per step.
- torch ops (otherwise, or with DIGITLAB_NATIVE=0): about 20 torch calls per step; the update is torch's
  fused Adam kernel, made to compute Keras's RMSprop (digitlab.train.fused_mlp_torch).
Measured on 2 cores (bench/seed_mlp.py, fastest of 3): 5 epochs in 1.64 s native, 2.30 s on torch ops
and 3.43 s in the general autograd loop, at the same accuracy; the matrix products alone take 1.39 s.

It is a drop-in for `fit`'s epoch, used only where it computes exactly what the general loop does
(see `unsupported_reason`): the weights and the optimizer's state go back into the model and the
optimizer after every epoch, so validation, checkpoints, resuming and saving see the usual objects.
"""

from __future__ import annotations

import math

import torch

from digitlab.models.mlp import MLP
from digitlab.train.config import TrainConfig
from digitlab.train.fused_mlp_torch import FusedAdamRMSprop, torch_steps
from digitlab.train.native import mlp_kernels, status


def unsupported_reason(model, config: TrainConfig, device, *, augmenting: bool, distilling: bool) -> str | None:
    """Why the fused step cannot train this run (None when it can). The general loop trains it then."""
    if not config.runtime.fused:
        return "turned off (fused=False)"
    if type(model) is not MLP:
        return f"the model is {type(model).__name__}, not the mlp"
    if model.dropout is not None:
        return "the mlp has dropout"
    if device.type != "cpu":
        return f"the device is {device.type}, not cpu"
    if config.optimizer.name != "rmsprop":
        return f"the optimizer is {config.optimizer.name}, not rmsprop"
    if not config.optimizer.rho > 0:
        return "rmsprop's rho is 0"
    if augmenting:
        return "augmentation is on"
    if distilling:
        return "distillation is on"
    if config.runtime.compile:
        return "torch.compile is on"
    if config.regularisation.ema_decay:  # the fused step updates flat weights of its own; the average follows the module's
        return "weight averaging (EMA) is on"
    return None


class FusedMLPStep:
    """Flat weights, gradients and RMSprop state for an MLP, and the fused epoch that trains them.

    The flat layout is [W1 | b1] (hidden, k + 1), W2, b2: layer 1's bias is one more input column,
    and `images` (the copy of the training images the step trains on, in the products' dtype) carry
    a constant 1 in that column, so one product adds the bias and one gives its gradient. The k
    input columns are the pixels that are not blank in every training image.
    x: the training images as `fit` holds them, (N, 1, 28, 28).
    """

    def __init__(self, model, optimizer, config: TrainConfig, bf16: bool, x, native: bool | None = None):
        self.model, self.optimizer, self.config = model, optimizer, config
        self.compute_dtype = torch.bfloat16 if bf16 else torch.float32
        hidden, classes = model.dense1.weight.shape[0], model.dense2.weight.shape[0]
        # The native kernels (digitlab.train.native) where they build, else torch ops; native=False forces torch.
        self.kernels = None
        if native is not False:
            kernels = mlp_kernels()
            if kernels is not None and kernels.supports(hidden, classes):
                self.kernels = kernels
        if native and self.kernels is None:
            raise RuntimeError("the native kernels are not available: " + status())
        self.pixels, self._images = x.reshape(len(x), -1), None
        self.alive = self._live_columns(config).nonzero().squeeze(1)
        k = len(self.alive)
        # The live pixels come in a few runs of neighbours (14 on MNIST: the middle of each image row).
        self.runs = _runs(self.alive.tolist())
        self.params = [model.dense1.weight, model.dense1.bias, model.dense2.weight, model.dense2.bias]
        self.shapes = [(model.dense1.weight.shape[0], k + 1), tuple(model.dense2.weight.shape),
                       tuple(model.dense2.bias.shape)]
        n = sum(math.prod(shape) for shape in self.shapes)
        self.weights, self.grads = torch.empty(n), torch.empty(n)
        # RMSprop's average of squared gradients (the torch update keeps it shifted, see `_shift`).
        self.square_avg = torch.empty(n)
        # The products' copy of the weights: a bf16 cast each step, or the float32 weights themselves.
        self.compute_weights = torch.empty(n, dtype=torch.bfloat16) if bf16 else self.weights
        self.g1, self.g2, self.gb2 = self._views(self.grads)
        self.cw1, self.cw2, self.cb2 = self._views(self.compute_weights)
        if self.kernels is None:
            self.torch_update = FusedAdamRMSprop(n)
        else:
            bs = config.batch_size
            self.h = torch.empty(bs, hidden, dtype=self.compute_dtype)  # layer 1's pre-activations
            self.dh = torch.empty(bs, hidden, dtype=self.compute_dtype)
            self.scratch = torch.empty(bs * (hidden + classes))  # the head's float32 activations, then dlogits
            # The backward product writes layer 1's gradient here: the flat gradient itself in float32;
            # in bf16 a buffer of its own, which the update reads as it is (no cast).
            self.g1_out = self.g1 if not bf16 else torch.empty(self.g1.shape, dtype=torch.bfloat16)

    def _live_columns(self, config: TrainConfig):
        """Which pixels the products keep: those not blank in every training image (a bool mask)."""
        pixels = self.pixels
        if config.optimizer.weight_decay:
            # Weight decay moves every weight, blank pixels' too: keep them all.
            return torch.ones(pixels.shape[1], dtype=torch.bool)
        if self.kernels is not None and pixels.dtype in (torch.bfloat16, torch.float32) and pixels.is_contiguous():
            live = torch.empty(pixels.shape[1], dtype=torch.uint8)
            if self.kernels.live_columns(len(pixels), pixels.shape[1], pixels.element_size(), pixels.data_ptr(),
                                         live.data_ptr(), torch.get_num_threads()):
                return live.bool()  # one pass on 2 threads: 4x faster than the two reductions below
        # Two reductions: 4x faster here than `(pixels != 0).any(0)`.
        return (pixels.amax(0) != 0) | (pixels.amin(0) != 0)

    @property
    def images(self):
        """The training images' live pixels and a column of ones, (N, k + 1) in the products' dtype.

        Built on first use: by the native kernels' row gather where they run (2 threads, 3x faster),
        else with one strided copy per run of live pixels (1.8x faster than gathering columns by index)."""
        if self._images is None:
            pixels, k = self.pixels, len(self.alive)
            self._images = torch.empty(len(pixels), k + 1, dtype=self.compute_dtype)
            if self.kernels is not None and pixels.dtype == self.compute_dtype and pixels.is_contiguous():
                rows = torch.arange(len(pixels))
                runs = torch.tensor(self.runs, dtype=torch.int32)
                self.kernels.gather(len(rows), rows.data_ptr(), pixels.data_ptr(), pixels.shape[1],
                                    pixels.element_size(), runs.data_ptr(), len(self.runs), self._images.data_ptr(),
                                    k + 1, torch.get_num_threads())
            else:
                self._images[:, k] = 1.0
                for source, dest, length in self.runs:
                    self._images[:, dest : dest + length] = pixels[:, source : source + length]
        return self._images

    @property
    def kind(self) -> str:
        """Which implementation runs the step: "native" kernels or "torch" ops."""
        return "native" if self.kernels is not None else "torch"

    def _views(self, flat):
        views, offset = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            views.append(flat[offset : offset + size].view(shape))
            offset += size
        return views

    def _to_flat(self, tensors, flat) -> None:
        """(W1, b1, W2, b2) in the model's layout -> `flat`."""
        layer1, w2, b2 = self._views(flat)
        layer1[:, :-1] = tensors[0][:, self.alive]
        layer1[:, -1] = tensors[1]
        w2.copy_(tensors[2])
        b2.copy_(tensors[3])

    def _from_flat(self, flat, tensors) -> None:
        """`flat` -> (W1, b1, W2, b2); W1's columns of blank pixels are left as they are."""
        layer1, w2, b2 = self._views(flat)
        tensors[0].index_copy_(1, self.alive, layer1[:, :-1])
        tensors[1].copy_(layer1[:, -1])
        tensors[2].copy_(w2)
        tensors[3].copy_(b2)

    def _shift(self) -> float:
        """How far the flat RMSprop state sits above Keras's v: 0 for the native update, eps / rho for the
        torch one (see fused_mlp_torch.FusedAdamRMSprop)."""
        if self.kernels is not None:
            return 0.0
        return self.torch_update.shift(self.optimizer.param_groups[0])

    def load(self) -> None:
        """Copy the model's weights and the optimizer's state in (a callback may have changed them)."""
        state = self.optimizer.state
        with torch.no_grad():
            self._to_flat(self.params, self.weights)
            avgs = [state[p]["square_avg"] if "square_avg" in state.get(p, {}) else torch.zeros_like(p)
                    for p in self.params]
            self._to_flat(avgs, self.square_avg)
            self.square_avg.add_(self._shift())
            if self.kernels is None:
                self.torch_update.reset()  # (the torch step casts the weights at every step)
            elif self.compute_weights is not self.weights:
                self.compute_weights.copy_(self.weights)  # the native update keeps this copy from here on

    def store(self, steps: int) -> None:
        """Copy the weights and the RMSprop state back where checkpoints and evaluation look for them."""
        state = self.optimizer.state
        rho = self.optimizer.param_groups[0]["alpha"]
        with torch.no_grad():
            self._from_flat(self.weights, self.params)
            avgs = []
            for p in self.params:
                s = state[p]
                s.setdefault("step", torch.zeros((), dtype=torch.float32))
                s["step"] += steps
                avgs.append(s.setdefault("square_avg", torch.zeros_like(p)))
            # Blank pixels' weights did not move; their squared-gradient averages decayed by rho a step.
            avgs[0].mul_(rho**steps)
            # Rounding can leave a zero average a hair below 0 once unshifted: clamp, it is a mean of squares.
            self._from_flat((self.square_avg - self._shift()).clamp_(min=0.0), avgs)

    def train_epoch(self, state, x_epoch, y_epoch, callbacks) -> None:
        """One epoch over shuffled rows of `images`; sets state's running loss and accuracy."""
        config, optimizer = self.config, self.optimizer
        n, num_classes = len(x_epoch), self.cw2.shape[0]
        # Targets for the whole epoch at once: one-hot, smoothed as F.cross_entropy's label_smoothing does.
        ls = config.regularisation.label_smoothing
        target = torch.full((n, num_classes), ls / num_classes)
        target.scatter_(1, y_epoch[:, None], 1.0 - ls + ls / num_classes)
        # Each step's logits land here; loss and accuracy are scored from them when asked (by a progress
        # bar, and at the end of the epoch) rather than with seven small operations every step.
        epoch_logits = torch.empty(n, num_classes)
        if self.kernels is not None:
            # The native head also writes each row's cross-entropy: the running loss is then one sum.
            row_loss = torch.empty(n)
            state._score_seen = lambda seen: (row_loss[:seen].sum(),
                                              (epoch_logits[:seen].argmax(1) == y_epoch[:seen]).sum())
        else:
            row_loss = None
            state._score_seen = lambda seen: _score(epoch_logits[:seen], target[:seen], y_epoch[:seen])
        self.load()
        # The fused update is this optimizer's step: tell the LR scheduler so (it warns otherwise).
        optimizer._opt_called = True
        if self.kernels is not None:
            self._native_steps(state, x_epoch, target, epoch_logits, row_loss, callbacks)
        else:
            torch_steps(self, state, x_epoch, target, epoch_logits, callbacks)
        self.store(state.steps_per_epoch)
        state._loss_sum, state._correct = state._score_seen(state._seen)
        state._score_seen = None

    def _native_steps(self, state, x_epoch, target, epoch_logits, row_loss, callbacks) -> None:
        """The epoch's steps: torch's two large products, and everything else in two native calls."""
        group, kernels = self.optimizer.param_groups[0], self.kernels
        bs, (classes, hidden) = self.config.batch_size, self.shapes[1]
        bf16 = int(self.compute_dtype == torch.bfloat16)
        n1, n_all = self.g1.numel(), self.weights.numel()
        layer1_t, h, dh, g1_out = self.cw1.t(), self.h, self.dh, self.g1_out
        # Addresses of the buffers, fixed for the epoch; a batch's rows of target and logits are offsets.
        ptr = {name: t.data_ptr() for name, t in dict(
            h=h, dh=dh, g1=g1_out, grads=self.grads, gb2=self.gb2, w=self.weights, w2=self.weights[n1:],
            b2=self.weights[n_all - classes:], v=self.square_avg, target=target, logits=epoch_logits,
            loss=row_loss, hf=self.scratch, d=self.scratch[bs * hidden:]).items()}
        cw = self.compute_weights.data_ptr() if bf16 else None
        row_bytes = classes * 4
        head, rmsprop, mm = kernels.head, kernels.rmsprop, torch.mm
        threads = torch.get_num_threads()  # 1 in a forked worker: the kernels then stay off OpenMP's pool
        for step in range(state.steps_per_epoch):
            start = step * bs
            xb = x_epoch[start : start + bs]
            m = len(xb)
            h_m, dh_m = (h, dh) if m == bs else (h[:m], dh[:m])
            mm(xb, layer1_t, out=h_m)  # xb's last column is 1: this adds b1
            head(m, hidden, classes, bf16, ptr["h"], ptr["w2"], ptr["b2"], ptr["target"] + start * row_bytes,
                 ptr["logits"] + start * row_bytes, ptr["loss"] + start * 4, ptr["grads"] + n1 * 4, ptr["gb2"],
                 ptr["dh"], ptr["hf"], ptr["d"], threads)
            mm(dh_m.t(), xb, out=g1_out)  # [dW1 | db1]
            rmsprop(n1, n_all, bf16, ptr["g1"], ptr["grads"] + n1 * 4, ptr["w"], ptr["v"], cw,
                    group["lr"], group["alpha"], group["eps"], group["weight_decay"], threads)
            state.scheduler.step()
            state._seen += m
            callbacks.on_batch_end(state, step)


def _runs(columns: list) -> list:
    """(first column, position in `columns`, length) of each run of consecutive numbers in sorted `columns`."""
    runs = []
    for position, column in enumerate(columns):
        if runs and column == runs[-1][0] + runs[-1][2]:
            runs[-1][2] += 1
        else:
            runs.append([column, position, 1])
    return runs


def _score(logits, target, labels):
    """(summed cross-entropy against `target`, number right) of a block of logits."""
    return -(torch.log_softmax(logits, 1) * target).sum(), (logits.argmax(1) == labels).sum()
