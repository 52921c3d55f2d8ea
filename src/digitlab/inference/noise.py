"""Robust statistics of an image's pixels: histogram quantiles and the sensor noise's level.

Arrays are float32 (H, W) in [0, 1] unless said otherwise.
"""

from __future__ import annotations

import numpy as np


def quantiles(values: np.ndarray, qs, bins: int = 4096) -> np.ndarray:
    """Quantiles (qs in [0, 1]) of data in [0, 1] from a histogram: O(N), unlike a sort."""
    hist = np.bincount(np.clip(values * (bins - 1) + 0.5, 0, bins - 1).astype(np.int32).ravel(), minlength=bins)
    cdf = np.cumsum(hist) / max(1, values.size)
    return np.searchsorted(cdf, np.asarray(qs, dtype=np.float64)) / (bins - 1)


def robust_sigma(values: np.ndarray) -> float:
    """Standard deviation of mostly-noise data: 1.4826 * median absolute deviation (outliers ignored)."""
    median = float(quantiles(np.clip(values + 0.5, 0, 1), [0.5])[0]) - 0.5
    return 1.4826 * float(quantiles(np.clip(np.abs(values - median), 0, 1), [0.5])[0])


def pixel_noise(image: np.ndarray) -> float:
    """Per-pixel noise standard deviation from the finest diagonal wavelet band (Donoho's estimator).

    (a - b - c + d) / 2 over 2x2 blocks cancels smooth light, straight edges and ruled lines, and
    keeps white noise at its full standard deviation.
    """
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    q = image[:h, :w]
    diagonal = (q[0::2, 0::2] - q[0::2, 1::2] - q[1::2, 0::2] + q[1::2, 1::2]) / 2.0
    return robust_sigma(diagonal)
