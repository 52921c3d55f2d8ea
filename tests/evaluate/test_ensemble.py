"""Ensembles: the softmax average, member/ensemble scores, and the `digitlab ensemble` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from digitlab.cli.main import main
from digitlab.data.idx import encode_idx
from digitlab.errors import ConfigError
from digitlab.evaluate.ensemble import average_proba, score_ensemble
from digitlab.models.registry import build_model
from digitlab.models.storage import load_model, save_model
from digitlab.train.config import TrainConfig
from digitlab.train.device import seed_everything
from digitlab.train.loop import fit

QUICK = TrainConfig.from_flat(epochs=1, batch_size=32, optimizer="sgd", lr=0.05, schedule="onecycle", device="cpu", threads=1)


@pytest.fixture
def idx_dir(tmp_path, tiny_digits):
    """tiny_digits as the four MNIST IDX files: 500 training and 100 test images."""
    x, y = tiny_digits
    folder = tmp_path / "data"
    folder.mkdir()
    for name, array in (("train-images-idx3-ubyte", x[:500]), ("train-labels-idx1-ubyte", y[:500].astype(np.uint8)),
                        ("t10k-images-idx3-ubyte", x[500:]), ("t10k-labels-idx1-ubyte", y[500:].astype(np.uint8))):
        (folder / name).write_bytes(encode_idx(array))
    return folder


def test_average_proba_is_the_mean_and_checks_shapes():
    a = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    b = np.array([[0.3, 0.7], [0.4, 0.6]], dtype=np.float32)
    np.testing.assert_allclose(average_proba([a, b]), [[0.6, 0.4], [0.3, 0.7]], rtol=1e-6)
    with pytest.raises(ConfigError, match="disagree on the output shape"):
        average_proba([a, np.ones((2, 3), dtype=np.float32)])
    with pytest.raises(ConfigError, match="at least one member"):
        average_proba([])


class Fixed(torch.nn.Module):
    """A 'model' whose logits are given: lets the test pick exactly which images each member gets wrong."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.as_tensor(logits, dtype=torch.float32), requires_grad=False)

    def forward(self, x):
        return self.logits[: len(x)]


def test_averaging_outvotes_each_members_own_mistakes():
    # Three members, each wrong (but unsure) on a different image; the average is right on all three.
    y = np.array([0, 1, 2])
    confident, unsure_wrong = 4.0, 1.0
    members = []
    for wrong in range(3):
        logits = np.zeros((3, 3))
        for i in range(3):
            logits[i, y[i]] = confident if i != wrong else 0.0
            if i == wrong:
                logits[i, (y[i] + 1) % 3] = unsure_wrong
        members.append(Fixed(logits))
    result = score_ensemble(members, np.zeros((3, 28, 28), np.uint8), y, classes=["a", "b", "c"])
    assert [m["test_accuracy"] for m in result["members"]] == pytest.approx([2 / 3] * 3)
    assert result["ensemble"]["accuracy"] == 1.0
    assert result["gain_over_mean"] == pytest.approx(1 / 3)


def _trained_run(tmp_path, tiny_digits, seed):
    x, y = tiny_digits
    seed_everything(seed)
    model = build_model("fast", widths=[8, 16, 16])
    fit(model, x[:500], y[:500], QUICK.replace(seed=seed), verbose=False)
    return save_model(model, tmp_path / f"run-{seed}", metrics={"dataset": "mnist"})


def test_ensemble_of_saved_runs_via_the_cli(tmp_path, tiny_digits, idx_dir, capsys):
    runs = [_trained_run(tmp_path, tiny_digits, s) for s in (0, 1, 2)]
    out = tmp_path / "ens"
    assert main(["ensemble", *map(str, runs), "-o", str(out), "--data-dir", str(idx_dir), "--device", "cpu",
                 "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((out / "ensemble.json").read_text())
    assert saved["n_members"] == figures["n_members"] == 3
    # Each member's score is recomputed from its weights, and matches an independent evaluation.
    x, y = tiny_digits
    for run, member in zip(runs, saved["members"]):
        model = load_model(run)
        acc = float((model(torch.from_numpy(x[500:]).float().div(255).unsqueeze(1)).argmax(1).numpy() == y[500:]).mean())
        assert member["test_accuracy"] == pytest.approx(acc)
    assert saved["ensemble"]["accuracy"] == pytest.approx(figures["ensemble_accuracy"])
    assert saved["ensemble"]["accuracy"] >= saved["mean_member_accuracy"] - 0.02
    assert saved["dataset"] == "mnist" and "environment" in saved


def test_ensemble_train_trains_n_seeds_then_combines_them(tmp_path, idx_dir, capsys):
    out = tmp_path / "ens"
    code = main(["ensemble", "--train", "fast", "--seeds", "2", "--epochs", "1", "--warmup", "0.2",
                 "--model-arg", "widths=[8,16,16]", "--threads", "1", "--device", "cpu",
                 "--data-dir", str(idx_dir), "-o", str(out)])
    assert code == 0
    saved = json.loads((out / "ensemble.json").read_text())
    assert [m["seed"] for m in saved["members"]] == [0, 1]
    assert all((out / f"seed-{k}" / "model.safetensors").exists() for k in (0, 1))
    assert all(m["preset"] == "fast" for m in saved["members"])
    # different seeds, different members
    assert not torch.equal(load_model(out / "seed-0").dense.weight, load_model(out / "seed-1").dense.weight)


@pytest.mark.parametrize("argv,match", [
    (["ensemble"], "give run folders to combine, or --train"),
    (["ensemble", "a", "b", "--train", "fast"], "not both"),
    (["ensemble", "a", "b", "--epochs", "3"], "only apply with --train"),
    (["ensemble", "a", "b", "--augment-arg", "rotate=3"], "(--augment-arg) only apply with --train"),
    (["ensemble", "--train", "fast", "--seeds", "1"], "at least 2 seeds"),
    (["ensemble", "--train", "nope"], "unknown preset 'nope'"),
    (["ensemble", "a", "b", "--tta", "flip"], "unknown TTA policy 'flip'"),
])
def test_bad_ensemble_commands_are_one_line_errors(argv, match, capsys, idx_dir):
    assert main([*argv, "--data-dir", str(idx_dir)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert match in err


def test_ensemble_with_tta_scores_every_member_on_the_policy_s_views(tmp_path, tiny_digits, idx_dir, capsys):
    from digitlab.evaluate.metrics import predict_proba

    runs = [_trained_run(tmp_path, tiny_digits, s) for s in (0, 1)]
    out = tmp_path / "ens"
    assert main(["ensemble", *map(str, runs), "-o", str(out), "--data-dir", str(idx_dir), "--device", "cpu",
                 "--tta", "shift4", "--json"]) == 0
    printed = capsys.readouterr().out
    assert "with TTA shift4" in printed and json.loads(printed.strip().splitlines()[-1])["tta"] == "shift4"
    saved = json.loads((out / "ensemble.json").read_text())
    x, y = tiny_digits
    expected = [float((predict_proba(load_model(r), x[500:], tta="shift4").argmax(1) == y[500:]).mean()) for r in runs]
    assert saved["tta"] == "shift4" and [m["test_accuracy"] for m in saved["members"]] == pytest.approx(expected)


def test_one_run_or_mismatched_classes_are_rejected(tmp_path, tiny_digits, idx_dir, capsys):
    run = _trained_run(tmp_path, tiny_digits, 0)
    assert main(["ensemble", str(run), "--data-dir", str(idx_dir)]) != 0
    assert "at least 2 runs" in capsys.readouterr().err
    seed_everything(0)
    other = save_model(build_model("fast", widths=[8, 16, 16], num_classes=3), tmp_path / "three",
                       classes=("a", "b", "c"))
    assert main(["ensemble", str(run), str(other), "--data-dir", str(idx_dir)]) != 0
    assert "different classes" in capsys.readouterr().err


def test_runs_trained_on_another_dataset_are_rejected(tmp_path, tiny_digits, idx_dir, capsys):
    runs = [_trained_run(tmp_path, tiny_digits, s) for s in (0, 1)]
    meta = json.loads((runs[1] / "model.json").read_text())
    meta["metrics"]["dataset"] = "fashion-mnist"
    (runs[1] / "model.json").write_text(json.dumps(meta))
    assert main(["ensemble", *map(str, runs), "--data-dir", str(idx_dir), "-o", str(tmp_path / "e")]) != 0
    assert "trained on fashion-mnist, not mnist: pass --dataset fashion-mnist" in capsys.readouterr().err
