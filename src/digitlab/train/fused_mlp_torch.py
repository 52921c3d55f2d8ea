"""The fused mlp step in torch ops: where its native kernels cannot be built (no C compiler, or
DIGITLAB_NATIVE=0). The same training as digitlab.train.fused_mlp's native path, about 1.4x slower:
about 20 torch calls a step, and Keras's RMSprop computed by torch's fused Adam kernel.
"""

from __future__ import annotations

import math

import torch


def torch_steps(step, state, x_epoch, target, epoch_logits, callbacks) -> None:
    """One epoch of a FusedMLPStep's steps (`step`: its flat buffers and their views)."""
    group, bs = step.optimizer.param_groups[0], step.config.batch_size
    mm, addmm, relu_backward = torch.mm, torch.addmm, torch.ops.aten.threshold_backward
    cast = step.compute_weights is not step.weights
    layer1, w2, b2 = step.cw1, step.cw2, step.cb2
    for index in range(state.steps_per_epoch):
        rows = slice(index * bs, (index + 1) * bs)
        xb, tb, logits = x_epoch[rows], target[rows], epoch_logits[rows]
        m = len(tb)
        if cast:
            step.compute_weights.copy_(step.weights)
        h = mm(xb, layer1.t()).relu_()  # xb's last column is 1: this adds b1
        logits.copy_(addmm(b2, h, w2.t()))
        # d(mean cross-entropy)/d logits = (softmax - target) / batch
        d_logits = torch.softmax(logits, 1).sub_(tb).div_(m).to(step.compute_dtype)
        step.g2.copy_(mm(d_logits.t(), h))
        step.gb2.copy_(d_logits.sum(0))  # summed in the products' dtype, as autocast's backward does
        d_h = relu_backward(mm(d_logits, w2), h, 0)
        step.g1.copy_(mm(d_h.t(), xb))  # [dW1 | db1]
        step.torch_update(step.weights, step.grads, step.square_avg, group)
        state.scheduler.step()
        state._seen += m
        callbacks.on_batch_end(state, index)


class FusedAdamRMSprop:
    """KerasRMSprop's step, v = rho v + (1-rho) g^2; w -= lr g / sqrt(v + eps), in one fused kernel.

    torch's fused Adam kernel computes it in one pass over the buffers where the same formula takes
    five. With beta1 = 0 its first moment is the gradient; its bias correction is undone through the
    learning rate; and its eps goes outside the square root where Keras's is inside, so it gets eps = 0
    and the state is kept shifted: s = v + eps / rho (`shift`). Then the kernel's rho s + (1-rho) g^2 is
    v_new + eps (up to float rounding), the denominator Keras wants, and one add moves the state back to
    v_new + eps / rho. The step costs 0.1 ms against 0.18 ms for the five passes (2 threads).
    """

    def __init__(self, size: int):
        self.first_moment = torch.zeros(size)  # Adam's; with beta1 = 0 it is the gradient
        self.adam_step = torch.zeros(())
        self.steps_taken = 0  # the same count as a Python int, for the bias correction

    @staticmethod
    def shift(group: dict) -> float:
        """How far above Keras's v the squared-gradient average is kept."""
        return group["eps"] / group["alpha"]

    def reset(self) -> None:
        """A new epoch, its state loaded afresh: Adam's bias correction and the one undoing it restart together."""
        self.adam_step.zero_()
        self.steps_taken = 0

    def __call__(self, weights, grads, shifted_avg, group: dict) -> None:
        lr, rho, eps = group["lr"], group["alpha"], group["eps"]
        self.adam_step += 1
        self.steps_taken += 1
        bias_correction = 1.0 - rho**self.steps_taken
        torch._fused_adam_(
            [weights], [grads], [self.first_moment], [shifted_avg], [], [self.adam_step],
            lr=lr / math.sqrt(bias_correction), beta1=0.0, beta2=rho,
            weight_decay=group["weight_decay"], eps=0.0, amsgrad=False, maximize=False,
        )
        shifted_avg.add_(eps * (1.0 - rho) / rho)
