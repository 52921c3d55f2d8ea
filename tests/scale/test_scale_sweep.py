"""Sweeps: parameter parsing, every grid point cross-validated exactly once with the right settings,
random search, the outputs (CSV best first, best.json, PNG) and the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from digitlab.errors import ConfigError
from digitlab.evaluate.crossval import cross_validate
from digitlab.workflows.sweep import parse_params, run_sweep, write_sweep_outputs
from digitlab.train.config import TrainConfig

pytest.importorskip("optuna")  # the sweep's search comes from the 'ray' extra
BASE = TrainConfig.from_flat(epochs=1, batch_size=64, threads=1, device="cpu")


def test_parse_params_types_values_from_the_field_or_model_default():
    params = parse_params(["lr=1e-3,3e-3", "batch-size=64,128", "optimizer=adam,sgd", "keep_best=true,false",
                           "model.dropout=0,0.3", "model.hidden=32,64"], "mlp")
    assert params == {"lr": [1e-3, 3e-3], "batch_size": [64, 128], "optimizer": ["adam", "sgd"],
                      "keep_best": [True, False], "model.dropout": [0.0, 0.3], "model.hidden": [32, 64]}
    assert isinstance(params["batch_size"][0], int) and isinstance(params["model.dropout"][0], float)


@pytest.mark.parametrize("spec,message", [
    (["learning_rate=1"], "unknown sweep parameter 'learning_rate': valid names are .*batch_size.*lr.*model.dropout"),
    (["model.depth=1,2"], "unknown sweep parameter 'model.depth'"),
    (["device=cpu,cuda"], "unknown sweep parameter 'device'"),
    (["augment_options=x"], "unknown sweep parameter 'augment_options'"),  # a mapping: not one value
    (["batch_size=64,big"], "'big' is not a valid int"),
    (["lr"], "expects NAME=V1,V2"),
    (["lr=0.1,0.1"], "lists a value twice"),
    (["lr=0.1", "lr=0.2"], "given twice"),
    ([], "at least one --param"),
])
def test_parse_params_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(spec, "mlp")


def test_an_invalid_grid_value_fails_before_training():
    with pytest.raises(ConfigError, match="is invalid: learning rate must be > 0"):
        run_sweep("mlp", np.zeros((10, 28, 28), np.uint8), np.zeros(10, np.int64),
                  params={"lr": [0.1, -1.0]}, base_config=BASE, folds=2)


@pytest.fixture
def small(digits):
    x, y = digits
    return x[:600], y[:600]


def test_grid_runs_every_setting_once_with_its_own_settings(small):
    x, y = small
    params = {"lr": [1e-3, 3e-3], "model.hidden": [16, 32]}
    seen = []
    result = run_sweep("mlp", x, y, params=params, base_config=BASE, folds=2, search="grid", on_trial=seen.append)
    combos = sorted((t["params"]["lr"], t["params"]["model.hidden"]) for t in result.trials)
    assert combos == [(1e-3, 16), (1e-3, 32), (3e-3, 16), (3e-3, 32)] and len(seen) == 4
    # A trial's score is exactly the CV of its settings.
    trial = result.trials[2]
    cv = cross_validate("mlp", x, y, folds=2, config=BASE.replace(lr=trial["params"]["lr"]),
                        model_kwargs={"hidden": trial["params"]["model.hidden"]}, seed=1)
    assert trial["scores"] == cv.scores.tolist()
    best = max(result.trials, key=lambda t: t["mean"])
    assert result.best["mean"] == best["mean"]
    config, model_kwargs = result.best_settings()
    assert config.optimizer.lr == result.best["params"]["lr"] and model_kwargs == {"hidden": result.best["params"]["model.hidden"]}


def test_random_search_samples_the_given_values(small):
    x, y = small
    result = run_sweep("mlp", x, y, params={"batch_size": [32, 64, 128], "model.hidden": [8, 16]},
                       base_config=BASE, folds=2, search="random", trials=3, sampler_seed=3)
    assert len(result.trials) == 3
    for t in result.trials:
        assert t["params"]["batch_size"] in (32, 64, 128) and t["params"]["model.hidden"] in (8, 16)


def test_outputs_are_ranked_and_reusable(small, tmp_path):
    x, y = small
    result = run_sweep("mlp", x, y, params={"lr": [1e-3, 1e-2, 5e-2]}, base_config=BASE, folds=2)
    out = write_sweep_outputs(result, tmp_path / "sweep")
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    means = [float(r["mean_accuracy"]) for r in rows]
    assert means == sorted(means, reverse=True) and len(rows) == 3
    best = json.loads((out / "best.json").read_text())
    assert best["params"] == result.best["params"] and best["mean_accuracy"] == pytest.approx(means[0], abs=1e-6)
    assert TrainConfig.from_dict(best["config"]).optimizer.lr == best["params"]["lr"]  # ready for `digitlab train`
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_sweep_local(idx_data_dir, tmp_path, capsys):
    from digitlab.cli.main import main

    code = main(["sweep", "--model", "mlp", "--param", "lr=1e-3,3e-3", "--param", "model.hidden=16,32",
                 "--folds", "2", "--epochs", "1", "--threads", "1", "--subset", "600", "--no-download",
                 "--executor", "local",  # auto's choice depends on the cores torch sees: pin it
                 "--data-dir", str(idx_data_dir), "-o", str(tmp_path / "sw"), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("trial ") >= 4 and "best first" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials"] == 4 and summary["executor"] == "local"
    assert {p.name for p in (tmp_path / "sw").iterdir()} == {"sweep.csv", "best.json", "sweep.png"}


def test_cli_sweep_unknown_param_is_one_line(idx_data_dir, tmp_path, capsys):
    from digitlab.cli.main import main

    code = main(["sweep", "--param", "momentun=0.9", "--data-dir", str(idx_data_dir), "-o", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown sweep parameter 'momentun': valid names are" in err[0]
