"""Width normalisation: stretch or squeeze each digit horizontally to a fixed ink width, inside the model.

Why: the MCDNN (Ciresan et al., 2012) made its committee diverse by training columns on differently
preprocessed inputs: the original digits and the digits with their width normalised to 10, 12, ..., 20
pixels. A column that sees every "0" exactly 14 pixels wide makes other mistakes than one that sees
them as written, and averaging columns that err differently is what lifts an ensemble.

It is a layer, not a dataset transform, so that a saved model carries it: `evaluate`, `ensemble`,
`predict`, `serve` and the ONNX export all see raw 28x28 digits and the model normalises them the
same way it did in training (augmentation, applied to the raw digit before the model, composes with it).

The resampling is horizontal only and keeps the centre of the digit's ink box where it is (MNIST
digits are already centred). Each output column j reads the input at x = c + (j - c) / s, where s is
the target width over the ink width, through a triangle kernel: linear interpolation when stretching,
widened by 1/s when squeezing so that no ink is skipped (the antialiased resize of image libraries).
Written as one batched matrix product of elementwise-built kernels: no per-image loop, on any device,
and it exports to ONNX as plain MatMul and arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from digitlab.errors import ConfigError

# A column holds ink when its brightest pixel passes this (of 1.0): MNIST's anti-aliased edges and faint
# specks below it do not widen the box.
INK_THRESHOLD = 0.2


def check_input_width(width) -> int:
    """A target ink width in whole pixels, 4 to the 28 of an MNIST image; a one-line ConfigError otherwise."""
    if isinstance(width, bool) or not isinstance(width, int) or not 4 <= width <= 28:
        raise ConfigError(f"input_width must be a whole number of pixels from 4 to 28 (MCDNN used 10-20), "
                          f"or null for none; got {width!r}")
    return width


class WidthNormalize(nn.Module):
    """(N, 1, H, W) in [0, 1] -> the same shape, each digit's ink box resampled to `width` pixels wide.

    Blank images (no column above the ink threshold) pass through unchanged. No parameters."""

    def __init__(self, width: int):
        super().__init__()
        self.width = check_input_width(width)

    def extra_repr(self) -> str:
        return f"width={self.width}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        cols = torch.arange(w, device=x.device, dtype=x.dtype)  # pixel centres 0..w-1
        ink = (x.amax(dim=(1, 2)) > INK_THRESHOLD).to(x.dtype)  # (N, W): columns with ink
        has_ink = ink.amax(dim=1, keepdim=True)  # (N, 1): 0 for a blank image
        big = float(w)  # first and last ink column, with ONNX-friendly reductions (no nonzero())
        left = (cols + (1 - ink) * big).amin(dim=1, keepdim=True)
        right = (cols - (1 - ink) * big).amax(dim=1, keepdim=True)
        centre = (left + right) / 2
        ink_width = (right - left + 1).clamp(min=1)
        # Blank images get scale 1: the identity kernel.
        scale = has_ink * (self.width / ink_width) + (1 - has_ink)  # (N, 1)
        source = centre + (cols - centre) / scale  # (N, W): where output column j reads the input
        support = scale.clamp(max=1)  # squeezing widens the kernel to 1/scale input pixels
        kernel = self._triangle(cols, source, support)  # (N, W_in, W_out)
        # A sampled triangle's weights sum to 1 only on average; divide by the sum it would have on an
        # unbounded row (the image's columns and a width either side), so that flat ink stays as bright
        # and the columns near the border are not brightened for lacking neighbours.
        wide = torch.arange(-w, 2 * w, device=x.device, dtype=x.dtype)
        kernel = kernel / self._triangle(wide, source, support).sum(dim=1, keepdim=True)
        return torch.matmul(x.reshape(n, c * h, w), kernel).reshape(n, c, h, w)

    @staticmethod
    def _triangle(inputs: torch.Tensor, source: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """(N, len(inputs), W_out): the weight of input column i in output column j."""
        n, w_out = source.shape
        distance = (inputs.view(1, -1, 1) - source.view(n, 1, w_out)).abs()
        return support.view(n, 1, 1) * torch.relu(1 - support.view(n, 1, 1) * distance)
