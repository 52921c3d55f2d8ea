"""The diagnostics read-outs: overfitting in plain words, per-class table, worst mistakes first."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import classification_report

from digitlab.evaluate.diagnostics import (
    diagnose, format_per_class_table, mean_curve, overfitting_readout, per_class_rows, worst_misclassified,
)
from digitlab.evaluate.metrics import scores_from_proba


def _history(acc, val_acc, val_loss):
    return {"loss": [0.5] * len(acc), "accuracy": acc, "val_accuracy": val_acc, "val_loss": val_loss}


def test_readout_reports_gap_and_rising_validation_loss():
    h = _history([0.90, 0.95, 0.97, 0.985, 0.989], [0.95, 0.97, 0.975, 0.979, 0.980],
                 [0.10, 0.080, 0.070, 0.069, 0.075])
    r = overfitting_readout(h)
    assert r["gap_points"] == pytest.approx(0.9)
    assert r["best_epoch"] == 4 and r["val_loss_rising"] is True
    assert r["text"].startswith("train accuracy 0.989, test 0.980: gap 0.9 points (little overfitting)")
    assert "validation loss rising since epoch 4" in r["text"]


def test_readout_verdicts():
    falling = [0.3, 0.2, 0.1]
    assert "strong overfitting" in overfitting_readout(_history([0.9, 0.99, 1.0], [0.9, 0.93, 0.95], falling))["text"]
    assert "mild overfitting" in overfitting_readout(_history([0.9, 0.95, 0.98], [0.9, 0.95, 0.965], falling))["text"]
    lagging = overfitting_readout(_history([0.9, 0.95, 0.96], [0.95, 0.96, 0.97], falling))
    assert lagging["gap_points"] < 0 and "no overfitting" in lagging["text"]
    assert "still falling" in lagging["text"] and lagging["val_loss_rising"] is False
    no_val = overfitting_readout({"loss": [1.0], "accuracy": [0.5]})
    assert no_val["gap_points"] is None and "cannot be read" in no_val["text"]


def test_readout_of_folds_reads_the_mean_curves_cut_to_the_shortest():
    a = _history([0.9, 0.96, 0.99], [0.9, 0.95, 0.96], [0.3, 0.2, 0.25])
    b = _history([0.92, 0.98], [0.92, 0.97], [0.28, 0.18])  # stopped early
    assert mean_curve([a, b], "accuracy") == pytest.approx([0.91, 0.97])
    r = overfitting_readout([a, b], test_label="test fold")
    assert r["train_accuracy"] == pytest.approx(0.97) and r["test_accuracy"] == pytest.approx(0.96)
    assert "test fold 0.960" in r["text"]


def _proba(y, flip, classes=10, seed=0):
    """Confident correct predictions, except at `flip` (wrong class 0/1 with rising confidence)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.01, (len(y), classes)).astype(np.float32)
    p[np.arange(len(y)), y] = 0.9
    for rank, i in enumerate(flip):
        wrong = (y[i] + 1) % classes
        p[i, y[i]] = 0.05
        p[i, wrong] = 0.5 + 0.1 * rank
    return p / p.sum(1, keepdims=True)


def test_worst_misclassified_orders_by_confidence():
    y = np.arange(20) % 10
    proba = _proba(y, flip=[3, 11, 7])
    order = worst_misclassified(proba, y)
    assert order.tolist() == [7, 11, 3]  # the last flipped has the highest wrong confidence
    assert worst_misclassified(_proba(y, flip=[]), y).tolist() == []


def test_per_class_rows_match_sklearn_classification_report():
    y = np.arange(200) % 10
    proba = _proba(y, flip=[1, 5, 9, 33, 101])
    rows = per_class_rows(scores_from_proba(proba, y))
    ref = classification_report(y, proba.argmax(1), output_dict=True, zero_division=0)
    by_name = {r["class"]: r for r in rows}
    for name in [str(i) for i in range(10)] + ["macro avg", "weighted avg"]:
        for key in ("precision", "recall"):
            assert by_name[name][key] == pytest.approx(ref[name][key])
        assert by_name[name]["f1"] == pytest.approx(ref[name]["f1-score"])
        assert by_name[name]["support"] == ref[name]["support"]
    text = format_per_class_table(rows)
    assert text.splitlines()[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert "macro avg" in text and len(text.splitlines()) == 1 + 10 + 1 + 2


def test_diagnose_bundles_everything_json_ready():
    import json

    y = np.arange(100) % 10
    proba = _proba(y, flip=[2, 4])
    d = diagnose(proba, y, [str(i) for i in range(10)], [_history([0.9], [0.9], [0.3])],
                 source="test set", top_errors=1)
    assert d["errors"] == 2 and d["n"] == 100 and d["accuracy"] == pytest.approx(0.98)
    assert np.array(d["confusion_matrix"]).sum() == 100
    assert len(d["misclassified"]) == 1 and d["misclassified"][0]["index"] == 4
    assert d["misclassified"][0]["true"] == 4 and d["misclassified"][0]["pred"] == 5
    assert d["overfitting"]["text"].startswith("train accuracy 0.900")
    json.dumps(d)


def test_readout_does_not_call_a_small_uptick_within_noise_rising():
    # A 0.0013 uptick on a loss of 0.06 that moves by about that much every epoch: flat, no "stop earlier".
    val_loss = [0.20, 0.11, 0.075, 0.0612, 0.0605, 0.0618, 0.0600, 0.0613]
    r = overfitting_readout(_history([0.9 + 0.01 * i for i in range(8)], [0.97] * 8, val_loss))
    assert r["val_loss_rising"] is False and "stop earlier" not in r["text"]
    # The same curve climbing well past its noise does count.
    climbing = overfitting_readout(_history([0.9 + 0.01 * i for i in range(8)], [0.97] * 8, val_loss[:-1] + [0.085]))
    assert climbing["val_loss_rising"] is True and climbing["best_epoch"] == 7
