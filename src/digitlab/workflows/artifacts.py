"""Writing a run's diagnostics: JSON for the numbers, PNG for the plots (atomic, via digitlab.files).

A cv folder (`write_cv_outputs`):
    cv.json              model, settings, seeds, protocol, scores, timings, versions (provenance)
    scores.csv/json      one row per fold: accuracy, loss, train time, sizes; mean and std
    folds/               per-fold JSON, history CSV and test-fold probabilities (digitlab.evaluate.cv_store)
    learning_curves.png  every fold's train (blue) and test-fold (orange) curves
    cv_boxplot.png       fold accuracies
    diagnostics.json     pooled out-of-fold confusion matrix, per-class table, worst errors, read-out
    confusion_matrix.png, misclassified.png, per_class.csv

A train folder gets diagnostics.json + the two PNGs + per_class.csv from `write_diagnostics`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitlab.evaluate.diagnostics import diagnose
from digitlab.evaluate.metrics import predict_proba
from digitlab.files import save_figure, write_csv, write_json
from digitlab.provenance import environment
from digitlab.train.device import resolve_device
from digitlab.viz.curves import learning_curves_figure
from digitlab.viz.diagnostics import confusion_matrix_figure, cv_boxplot_figure, misclassified_figure

MISCLASSIFIED_SHOWN = 25


def diagnostic_figures(diag: dict, images: np.ndarray) -> dict:
    """{"confusion_matrix": Figure, "misclassified": Figure} from `diagnose()`'s dict.

    images: the (N, 28, 28) uint8 images that diag's indices point into (test set or CV pool).
    """
    leak = " - LEAKY (reused model)" if diag.get("leaky") else ""
    worst = diag["misclassified"][:MISCLASSIFIED_SHOWN]
    idx = np.array([m["index"] for m in worst], dtype=np.int64)
    return {
        "confusion_matrix": confusion_matrix_figure(
            diag["confusion_matrix"], diag["classes"],
            title=f"Confusion matrix: {diag['source']}{leak}"),
        "misclassified": misclassified_figure(
            images[idx] if len(idx) else np.zeros((0, 28, 28), np.uint8),
            [m["true"] for m in worst], [m["pred"] for m in worst], [m["confidence"] for m in worst],
            diag["classes"], n=MISCLASSIFIED_SHOWN,
            title=f"Most confident mistakes ({diag['errors']:,} errors in {diag['n']:,}){leak}"),
    }


def write_diagnostics(out: str | Path, diag: dict, images: np.ndarray) -> Path:
    """diagnostics.json, per_class.csv, confusion_matrix.png and misclassified.png into `out`."""
    out = Path(out)
    write_json(out / "diagnostics.json", diag)
    write_csv(out / "per_class.csv", ["class", "precision", "recall", "f1", "support"],
              [[r["class"], round(r["precision"], 6), round(r["recall"], 6), round(r["f1"], 6), r["support"]]
               for r in diag["per_class"]])
    for name, fig in diagnostic_figures(diag, images).items():
        save_figure(fig, out / f"{name}.png")
    return out


def testset_diagnostics(model, data, histories=None) -> dict:
    """`diagnose()` of a trained model on the dataset's test set (the `train` run view)."""
    proba = predict_proba(model, data.x_test)
    return diagnose(proba, data.y_test, data.classes, histories,
                    source=f"test set ({len(data.y_test):,} images)")


def cv_diagnostics(result, y, classes=None) -> dict:
    """`diagnose()` of a CVResult's pooled out-of-fold predictions (each image scored by the one
    fold model that never trained on it; leaky for a --reuse-model run)."""
    source = f"pooled out-of-fold predictions ({len(y):,} training images)"
    return diagnose(result.oof_proba(), y, classes, [f.history for f in result.folds],
                    source=source, leaky=result.reuse_model, test_label="test fold")


def write_cv_outputs(result, x: np.ndarray, y: np.ndarray, *, classes=None, dataset: str | None = None,
                     extra: dict | None = None) -> dict:
    """Write the cv folder's summary files and plots into `result.output`; return diagnostics."""
    out = Path(result.output)
    summary = result.summary()
    write_csv(out / "scores.csv", ["fold", "accuracy", "loss", "train_time_s", "n_train", "n_test", "seed"],
              [[f.fold + 1, round(f.accuracy, 6), round(f.loss, 6), round(f.train_time_s, 3), f.n_train,
                f.n_test, result.config.seed + f.fold] for f in result.folds])
    write_json(out / "scores.json", summary)
    diag = cv_diagnostics(result, y, classes)
    write_json(out / "cv.json", {
        "kind": "cv",
        **summary,
        "dataset": dataset,
        "pool_size": int(len(y)),
        "model_kwargs": result.model_kwargs,
        "config": result.config.to_dict(),
        "seeds": {"split": result.split_seed, "train": f"config.seed + fold ({result.config.seed} + k)"},
        "fold_details": [{"fold": f.fold + 1, "accuracy": f.accuracy, "loss": f.loss, "pid": f.pid,
                          "node_id": f.node_id, "train_time_s": f.train_time_s} for f in result.folds],
        "overfitting": diag["overfitting"],
        "environment": environment(str(resolve_device(result.config.runtime.device))),
        **(extra or {}),
    })
    k = len(result.folds)
    leak = " - LEAKY: one model reused across folds" if result.reuse_model else ""
    title = f"{result.model_name}, {k}-fold CV" + (leak if result.reuse_model else ", fresh model per fold")
    save_figure(learning_curves_figure([f.history for f in result.folds], title=title, val_label="test fold"),
                out / "learning_curves.png")
    label = "reused model" if result.reuse_model else "fresh model"
    save_figure(cv_boxplot_figure({label: result.scores.tolist()}, leaky=[label] if result.reuse_model else (),
                                  title=f"{result.model_name}: {k}-fold CV accuracy{leak}"),
                out / "cv_boxplot.png")
    write_diagnostics(out, diag, x)
    return diag
