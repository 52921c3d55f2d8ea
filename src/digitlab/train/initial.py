"""Where a training run starts: fresh weights, or a saved model's architecture and weights (fine-tuning)."""

from __future__ import annotations

from digitlab.errors import ModelError
from digitlab.models.storage import load_model

PRETRAINED = "pretrained"


def initial_model(spec: str | None):
    """(model, provenance) for a run that starts from the saved model `spec`: a run folder, a
    .safetensors/.json file, or None / "pretrained" for the shipped model.

    The model comes back in train mode, with the saved weights. provenance: {"spec", "architecture",
    "weights_sha256"}, recorded with the new run so that it says where it started.
    """
    source = None if spec in (None, PRETRAINED) else spec
    try:
        model = load_model(source)
    except ModelError as exc:
        raise ModelError(f"--from: {exc}") from None
    meta = model.digitlab_meta
    provenance = {"spec": PRETRAINED if source is None else str(spec), "architecture": meta.get("architecture"),
                  "weights_sha256": meta.get("weights_sha256"),
                  "test_accuracy": (meta.get("metrics") or {}).get("test_accuracy")}
    return model.train(), provenance
