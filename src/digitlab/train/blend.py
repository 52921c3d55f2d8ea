"""Blend a fine-tuned model back toward the weights it started from (WiSE-FT, Wortsman et al., 2022).

Fine-tuning the shipped model on new writing styles teaches it flagged 1s and 8x8 scans, but moves it
away from what it knew: its MNIST test accuracy drops. Averaging the weights before and after
fine-tuning keeps most of what was learned and most of what was known, at no cost at inference time:

    weights = (1 - s) * fine_tuned + s * start        (s = TrainConfig's regularisation.blend_start)

Every floating-point tensor of the state dict is blended, the batch-norm statistics included (the two
models are close, so their statistics are too); integer buffers (BN's step counters) stay as trained.
"""

from __future__ import annotations

import torch

from digitlab.train.callbacks import Callback


def blend_state(current: dict, start: dict, share_of_start: float) -> dict:
    """The state dict (1 - s) * current + s * start, tensor by tensor; integer tensors from `current`."""
    if current.keys() != start.keys():
        missing = sorted(set(current) ^ set(start))[:3]
        raise ValueError(f"cannot blend weights of different models (tensors {', '.join(missing)} differ)")
    blended = {}
    for name, tensor in current.items():
        if tensor.is_floating_point():
            blended[name] = torch.lerp(tensor.float(), start[name].float().to(tensor.device), share_of_start)
            blended[name] = blended[name].to(tensor.dtype)
        else:
            blended[name] = tensor
    return blended


class BlendWithStart(Callback):
    """Keep the starting weights; at the end of training, blend the trained weights toward them."""

    def __init__(self, share_of_start: float):
        if not 0 < share_of_start < 1:
            raise ValueError(f"the starting weights' share must be in (0, 1), got {share_of_start}")
        self.share_of_start = share_of_start
        self.start = None

    def on_train_begin(self, state) -> None:
        self.start = {name: t.detach().clone() for name, t in state.model.state_dict().items()}

    def on_train_end(self, state) -> None:
        blended = blend_state(state.model.state_dict(), self.start, self.share_of_start)
        state.model.load_state_dict(blended)
        self.start = None
