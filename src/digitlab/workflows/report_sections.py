"""The report's sections. Each takes the report context and returns inner HTML; missing data -> a note."""

from __future__ import annotations

from digitlab.data.describe import describe
from digitlab.evaluate.article import ARTICLE, WHY_FRESH_IS_LOWER
from digitlab.evaluate.diagnostics import overfitting_readout
from digitlab.train.config import FLAT_NAMES, TrainConfig, flatten_settings
from digitlab.train.history import History
from digitlab.viz.diagnostics import cv_boxplot_figure
from digitlab.viz.samples import sample_grid_figure
from digitlab.workflows import report_html as H

LEAK_TEXT = ("LEAKY: one network was trained on across the folds (the article's protocol), so from fold 2 on it "
             "is scored on images it has already trained on. These scores are not estimates of accuracy.")


def png_file(folder, name: str) -> bytes | None:
    """The bytes of folder/name, or None when the folder or the file is missing."""
    if folder is None or not (folder / name).is_file():
        return None
    return (folder / name).read_bytes()


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _f4(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def _tiles(ctx) -> str:
    m, items = ctx.train_metrics, []
    if m.get("test_accuracy") is not None:
        items.append(("test accuracy (10,000 images)" if ctx.run.kind == "reproduce" else "test accuracy",
                      _pct(m["test_accuracy"]), ""))
    if m.get("train_accuracy") is not None:
        items.append(("train accuracy (last epoch)", _pct(m["train_accuracy"]), ""))
    if ctx.cv:
        items.append((f"{ctx.cv['folds']}-fold CV, fresh model per fold",
                      f"{100 * ctx.cv['mean']:.2f} ± {100 * ctx.cv['std']:.2f}%", "good"))
    if ctx.cv_leaky:
        items.append((f"{ctx.cv_leaky['folds']}-fold CV, reused model: LEAKY",
                      f"{100 * ctx.cv_leaky['mean']:.2f} ± {100 * ctx.cv_leaky['std']:.2f}%", "bad"))
    return H.tiles(items) if items else ""


def overview(ctx) -> str:
    m, parts = ctx.train_metrics, [_tiles(ctx)]
    if ctx.run.kind == "reproduce":
        a = ARTICLE
        parts.append(f"<p><b>The article:</b> {H.esc(a['setup'])}.</p><h3>The article's figures beside ours</h3>")
        fresh = ctx.cv["scores"] if ctx.cv else None
        leaky = ctx.cv_leaky["scores"] if ctx.cv_leaky else None
        folds = lambda s: ", ".join(f"{100 * v:.2f}" for v in s)  # noqa: E731
        k = (ctx.cv or ctx.cv_leaky or {}).get("folds", 5)
        rows = [
            ["Train accuracy (last epoch)", _pct(a["train_accuracy"]), _pct(m.get("train_accuracy"))],
            ["Train loss (last epoch)", f"{a['train_loss']:.4f}", _f4(m.get("train_loss"))],
            ["Test accuracy (10,000 images)", _pct(a["test_accuracy"]), _pct(m.get("test_accuracy"))],
            [H.Raw(f"{k}-fold CV, one model reused {H.badge('leaky')}"),
             f"{a['cv_pattern']} (Keras on this machine: {', '.join(f'{v:.2f}' for v in a['keras_leaky_folds'])})",
             folds(leaky) if leaky else "not run (left out with --no-with-leaky)"],
            [H.Raw(f"{k}-fold CV, fresh model per fold {H.badge('correct', 'good')}"),
             f"not in the article (Keras on this machine: {', '.join(f'{v:.2f}' for v in a['keras_fresh_folds'])})",
             f"{folds(fresh)} (mean {100 * ctx.cv['mean']:.2f}, std {100 * ctx.cv['std']:.2f})" if fresh else "-"],
        ]
        parts.append(H.table(["", "Article (Keras)", "digitlab"], rows))
        parts.append(H.callout(f"<b>Why the fresh-model scores are lower, and correct.</b> {H.esc(WHY_FRESH_IS_LOWER)}",
                               "good"))
    elif ctx.run.kind == "train":
        parts.append(H.table(["", "value"], [
            ["Model", m.get("model", "-")], ["Epochs", m.get("epochs_run", "-")],
            ["Train accuracy / loss (last epoch)", f"{_pct(m.get('train_accuracy'))} / {_f4(m.get('train_loss'))}"],
            ["Test accuracy / loss", f"{_pct(m.get('test_accuracy'))} / {_f4(m.get('test_loss'))}"],
        ]))
    else:
        cv = ctx.cv or ctx.cv_leaky
        parts.append(H.table(["", "value"], [
            ["Model", cv["model"]], ["Protocol", cv["protocol"]],
            ["Folds", f"{cv['folds']} ({'stratified' if cv.get('stratified') else 'KFold'}, split seed {cv['split_seed']})"],
            ["Fold accuracies (%)", ", ".join(f"{100 * s:.3f}" for s in cv["scores"])],
            ["Accuracy", f"mean={100 * cv['mean']:.3f} std={100 * cv['std']:.3f}, n={cv['folds']}"],
        ]))
        if ctx.cv_leaky:
            parts.append(H.callout(H.esc(LEAK_TEXT), "bad"))
    return "".join(parts)


def config(ctx) -> str:
    cv = ctx.cv or ctx.cv_leaky
    conf = ctx.train_metrics.get("config") or (cv or {}).get("config")
    if not conf:
        return H.note("No training configuration recorded in this folder.")
    rows = [["model", ctx.train_metrics.get("model") or cv["model"]]]
    if cv:
        rows += [["model arguments", cv.get("model_kwargs") or "defaults"], ["CV folds", cv["folds"]],
                 ["CV split", f"{'StratifiedKFold' if cv.get('stratified') else 'KFold'}(shuffle=True, "
                              f"random_state={cv['split_seed']})"],
                 ["CV seeds", cv.get("seeds", {}).get("train", "-")],
                 ["CV protocol", " and ".join(c["protocol"] for c in (ctx.cv, ctx.cv_leaky) if c)]]
        if cv.get("subset"):
            rows.append(["CV pool", f"first {cv['subset']:,} training images"])
    settings = [[k, "default" if v is None else v] for k, v in settings_used(conf).items()]
    note = H.note("Every other training setting is at its default (see `digitlab train --help`).")
    return H.columns(H.table(["run", "value"], rows), H.table(["training setting", "value"], settings) + note)


ALWAYS_SHOWN = ("epochs", "batch_size", "optimizer", "lr", "seed")  # flat names (TrainConfig.from_flat)


def settings_used(conf: dict) -> dict:
    """The recorded settings worth a row: the few that define any run, and those not at their default.

    conf: a saved TrainConfig, nested or flat. Rows are named as model.json nests them ("optimizer.lr");
    a setting TrainConfig no longer has is shown as recorded.
    """
    defaults = TrainConfig().to_flat()
    missing = object()
    rows = {}
    for name, value in flatten_settings(conf).items():
        if name in ALWAYS_SHOWN or defaults.get(name, missing) != value:
            group, key = FLAT_NAMES.get(name, (None, name))
            rows[name if group is None else f"{group}.{key}"] = value
    return rows


def data_description(ctx) -> str:
    desc = ctx.run.meta.get("data")
    if desc is None and ctx.data() is not None:
        desc = describe(ctx.data())
    if desc is None:
        return H.note(f"Left out: the dataset could not be loaded ({ctx.data_error}).")
    rows = []
    for split in ("train", "test"):
        s, p = desc[split], desc[split]["pixels"]
        rows.append([split, f"{'×'.join(map(str, s['images_shape']))} {s['images_dtype']}", f"{s['count']:,}",
                     f"{s['images_nbytes'] / 1e6:.1f} MB", f"{p['min']}-{p['max']}", f"{p['mean']:.2f}",
                     f"{p['std']:.2f}"])
    shapes = H.table(["split", "images", "labels", "size", "pixels", "mean", "std"], rows,
                     numeric=(2, 3, 5, 6))
    counts = H.table(["class", "train", "test"],
                     [[c, f"{a:,}", f"{b:,}"] for c, a, b in zip(desc["classes"], desc["train"]["class_counts"],
                                                                  desc["test"]["class_counts"])],
                     numeric=(1, 2))
    return (f"<p>{H.esc(desc['name'])}: {desc['num_classes']} classes, read from <code>{H.esc(desc['source'])}"
            f"</code>. Pixels are 0 (background) to 255 (ink).</p>"
            + H.columns(f"<h3>Splits</h3>{shapes}", f"<h3>Images per class</h3>{counts}"))


def samples(ctx) -> str:
    png = png_file(ctx.run.root, "samples.png")
    if png is None and ctx.data() is not None:
        data = ctx.data()
        png = H.png_bytes(sample_grid_figure(data.x_train[:9], data.y_train[:9], n=9, classes=data.classes,
                                             title="The first 9 training images"))
    if png is None:
        return H.note(f"Left out: the dataset could not be loaded ({ctx.data_error}).")
    return H.img(png, "sample training images", "The first training images with their labels, as in the article.", 460)


def curves(ctx) -> str:
    parts = []
    png = png_file(ctx.run.train, "learning_curves.png")
    if png:
        val = "the test set" if ctx.run.kind == "reproduce" else "the validation data"
        parts.append(H.img(png, "learning curves of the training run",
                           f"Training run: train (blue) and {val} (orange) after every epoch."))
    for folder, leaky in ((ctx.run.cv, False), (ctx.run.cv_leaky, True)):
        png = png_file(folder, "learning_curves.png")
        if png:
            parts.append(H.img(png, "learning curves of every CV fold",
                               "Every fold overlaid: train (blue) and its test fold (orange)."
                               + (" LEAKY: the reused model has already seen the test folds." if leaky else "")))
    return "".join(parts) or H.note("No learning curves in this folder.")


def overfitting(ctx) -> str:
    parts = []
    if ctx.run.train is not None and (ctx.run.train / "history.csv").exists():
        readout = overfitting_readout(History.from_csv(ctx.run.train / "history.csv"))
        parts.append(H.callout(f"<b>Training run:</b> {H.esc(readout['text'])}"))
    for cv, name in ((ctx.cv, "Cross-validation (mean over folds)"), (ctx.cv_leaky, "Reused-model CV (leaky)")):
        if cv and cv.get("overfitting"):
            parts.append(H.callout(f"<b>{name}:</b> {H.esc(cv['overfitting']['text'])}"))
    return "".join(parts) or H.note("No training history in this folder.")


def cross_validation(ctx) -> str:
    runs = [(label, cv) for label, cv in (("fresh model", ctx.cv), ("reused model", ctx.cv_leaky)) if cv]
    if not runs:
        return H.note("Left out: this folder holds no cross-validation (run `digitlab cv`, or reproduce).")

    k = max(cv["folds"] for _, cv in runs)
    header = ["fold"] + [f"{label} (%)" for label, _ in runs]
    rows = [[i + 1] + [f"{100 * cv['scores'][i]:.3f}" if i < len(cv["scores"]) else "-" for _, cv in runs]
            for i in range(k)]
    rows.append(["mean"] + [f"{100 * cv['mean']:.3f}" for _, cv in runs])
    rows.append(["std (ddof=0)"] + [f"{100 * cv['std']:.3f}" for _, cv in runs])
    table = H.table(header, rows, numeric=range(1, len(header)), row_classes=[""] * k + ["total", ""])
    leaky = [label for label, cv in runs if cv.get("leaky")]
    fig = cv_boxplot_figure({label: cv["scores"] for label, cv in runs}, leaky=leaky,
                            title=f"{runs[0][1]['model']}: {k}-fold CV accuracy")
    parts = [f'<div class="grid"><div>{table}</div><div>{H.img(H.png_bytes(fig), "box plot of fold accuracies")}</div></div>']
    if leaky:
        parts.append(H.callout(H.esc(LEAK_TEXT), "bad"))
    return "".join(parts)


def _diag_section(ctx, name: str, alt: str, caption: str) -> str:
    diag, _, why = ctx.diagnostics()
    if diag is None:
        return H.note(f"Left out: {why}.")
    png = ctx.diag_png(name)
    if png is None:
        return H.note(f"Left out: {name}.png is missing and cannot be redrawn without the images.")
    leak = f" {H.badge('leaky: reused model')}" if diag.get("leaky") else ""
    return f"<p>Predictions: {H.esc(diag['source'])}{leak}.</p>" + H.img(png, alt, caption)


def confusion(ctx) -> str:
    return _diag_section(ctx, "confusion_matrix", "confusion matrix",
                         "Counts in each cell; colour = share of the true class (rows sum to 1).")


def misclassified(ctx) -> str:
    return _diag_section(ctx, "misclassified", "misclassified images",
                         "The most confident mistakes first, with the true label, the prediction and its probability.")


def per_class(ctx) -> str:
    diag, _, why = ctx.diagnostics()
    if diag is None:
        return H.note(f"Left out: {why}.")
    rows = [[r["class"], f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", f"{r['support']:,}"]
            for r in diag["per_class"]]
    classes = [""] * (len(rows) - 2) + ["total", "total"]
    return (f"<p>Predictions: {H.esc(diag['source'])}; accuracy {_pct(diag['accuracy'])}, "
            f"{diag['errors']:,} errors in {diag['n']:,}.</p>"
            + H.table(["class", "precision", "recall", "F1", "support"], rows, numeric=(1, 2, 3, 4),
                      row_classes=classes))


def timings(ctx) -> str:
    rows = []
    m = ctx.train_metrics
    if m.get("train_time_s") is not None:
        rows.append(["training", f"{m['train_time_s']:.1f} s", f"{m.get('epochs_run', '?')} epochs"])
    for label, cv in (("cross-validation", ctx.cv), ("cross-validation, reused model", ctx.cv_leaky)):
        if cv:
            per_fold = ", ".join(f"{t:.1f}" for t in cv["fold_train_time_s"])
            rows.append([label, f"{cv['wall_time_s']:.1f} s", f"per fold: {per_fold} s ({cv['executor']} executor)"])
    for step, seconds in (ctx.run.meta.get("timings") or {}).items():
        rows.append([f"reproduce: {step}", f"{seconds:.1f} s", ""])
    return H.table(["step", "time", "detail"], rows, numeric=(1,)) if rows else H.note("No timings recorded.")


def versions(ctx) -> str:
    env = (ctx.run.meta.get("environment") or ctx.train_metrics.get("environment")
           or (ctx.cv or ctx.cv_leaky or {}).get("environment"))
    if not env:
        return H.note("No environment recorded in this folder.")
    machine = [[k, v] for k, v in env.items() if k != "versions"]
    packages = [[name, version] for name, version in (env.get("versions") or {}).items()]
    return H.columns(H.table(["machine", "value"], machine), H.table(["package", "version"], packages))
