"""The article's diagnostics as pure functions: overfitting read-out, per-class table, worst errors.

Where the predictions come from (documented in docs/evaluation.md):
- a `train` run: the final model on the 10,000 test images;
- a `cv` run: the pooled out-of-fold predictions, each training image scored by the one fold model
  that did not train on it (60,000 honest predictions; for a --reuse-model run they leak, and say so).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from digitlab.evaluate.metrics import scores_from_proba

# Thresholds of the plain-words verdict, in accuracy points (train - test).
_GAP_LITTLE = 1.0
_GAP_MILD = 3.0
# val_loss counts as rising when its last value is above its minimum by more than this fraction of
# the minimum AND more than _NOISE_MULTIPLE times its typical epoch-to-epoch change late in training:
# an uptick of 0.001 on a loss of 0.07 that wobbles by 0.001 every epoch is noise, not a reason to stop.
_RISE_TOLERANCE = 0.05
_NOISE_MULTIPLE = 2.0


def mean_curve(histories: Sequence[dict], key: str) -> list[float]:
    """The element-wise mean of `key` over histories, cut to the shortest (early-stopped) one."""
    curves = [list(h.get(key) or []) for h in histories]
    if not curves or not all(curves):
        return []
    length = min(len(c) for c in curves)
    return np.mean([c[:length] for c in curves], axis=0).tolist()


def overfitting_readout(histories, test_label: str = "test") -> dict:
    """Compare the last epoch's train and test scores and the shape of the validation loss.

    histories: one History (dict of lists) or several (CV folds; their mean curves are read).
    Returns {"text", "train_accuracy", "test_accuracy", "gap_points", "best_epoch", "val_loss_rising"}
    where text reads e.g. "train accuracy 0.989, test 0.980: gap 0.9 points (little overfitting);
    validation loss rising since epoch 4". Accuracies in [0, 1]; best_epoch is 1-based.
    """
    if isinstance(histories, dict):
        histories = [histories]
    train_acc = mean_curve(histories, "accuracy")
    test_acc = mean_curve(histories, "val_accuracy")
    val_loss = mean_curve(histories, "val_loss")
    out = {"train_accuracy": train_acc[-1] if train_acc else None,
           "test_accuracy": test_acc[-1] if test_acc else None,
           "gap_points": None, "best_epoch": None, "val_loss_rising": None}
    if not train_acc:
        out["text"] = "no training history: nothing to read"
        return out
    if not test_acc:
        out["text"] = (f"train accuracy {train_acc[-1]:.3f}; no {test_label} scores per epoch, "
                       f"so overfitting cannot be read from the curves")
        return out
    gap = 100.0 * (train_acc[-1] - test_acc[-1])
    out["gap_points"] = gap
    gap = round(gap, 1)  # the verdict follows the number the text shows
    if gap < 0:
        verdict = ("no overfitting: the train score is the running average over each epoch, "
                   f"so it lags the end-of-epoch {test_label} score")
    elif gap < _GAP_LITTLE:
        verdict = "little overfitting"
    elif gap < _GAP_MILD:
        verdict = "mild overfitting"
    else:
        verdict = "strong overfitting: try fewer epochs, dropout, weight decay or augmentation"
    text = (f"train accuracy {train_acc[-1]:.3f}, {test_label} {test_acc[-1]:.3f}: "
            f"gap {gap:.1f} points ({verdict})")
    if val_loss:
        best = int(np.argmin(val_loss))
        rising = best < len(val_loss) - 1 and val_loss[-1] - val_loss[best] > _rise_threshold(val_loss)
        out["best_epoch"], out["val_loss_rising"] = best + 1, bool(rising)
        if rising:
            text += (f"; validation loss rising since epoch {best + 1} "
                     f"({val_loss[best]:.4f} -> {val_loss[-1]:.4f}): stop earlier or regularise")
        else:
            text += f"; validation loss still falling or flat (lowest {min(val_loss):.4f} at epoch {best + 1})"
    out["text"] = text
    return out


def _rise_threshold(val_loss) -> float:
    """How far above its minimum the last val_loss must be to count as rising (see _RISE_TOLERANCE):
    the noise is the median epoch-to-epoch change over the second half, the last change left out."""
    late = np.abs(np.diff(np.asarray(val_loss[len(val_loss) // 2 : -1], dtype=float)))
    noise = float(np.median(late)) if len(late) else 0.0
    return max(_RISE_TOLERANCE * min(val_loss), _NOISE_MULTIPLE * noise)


def per_class_rows(scores: dict) -> list[dict]:
    """Rows {class, precision, recall, f1, support} from `metrics.scores_from_proba`, then a macro
    average and a support-weighted average row."""
    names = list(scores["precision"])
    rows = [{"class": n, "precision": scores["precision"][n], "recall": scores["recall"][n],
             "f1": scores["f1"][n], "support": scores["support"][n]} for n in names]
    total = sum(r["support"] for r in rows)
    for label, weights in (("macro avg", [1.0] * len(rows)), ("weighted avg", [r["support"] for r in rows])):
        wsum = float(sum(weights)) or 1.0
        rows.append({"class": label, "support": total, **{
            k: sum(w * r[k] for w, r in zip(weights, rows[: len(names)])) / wsum
            for k in ("precision", "recall", "f1")}})
    return rows


def format_per_class_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (as sklearn's classification_report)."""
    width = max(12, *(len(str(r["class"])) for r in rows))
    lines = [f"{'class':>{width}}  precision  recall      f1  support"]
    for r in rows:
        if r["class"] == "macro avg":
            lines.append("")
        lines.append(f"{r['class']:>{width}}  {r['precision']:9.4f}  {r['recall']:6.4f}  "
                     f"{r['f1']:6.4f}  {r['support']:7d}")
    return "\n".join(lines)


def worst_misclassified(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the wrongly predicted images, most confident mistake first. int64 (n_errors,).

    proba: float (N, C) softmax; y: int (N,) true labels.
    """
    proba, y = np.asarray(proba), np.asarray(y)
    pred = proba.argmax(1)
    wrong = np.flatnonzero(pred != y)
    confidence = proba[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")].astype(np.int64)


def diagnose(proba: np.ndarray, y: np.ndarray, classes: Sequence[str] | None = None, histories=None,
             *, source: str, leaky: bool = False, top_errors: int = 100, test_label: str = "test") -> dict:
    """Everything the report needs about predictions, as one JSON-ready dict.

    proba: float32 (N, C); y: int64 (N,). `source` says where the predictions come from
    ("test set" or "pooled out-of-fold predictions"); `leaky` marks a --reuse-model run.
    """
    y = np.asarray(y)
    scores = scores_from_proba(proba, y, classes)
    order = worst_misclassified(proba, y)[:top_errors]
    pred = proba.argmax(1)
    names = list(classes) if classes is not None else [str(i) for i in range(proba.shape[1])]
    return {
        "source": source,
        "leaky": leaky,
        "n": scores["n"],
        "accuracy": scores["accuracy"],
        "loss": scores["loss"],
        "errors": scores["errors"],
        "classes": names,
        "confusion_matrix": scores["confusion_matrix"],
        "per_class": per_class_rows(scores),
        "misclassified": [{"index": int(i), "true": int(y[i]), "pred": int(pred[i]),
                           "confidence": float(proba[i, pred[i]])} for i in order],
        "overfitting": overfitting_readout(histories, test_label) if histories else None,
    }
