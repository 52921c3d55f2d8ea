"""Test-set metrics. Probabilities come from the model; the scoring itself is scikit-learn's."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

from digitlab.evaluate.tta import check_policy, views
from digitlab.train.predict import predict_logits


def predict_proba(model, x, batch_size: int | None = None, device=None, tta: str | None = None) -> np.ndarray:
    """Softmax probabilities, float32 (N, C), for uint8 (N, 28, 28) images (or float (N, 1, 28, 28)).

    batch_size: images per forward pass (default: 256 on a CPU, 4,096 on an accelerator).
    tta: a test-time augmentation policy (digitlab.evaluate.tta.POLICIES): the softmax averaged over its
    views of each image. None or "none": the model's own prediction.
    """
    tta = check_policy(tta)
    logits = predict_logits(model, x, batch_size, device, views=lambda xb: views(xb, tta))
    return torch.softmax(logits, dim=2).mean(0).cpu().numpy()


def scores_from_proba(proba: np.ndarray, y: np.ndarray, classes=None) -> dict:
    """Loss, accuracy, per-class accuracy, precision/recall/F1 and the confusion matrix. Pure."""
    y = np.asarray(y)
    labels = np.arange(proba.shape[1])
    pred = proba.argmax(1)
    cm = confusion_matrix(y, pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    names = list(classes) if classes is not None else [str(i) for i in labels]
    return {
        "loss": float(log_loss(y, np.clip(proba, 1e-7, 1.0), labels=labels)),
        "accuracy": float(accuracy_score(y, pred)),
        "n": int(len(y)),
        "errors": int((pred != y).sum()),
        "per_class_accuracy": {names[i]: float(recall[i]) for i in labels},
        "precision": {names[i]: float(precision[i]) for i in labels},
        "recall": {names[i]: float(recall[i]) for i in labels},
        "f1": {names[i]: float(f1[i]) for i in labels},
        "support": {names[i]: int(support[i]) for i in labels},
        "confusion_matrix": cm.tolist(),
    }


def evaluate(model, x, y, classes=None, batch_size: int | None = None, tta: str | None = None) -> dict:
    """Score `model` on (x, y), with an optional TTA policy: see `scores_from_proba` for the keys."""
    return scores_from_proba(predict_proba(model, x, batch_size, tta=tta), y, classes)
