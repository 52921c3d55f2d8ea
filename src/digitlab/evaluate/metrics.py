"""Test-set metrics. Probabilities come from the model; the scoring itself is scikit-learn's."""

from __future__ import annotations

import numpy as np


def predict_proba(model, x, batch_size: int = 4096, device=None) -> np.ndarray:
    """Softmax probabilities, float32 (N, C), for uint8 (N, 28, 28) images (or float (N, 1, 28, 28))."""
    import torch

    from digitlab.train.loop import to_input_tensor

    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = to_input_tensor(x[i : i + batch_size], device)
            out.append(torch.softmax(model(xb).float(), dim=1).cpu())
    model.train(was_training)
    if not out:
        return np.zeros((0, 10), dtype=np.float32)
    return torch.cat(out).numpy()


def scores_from_proba(proba: np.ndarray, y: np.ndarray, classes=None) -> dict:
    """Loss, accuracy, per-class accuracy, precision/recall/F1 and the confusion matrix. Pure."""
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

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


def evaluate(model, x, y, classes=None, batch_size: int = 4096) -> dict:
    """Score `model` on (x, y): see `scores_from_proba` for the keys."""
    return scores_from_proba(predict_proba(model, x, batch_size), y, classes)
