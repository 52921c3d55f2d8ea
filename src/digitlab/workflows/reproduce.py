"""The article end to end: describe the data, plot samples, train the mlp, test it, cross-validate it
(fresh model per fold, and by default the article's leaky protocol beside it), and write the report.

    OUT/reproduce.json   what ran, the article's figures, timings, versions
    OUT/data.json        the data description;   OUT/samples.png  the first 9 training images
    OUT/train/           the training run (test set as validation, as the article) + test diagnostics
    OUT/cv/              5-fold CV, fresh model per fold;   OUT/cv-leaky/  the reused-model CV (unless with_leaky=False)
    OUT/report.html      the self-contained report
"""

from __future__ import annotations

import time
from typing import Callable

from digitlab.data.describe import describe, format_description
from digitlab.evaluate.article import ARTICLE
from digitlab.evaluate.crossval import cross_validate
from digitlab.evaluate.process_executor import auto_executor
from digitlab.files import ensure_dir, save_figure, write_json
from digitlab.provenance import environment
from digitlab.train.config import TrainConfig
from digitlab.train.device import resolve_device
from digitlab.viz.samples import sample_grid_figure
from digitlab.workflows.artifacts import testset_diagnostics, write_cv_outputs, write_diagnostics
from digitlab.workflows.report import write_report
from digitlab.workflows.train_run import train_run

ARTICLE_MODEL = "mlp"


def reproduce_article(data, output, *, with_leaky: bool = True, folds: int = 5, epochs: int = 5,
                      seed: int = 1, device: str = "auto", threads: int | None = None,
                      log: Callable[[str], None] = print, on_fold: Callable | None = None,
                      verbose: bool = True) -> dict:
    """Run every step of the article on `data` (a digitlab Dataset) into `output`; return reproduce.json.

    on_fold(FoldResult, leaky: bool) is called as each CV fold finishes (the CLI prints `> 97.717`).
    """
    out = ensure_dir(output)
    timings: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = round(now - clock, 3)
        clock = now

    desc = describe(data)
    write_json(out / "data.json", desc)
    log(format_description(desc))
    save_figure(sample_grid_figure(data.x_train[:9], data.y_train[:9], n=9, classes=data.classes,
                                   title="The first 9 training images"), out / "samples.png")
    lap("describe and samples")

    config = TrainConfig.from_flat(epochs=epochs, batch_size=128, optimizer="rmsprop", seed=seed, device=device,
                                   threads=threads)
    log(f"\nTraining the article's {ARTICLE_MODEL}: rmsprop, {epochs} epochs, batch 128, test set as validation")
    run = train_run(ARTICLE_MODEL, config, data, out / "train", validate_on_test=True, preset="article",
                    verbose=verbose)
    m = run.metrics
    write_diagnostics(out / "train", testset_diagnostics(run.model, data, run.history), data.x_test)
    log(f"Train loss: {m['train_loss']:.4f} - train accuracy: {m['train_accuracy']:.4f} "
        f"(article: {ARTICLE['train_loss']:.4f} / {ARTICLE['train_accuracy']:.4f})")
    log(f"Test accuracy: {m['test_accuracy']:.4f} (article: {ARTICLE['test_accuracy']:.4f})")
    lap("train and test")

    cv_parts = {"cv": False} | ({"cv-leaky": True} if with_leaky else {})
    cv_results = {}
    for folder, leaky in cv_parts.items():
        log(f"\n{folds}-fold cross-validation, " + ("ONE model reused across folds (the article's protocol, LEAKY)"
                                                     if leaky else "fresh model per fold"))
        result = cross_validate(ARTICLE_MODEL, data.x_train, data.y_train, folds=folds, config=config, seed=seed,
                                reuse_model=leaky, output=out / folder,
                                executor=None if leaky else auto_executor(device),
                                on_result=(lambda r, leaky=leaky: on_fold(r, leaky)) if on_fold else None)
        write_cv_outputs(result, data.x_train, data.y_train, classes=data.classes, dataset=data.name)
        log(f"Accuracy: mean={100 * result.mean:.3f} std={100 * result.std:.3f}, n={folds}"
            + ("  [LEAKY: --reuse-model]" if leaky else ""))
        cv_results[folder] = result
        lap("cross-validation, reused model (leaky)" if leaky else "cross-validation, fresh model per fold")

    summary = {
        "kind": "reproduce",
        "dataset": data.name,
        "train": "train",
        "cv": "cv",
        "cv_leaky": "cv-leaky" if with_leaky else None,
        "article": ARTICLE,
        "ours": {
            "train_accuracy": m["train_accuracy"], "train_loss": m["train_loss"],
            "test_accuracy": m["test_accuracy"], "test_loss": m["test_loss"],
            **{f"{name.replace('-', '_')}_scores": r.scores.tolist() for name, r in cv_results.items()},
        },
        "config": config.to_dict(),
        "data": desc,
        "timings": timings,
        "environment": environment(str(resolve_device(device))),
    }
    timings["total"] = round(time.perf_counter() - started, 3)
    write_json(out / "reproduce.json", summary)
    report = write_report(out, out / "report.html", data_loader=lambda name: data)
    log(f"\nWrote {report} in {time.perf_counter() - clock:.1f}s; whole run {time.perf_counter() - started:.1f}s")
    return summary
