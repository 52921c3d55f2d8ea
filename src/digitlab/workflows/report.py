"""`build_report(run_dir)`: one self-contained HTML page for a train, cv or reproduce folder.

Images are embedded as base64 PNG; there are no scripts, fonts or links to fetch. Every section is
always present; one whose data the folder lacks says so in a note instead of failing. A train folder's
confusion matrix, misclassified grid and per-class table come from its model on the test set (written
by `reproduce`, or computed here when the dataset can be loaded); a cv folder's come from its pooled
out-of-fold predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from digitlab.errors import ConfigError, DigitlabError
from digitlab.files import read_json, write_text
from digitlab.models.storage import load_model
from digitlab.train.history import History
from digitlab.workflows import report_html as H
from digitlab.workflows import report_sections as S
from digitlab.workflows.artifacts import diagnostic_figures, testset_diagnostics
from digitlab.workflows.report_sections import png_file


@dataclass
class RunFolder:
    """What a run folder holds: kind is "train", "cv" or "reproduce"; the paths point at its parts."""

    root: Path
    kind: str
    train: Path | None = None
    cv: Path | None = None
    cv_leaky: Path | None = None
    meta: dict = field(default_factory=dict)


def inspect_run(run_dir) -> RunFolder:
    root = Path(run_dir)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder: give a run folder written by train, cv or reproduce")
    if (root / "reproduce.json").exists():
        meta = read_json(root / "reproduce.json", what="reproduce summary")
        part = lambda key: root / meta[key] if meta.get(key) and (root / meta[key]).is_dir() else None  # noqa: E731
        return RunFolder(root, "reproduce", part("train"), part("cv"), part("cv_leaky"), meta)
    if (root / "cv.json").exists():
        meta = read_json(root / "cv.json", what="cross-validation summary")
        leaky = bool(meta.get("leaky"))
        return RunFolder(root, "cv", cv=None if leaky else root, cv_leaky=root if leaky else None, meta=meta)
    if (root / "metrics.json").exists():
        return RunFolder(root, "train", train=root, meta=read_json(root / "metrics.json", what="run metrics"))
    raise ConfigError(f"{root} holds no digitlab run (metrics.json, cv.json or reproduce.json): "
                      "give a folder written by `digitlab train`, `cv` or `reproduce`")


def _json(path: Path | None, name: str) -> dict | None:
    if path is None or not (path / name).exists():
        return None
    return read_json(path / name, what=name)


class _Context:
    """The folder plus lazy, failure-tolerant access to the dataset and the train run's diagnostics."""

    def __init__(self, run: RunFolder, data_loader: Callable | None):
        self.run, self.data_loader = run, data_loader
        self.data_error: str | None = None
        self._data, self._diag, self._diag_figs = None, None, {}
        self.train_metrics = _json(run.train, "metrics.json") or {}
        self.cv = _json(run.cv, "cv.json")
        self.cv_leaky = _json(run.cv_leaky, "cv.json")
        self.dataset = (self.train_metrics.get("dataset") or (self.cv or self.cv_leaky or {}).get("dataset")
                        or run.meta.get("dataset") or "mnist")

    def data(self):
        if self._data is None and self.data_error is None:
            if self.data_loader is None:
                self.data_error = "no dataset given to the report"
            else:
                try:
                    self._data = self.data_loader(self.dataset)
                except DigitlabError as exc:
                    self.data_error = str(exc)
        return self._data

    def diagnostics(self) -> tuple[dict | None, Path | None, str]:
        """(diag, folder holding its PNGs or None, why missing). Train run first, then the CV folders."""
        if self._diag is not None:
            return self._diag
        for folder in (self.run.train, self.run.cv, self.run.cv_leaky):
            diag = _json(folder, "diagnostics.json")
            if diag is not None:
                self._diag = (diag, folder, "")
                return self._diag
        self._diag = (None, None, "no model predictions in this folder")
        if self.run.train is not None and self.data() is not None:
            history = History.from_csv(self.run.train / "history.csv") if (self.run.train / "history.csv").exists() else None
            try:
                model = load_model(self.run.train)
            except DigitlabError as exc:
                self._diag = (None, None, f"the model cannot be loaded: {exc}")
                return self._diag
            diag = testset_diagnostics(model, self.data(), history)
            self._diag_figs = {k: H.png_bytes(f) for k, f in diagnostic_figures(diag, self.data().x_test).items()}
            self._diag = (diag, None, "")
        elif self.run.train is not None:
            self._diag = (None, None, f"the test set is needed to score the model ({self.data_error})")
        return self._diag

    def diag_png(self, name: str) -> bytes | None:
        diag, folder, _ = self.diagnostics()
        return png_file(folder, f"{name}.png") or self._diag_figs.get(name)


# The report's sections in page order: (anchor, heading, the function that renders it from the run's context).
SECTIONS = (
    ("overview", "Overview", S.overview),
    ("config", "Configuration", S.config),
    ("data", "Data", S.data_description),
    ("samples", "Sample images", S.samples),
    ("curves", "Learning curves", S.curves),
    ("overfitting", "Overfitting read-out", S.overfitting),
    ("cv", "Cross-validation", S.cross_validation),
    ("confusion", "Confusion matrix", S.confusion),
    ("misclassified", "Misclassified images", S.misclassified),
    ("per-class", "Per-class precision, recall and F1", S.per_class),
    ("timings", "Timings", S.timings),
    ("versions", "Versions and environment", S.versions),
)


def build_report(run_dir, data_loader: Callable | None = None) -> str:
    """The HTML text of the report for `run_dir`.

    data_loader(name) -> Dataset is used only for what the folder does not hold (data description,
    sample grid, test-set diagnostics of a plain train folder); its DigitlabError becomes a note.
    """
    ctx = _Context(inspect_run(run_dir), data_loader)
    sections = [(anchor, title, render(ctx)) for anchor, title, render in SECTIONS]
    kind = {"train": "training run", "cv": "cross-validation run", "reproduce": "the article, reproduced"}
    title = f"digitlab report: {kind[ctx.run.kind]}"
    subtitle = f"{ctx.run.root.resolve()} - dataset {ctx.dataset}"
    footer = "Written by digitlab. Self-contained: every image is embedded; nothing is fetched from the network."
    return H.page(title, subtitle, sections, footer)


def write_report(run_dir, output=None, data_loader: Callable | None = None) -> Path:
    """Write the report (default RUN_DIR/report.html) atomically and return its path."""
    output = Path(output) if output is not None else Path(run_dir) / "report.html"
    if output.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"-o {output}: the report is an HTML file; give a name ending in .html")
    return write_text(output, build_report(run_dir, data_loader))
