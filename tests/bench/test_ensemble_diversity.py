"""bench/ensemble_diversity.py: three ensembles scored on the same held-out images (quick mode, real MNIST)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

BENCH_SCRIPT = "ensemble_diversity"


def test_groups_are_scored_on_one_validation_split(bench, mnist, capsys):
    data_dir = str(Path(os.environ["DIGITLAB_DATA_DIR"]) / "mnist")
    assert bench.main(["--quick", "--data-dir", data_dir, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["n_val"] == 1000 and set(figures["groups"]) == {"seeds", "widths", "recipes"}
    for row in figures["groups"].values():
        assert len(row["member_errors"]) == 2
        assert row["shared_by_all"] <= min(row["member_errors"])
        assert 0 <= row["ensemble_errors"] <= 1000
        assert row["ensemble_accuracy"] == pytest.approx(1 - row["ensemble_errors"] / 1000)
    # The seeds' ensemble is the baseline the others are compared with, in the same run.
    widths = figures["groups"]["widths"]
    assert widths["vs_seeds"] == widths["ensemble_errors"] - figures["groups"]["seeds"]["ensemble_errors"]
    # The split is the one `--val-split 5000 --seed 0` carves (here from the first 6,000 images): never test images.
    x_tr, y_tr, x_val, y_val = bench.split(mnist, quick=True)
    assert len(x_tr) == 5000 and len(x_val) == 1000 and len(y_val) == 1000


def test_the_widths_group_varies_only_the_net_s_widths(bench):
    plan = bench.members("fast-99.5", "widths")
    assert [m for m, _ in plan] == [{"widths": [16, 32, 96]}, {"widths": [24, 48, 96]}, {"widths": [32, 64, 128]},
                                    {"widths": [16, 48, 128]}, {"widths": [24, 32, 64]}]
    assert all(changes == {} for _, changes in plan)


@pytest.mark.parametrize("flags, message", [
    (["--groups", "seeds,kernels"], "unknown group 'kernels'"),
    (["--groups", " , "], "--groups is empty"),
    (["--tta", "shift4,flip"], "unknown TTA policy 'flip'"),
    (["--save-models"], "give --save DIR too"),
])
def test_bad_settings_are_one_line_and_exit_2_before_training(bench, capsys, flags, message):
    assert bench.main(flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_tta_is_chosen_on_validation_errors_then_log_loss(bench):
    import numpy as np

    y_val, y_test = np.array([0, 1, 2, 0]), np.array([2, 2, 1])
    right, wrong = _one_hot(y_val), _one_hot((y_val + 1) % 3)
    test_right, test_wrong = _one_hot(y_test), _one_hot((y_test + 1) % 3)
    hesitant = np.where(right > 0.5, 0.5, 0.25).astype(np.float32)
    tta = {"none": {"g": {0: (hesitant, test_right), 1: (hesitant, test_right)}},
           "shift4": {"g": {0: (right, test_wrong), 1: (right, test_wrong)}},
           "rotate": {"g": {0: (wrong, test_right), 1: (wrong, test_right)}}}
    table = bench.tta_table(tta, y_val, y_test)["g"]
    # none and shift4 both make no validation error; shift4 is more confident, so it is chosen, even though
    # it is the one that is wrong on every test image (test only reports).
    assert table["chosen_on_validation"] == "shift4"
    assert table["policies"]["rotate"]["ensemble_errors"] == 4
    assert table["policies"]["shift4"]["test_accuracy_reported_only"] == 0.0


def test_the_custom_group_changes_the_preset_s_settings(bench):
    custom = '{"optimizer": "adam", "lr": 0.001, "schedule": "exponential", "augment_options": {"rotate": 20}}'
    plan = bench.members("deep", "custom", custom=custom)
    assert plan == [(None, {"optimizer": "adam", "lr": 0.001, "schedule": "exponential",
                            "augment_options": {"rotate": 20}})] * 5


@pytest.mark.parametrize("flags, message", [
    (["--groups", "custom"], "needs --custom"),
    (["--groups", "custom", "--custom", "{nope"], "--custom is not valid JSON"),
    (["--groups", "custom", "--custom", '{"epochz": 3}'], "unknown training settings: epochz"),
    (["--groups", "custom", "--custom", '{"augment_options": {"spin": 3}}'], "has no option spin"),
    (["--preset", "deep", "--groups", "widths"], "the widths group is defined for best, fast-99.5 only"),
    (["--groups", "longer"], "unknown group 'longer'"),
])
def test_bad_custom_settings_fail_before_training(bench, capsys, flags, message):
    assert bench.main(flags) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize("flag, value, message", [("--workers", "0", "must be >= 1, got 0"),
                                                   ("--threads", "two", "expected a whole number >= 1"),
                                                   ("--first-seed", "-1", "must be >= 0, got -1")])
def test_bad_counts_are_argparse_s_one_line_error(bench, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        bench.main([flag, value])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def _one_hot(labels, n_classes=3):
    import numpy as np

    p = np.full((len(labels), n_classes), 0.1 / (n_classes - 1), dtype=np.float32)
    p[np.arange(len(labels)), labels] = 0.9
    return p


def test_choose_on_validation_picks_by_validation_only_and_reports_test(bench):
    import numpy as np

    y_val, y_test = np.array([0, 1, 2, 0]), np.array([2, 2, 1])
    # a and b are right on validation, c is always wrong there; on test c is the only one right.
    val = {"g": {0: _one_hot(y_val), 1: _one_hot(y_val), 2: _one_hot((y_val + 1) % 3)}}
    test = {"g": {0: _one_hot((y_test + 1) % 3), 1: _one_hot((y_test + 1) % 3), 2: _one_hot(y_test)}}
    chosen = bench.choose_on_validation(val, test, y_val, y_test, 2)
    assert chosen["members"] == ["g-0", "g-1"] and chosen["ensemble_errors"] == 0
    assert chosen["candidates"] == 3 and chosen["subsets"] == 3
    # The test score is reported whatever it is: here the validation choice is wrong on every test image.
    assert chosen["test_accuracy_reported_only"] == 0.0
    assert bench.choose_on_validation(val, test, y_val, y_test, 4) is None


def test_choose_breaks_ties_by_validation_log_loss(bench):
    import numpy as np

    y = np.array([0, 1])
    confident, hesitant = _one_hot(y), np.array([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3]], dtype=np.float32)
    val = {"g": {0: hesitant, 1: confident}}
    chosen = bench.choose_on_validation(val, val, y, y, 1)
    assert chosen["members"] == ["g-1"] and chosen["ensemble_errors"] == 0


def test_members_are_saved_as_they_finish_and_chosen_on_validation(bench, mnist, tmp_path, capsys):
    import numpy as np

    data_dir = str(Path(os.environ["DIGITLAB_DATA_DIR"]) / "mnist")
    save = tmp_path / "members"
    assert bench.main(["--quick", "--data-dir", data_dir, "--workers", "2", "--groups", "seeds",
                       "--choose", "1", "--save", str(save), "--save-models", "--tta", "shift4", "--first-seed", "3"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    # No temporary files left; each member's model beside its probabilities.
    assert sorted(p.name for p in save.iterdir()) == ["seeds-0", "seeds-0.npz", "seeds-1", "seeds-1.npz"]
    member = np.load(save / "seeds-0.npz")
    assert member["val"].shape == (1000, 10) and member["test"].shape == (2000, 10)
    assert member["val_shift4"].shape == (1000, 10) and not np.allclose(member["val_shift4"], member["val"])
    # The saved model is the member: it predicts the saved (no-TTA) test probabilities again.
    from digitlab.evaluate.metrics import predict_proba
    from digitlab.models.storage import load_model

    model = load_model(save / "seeds-0")
    assert model.digitlab_meta["train_config"]["seed"] == 3 and figures["first_seed"] == 3  # member 0 of --first-seed 3
    np.testing.assert_allclose(predict_proba(model, mnist.x_test[:2000]), member["test"], atol=1e-5)
    tta = figures["tta"]["seeds"]
    assert set(tta["policies"]) == {"none", "shift4"} and tta["chosen_on_validation"] in ("none", "shift4")
    assert tta["policies"]["none"]["ensemble_errors"] == figures["groups"]["seeds"]["ensemble_errors"]
    assert json.loads(str(member["spec"])) == {"model": None, "changes": {}}
    chosen = figures["chosen"]
    errors = figures["groups"]["seeds"]["member_errors"]
    assert chosen["ensemble_errors"] == min(errors) and chosen["members"] == [f"seeds-{errors.index(min(errors))}"]
    assert 0 <= figures["groups"]["seeds"]["test_accuracy_reported_only"] <= 1 and "(reported only)" in out
