"""Convolutional networks: `cnn` (the classic next step), `fast` (99% in seconds on a CPU), `best` and `deep`.

All four take float32 (N, 1, 28, 28) in [0, 1] and return logits (N, num_classes). They are plain
`nn.Sequential` stacks with named layers, so the summary reads like Keras's and ONNX export needs
nothing special.

- `cnn`: Keras's `mnist_convnet` example, layer for layer (34,826 parameters, about 99.2%).
- `fast`: built for the least CPU time to 99% test accuracy. Profiling (torch.profiler, 2 cores)
  showed the time goes to the 28x28 stage: a 3x3 convolution there and the max-pool after it cost as
  much as the whole rest of the net. So the stem is one 4x4 stride-2 convolution straight to 14x14,
  and the later stages pool *before* batch norm and ReLU (conv -> pool -> BN -> ReLU, as airbench),
  which does the elementwise work on 4x fewer values. The last stage is wide (96): at 7x7 a wider
  convolution costs oneDNN almost nothing extra, and it bought accuracy on the validation split.
- `best`: a VGG-style net (two 3x3 conv + BN + ReLU per stage, max-pool, dropout) for the highest
  single-model accuracy with augmentation; widths (48, 96, 192) give about 0.66M parameters
  (2.6 MB of float32), inside the 5 MB budget of the model that ships with the package.
- `deep`: ten unpadded 3x3 convolutions with BN and ReLU and no pooling at all (28 -> 8), widths
  growing by 16 from 32 to 176, then one dense layer: the "M3" net of An et al. (2020), the kind of
  plain deep stack behind the strongest published single MNIST models (about 99.8%, though with the
  epoch chosen on the test set; their last epochs score 99.68-99.73%, docs/accuracy.md). Without pooling
  every layer keeps seeing fine detail; shrinking by 2 pixels per layer does the downsampling. About
  2.7x `best`'s arithmetic (173M multiply-adds per image): a GPU model.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from digitlab.errors import ConfigError
from digitlab.models.registry import register
from digitlab.models.width_norm import WidthNormalize


def _check_widths(widths, n: int, name: str) -> tuple[int, ...]:
    widths = tuple(int(w) for w in widths)
    if len(widths) != n or min(widths) < 1:
        raise ConfigError(f"model {name!r} needs {n} positive widths, got {list(widths)}")
    return widths


def _check_dropout(p: float, name: str) -> float:
    if not 0 <= p < 1:
        raise ConfigError(f"model {name!r}: dropout must be in [0, 1), got {p}")
    return float(p)


def _input_stage(input_width: int | None) -> OrderedDict:
    """The layers before the first convolution: none, or width normalisation (models/width_norm.py)."""
    return OrderedDict() if input_width is None else OrderedDict(width_norm=WidthNormalize(input_width))


def _keras_init(model: nn.Module) -> nn.Module:
    # Keras's defaults (glorot_uniform kernels, zero biases), so `cnn` trains like the Keras example.
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


@register("cnn", description="Keras's mnist_convnet: conv32-pool-conv64-pool-dropout-dense (34,826 params)")
def cnn(filters: tuple[int, int] = (32, 64), dropout: float = 0.5, num_classes: int = 10) -> nn.Sequential:
    """Conv(3x3, valid) -> ReLU -> MaxPool(2), twice; Flatten -> Dropout -> Dense. 28 -> 26 -> 13 -> 11 -> 5."""
    f1, f2 = _check_widths(filters, 2, "cnn")
    layers = OrderedDict(
        conv1=nn.Conv2d(1, f1, 3), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),  # (N, f1, 13, 13)
        conv2=nn.Conv2d(f1, f2, 3), relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),  # (N, f2, 5, 5)
        flatten=nn.Flatten(),
        dropout=nn.Dropout(_check_dropout(dropout, "cnn")),
        dense=nn.Linear(f2 * 5 * 5, num_classes),
    )
    return _keras_init(nn.Sequential(layers))


@register("fast", description="small BN convnet (41,450 params); --preset fast trains it to 99% in seconds")
def fast(widths: tuple[int, int, int] = (16, 32, 96), num_classes: int = 10,
         input_width: int | None = None) -> nn.Sequential:
    """Stem conv 4x4/2 -> BN -> ReLU (14x14); [conv 3x3 -> pool -> BN -> ReLU] x2 (7x7, 3x3); dense.

    `input_width` (pixels) first normalises each digit's width, as the MCDNN's columns did."""
    w1, w2, w3 = _check_widths(widths, 3, "fast")
    layers = _input_stage(input_width)
    layers.update(
        stem=nn.Conv2d(1, w1, 4, stride=2, padding=1, bias=False), bn0=nn.BatchNorm2d(w1), relu0=nn.ReLU(),
        conv1=nn.Conv2d(w1, w2, 3, padding=1, bias=False), pool1=nn.MaxPool2d(2),  # (N, w2, 7, 7)
        bn1=nn.BatchNorm2d(w2), relu1=nn.ReLU(),
        conv2=nn.Conv2d(w2, w3, 3, padding=1, bias=False), pool2=nn.MaxPool2d(2),  # (N, w3, 3, 3)
        bn2=nn.BatchNorm2d(w3), relu2=nn.ReLU(),
        flatten=nn.Flatten(),
        dense=nn.Linear(w3 * 3 * 3, num_classes),
    )
    return nn.Sequential(layers)


@register("best", description="VGG-style BN + dropout convnet for the highest accuracy (~0.66M params)")
def best(
    widths: tuple[int, int, int] = (48, 96, 192),
    dropout: float = 0.2,
    head_dropout: float = 0.3,
    num_classes: int = 10,
    input_width: int | None = None,
) -> nn.Sequential:
    """Three stages of [conv 3x3 -> BN -> ReLU] x2 -> MaxPool(2) -> Dropout: 28 -> 14 -> 7 -> 3; dense.

    `input_width` (pixels) first normalises each digit's width, as the MCDNN's columns did."""
    widths = _check_widths(widths, 3, "best")
    p, p_head = _check_dropout(dropout, "best"), _check_dropout(head_dropout, "best")
    layers: OrderedDict[str, nn.Module] = _input_stage(input_width)
    cin = 1
    for stage, width in enumerate(widths, start=1):
        for i in (1, 2):
            layers[f"conv{stage}_{i}"] = nn.Conv2d(cin, width, 3, padding=1, bias=False)
            layers[f"bn{stage}_{i}"] = nn.BatchNorm2d(width)
            layers[f"relu{stage}_{i}"] = nn.ReLU()
            cin = width
        layers[f"pool{stage}"] = nn.MaxPool2d(2)
        layers[f"drop{stage}"] = nn.Dropout(p)
    layers["flatten"] = nn.Flatten()
    layers["head_dropout"] = nn.Dropout(p_head)
    layers["dense"] = nn.Linear(cin * 3 * 3, num_classes)
    return nn.Sequential(layers)


@register("deep", description="ten unpadded 3x3 conv + BN + ReLU layers, no pooling (the M3 net; ~1.13M params)")
def deep(
    widths: tuple[int, ...] = (32, 48, 64, 80, 96, 112, 128, 144, 160, 176),
    num_classes: int = 10,
    input_width: int | None = None,
) -> nn.Sequential:
    """[conv 3x3 (no padding) -> BN -> ReLU] x10: 28 -> 26 -> ... -> 8; flatten; dense.

    `input_width` (pixels) first normalises each digit's width, as the MCDNN's columns did."""
    widths = _check_widths(widths, 10, "deep")
    layers: OrderedDict[str, nn.Module] = _input_stage(input_width)
    cin = 1
    for i, width in enumerate(widths, start=1):
        layers[f"conv{i}"] = nn.Conv2d(cin, width, 3, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(width)
        layers[f"relu{i}"] = nn.ReLU()
        cin = width
    layers["flatten"] = nn.Flatten()
    layers["dense"] = nn.Linear(cin * 8 * 8, num_classes)
    return nn.Sequential(layers)
