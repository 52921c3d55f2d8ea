"""The article's network: Flatten(784) -> Dense(512, relu) -> Dense(10, softmax).

Initialised as Keras does (Glorot-uniform weights, zero biases), so that training behaves like the
tutorial's. The softmax lives in the loss and in `predict_proba` (logits out), which is the same
function computed in a numerically stable way.
"""

from __future__ import annotations

import torch
from torch import nn

from digitlab.models.registry import register


class MLP(nn.Module):
    def __init__(self, hidden: int = 512, num_classes: int = 10, dropout: float = 0.0):
        super().__init__()
        self.flatten = nn.Flatten()
        self.dense1 = nn.Linear(28 * 28, hidden)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.dense2 = nn.Linear(hidden, num_classes)
        for layer in (self.dense1, self.dense2):
            nn.init.xavier_uniform_(layer.weight)  # Keras's glorot_uniform
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 1, 28, 28) float in [0, 1] -> logits (N, num_classes)
        h = self.relu(self.dense1(self.flatten(x)))
        if self.dropout is not None:
            h = self.dropout(h)
        return self.dense2(h)


@register("mlp", description="the article's Dense(512, relu) -> Dense(10, softmax) on 784 pixels (407,050 params)")
def mlp(hidden: int = 512, num_classes: int = 10, dropout: float = 0.0) -> MLP:
    return MLP(hidden=hidden, num_classes=num_classes, dropout=dropout)
