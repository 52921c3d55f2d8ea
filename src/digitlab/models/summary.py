"""A Keras-style model summary: each layer, its output shape and its parameter count."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple
    params: int


def summarize(model, input_shape=(1, 1, 28, 28)) -> list[LayerRow]:
    """Run one dummy batch through `model` and record every leaf module's output shape."""
    rows: list[LayerRow] = []
    hooks = []
    for name, module in model.named_modules():
        if list(module.children()) or name == "":
            continue  # leaves only: containers would double-count

        def hook(mod, _inp, out, name=name):
            shape = tuple(out.shape) if hasattr(out, "shape") else ()
            params = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append(LayerRow(name, type(mod).__name__, (None, *shape[1:]), params))

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def model_summary(model, title: str | None = None) -> str:
    """Return the summary as text, with totals, like Keras's `model.summary()`."""
    rows = summarize(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    header = ("Layer (type)", "Output Shape", "Param #")
    lines_ = [(f"{r.name} ({r.kind})", str(r.output_shape), f"{r.params:,}") for r in rows]
    w0 = max(len(header[0]), *(len(l[0]) for l in lines_)) + 2
    w1 = max(len(header[1]), *(len(l[1]) for l in lines_)) + 2
    width = w0 + w1 + 12
    out = []
    if title:
        out.append(f'Model: "{title}"')
    out.append("=" * width)
    out.append(f"{header[0]:<{w0}}{header[1]:<{w1}}{header[2]:>10}")
    out.append("=" * width)
    for l in lines_:
        out.append(f"{l[0]:<{w0}}{l[1]:<{w1}}{l[2]:>10}")
    out.append("=" * width)
    out.append(f"Total params: {total:,}")
    out.append(f"Trainable params: {trainable:,}")
    out.append(f"Non-trainable params: {total - trainable:,}")
    return "\n".join(out)
