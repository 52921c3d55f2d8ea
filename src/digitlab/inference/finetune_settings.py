"""The fine-tuning settings on their own, light module: `digitlab train --help` shows their defaults
without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from digitlab.errors import ConfigError


@dataclass(frozen=True)
class FinetuneSettings:
    """holdout: share of each label's images kept out of training to measure the gain (a label with
    one image trains on it). mnist_images: MNIST training images mixed in. user_share: your images' share
    of the mixed training set (yours are repeated to reach it; augmentation varies the copies)."""

    holdout: float = 0.25
    mnist_images: int = 6000
    user_share: float = 0.3
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.holdout < 1:
            raise ConfigError(f"the held-out share must be in [0, 1), got {self.holdout}")
        if self.mnist_images < 0:
            raise ConfigError(f"the MNIST images to mix in must be >= 0, got {self.mnist_images}")
        if not 0 < self.user_share <= 1:
            raise ConfigError(f"your images' share of the training set must be in (0, 1], got {self.user_share}")
