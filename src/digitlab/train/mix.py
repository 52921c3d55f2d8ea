"""Font-rendered digits mixed into the training tensors (AugmentationConfig.synthetic_fonts)."""

from __future__ import annotations

import torch

from digitlab.data.synthetic import font_digits
from digitlab.train.tensors import to_input_tensor, to_label_tensor


def mix_font_digits(x_t, y_t, n: int, seed: int):
    """x_t, y_t with `n` font digits (digitlab.data.synthetic, the "train" fonts) appended.

    x_t: float (N, 1, 28, 28) in [0, 1] on the training device (any dtype, memory format kept);
    y_t: int64 (N,). The digits are drawn from `seed`; the loop shuffles them in with the rest.
    """
    if n <= 0:
        return x_t, y_t
    images, labels = font_digits(n, seed=seed, split="train")
    extra = to_input_tensor(images, x_t.device, x_t.dtype)
    x = torch.cat([x_t, extra])
    if x_t.is_contiguous(memory_format=torch.channels_last) and not x_t.is_contiguous():
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.cat([y_t, to_label_tensor(labels, y_t.device)])
