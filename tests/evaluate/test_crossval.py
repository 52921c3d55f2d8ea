"""Cross-validation: sklearn's splits, a fresh model per fold, determinism, the leaky protocol, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import KFold, StratifiedKFold

from digitlab.errors import ConfigError
from digitlab.evaluate.crossval import (
    FoldTask, LocalExecutor, cross_validate, make_splits, run_fold,
)

SMALL_MLP = {"hidden": 64}


def test_splits_match_sklearn_kfold_on_the_60000_images():
    ours = make_splits(60000, folds=5, seed=1)
    theirs = list(KFold(5, shuffle=True, random_state=1).split(np.arange(60000)))
    assert len(ours) == 5
    for (tr, te), (tr_ref, te_ref) in zip(ours, theirs):
        assert tr.dtype == np.int64 and te.dtype == np.int64
        np.testing.assert_array_equal(tr, tr_ref)
        np.testing.assert_array_equal(te, te_ref)
    # Every image is tested exactly once.
    np.testing.assert_array_equal(np.sort(np.concatenate([te for _, te in ours])), np.arange(60000))


def test_stratified_splits_match_sklearn(tiny_digits):
    _, y = tiny_digits
    ours = make_splits(y, folds=4, seed=3, stratified=True)
    theirs = StratifiedKFold(4, shuffle=True, random_state=3).split(np.zeros(len(y)), y)
    for (tr, te), (tr_ref, te_ref) in zip(ours, theirs):
        np.testing.assert_array_equal(tr, tr_ref)
        np.testing.assert_array_equal(te, te_ref)


def test_other_seed_gives_other_split():
    a, b = make_splits(100, 5, seed=1), make_splits(100, 5, seed=2)
    assert not np.array_equal(a[0][1], b[0][1])


@pytest.mark.parametrize("kwargs, message", [
    ({"n_or_y": 100, "folds": 1}, "folds must be an integer >= 2"),
    ({"n_or_y": 3, "folds": 5}, "cannot split 3 images into 5 folds"),
    ({"n_or_y": 100, "folds": 5, "stratified": True}, "stratified splits need the labels"),
    ({"n_or_y": np.array([0, 0, 1, 1, 2, 2]), "folds": 3, "stratified": True}, "cannot make 3 stratified folds"),
])
def test_bad_splits_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_splits(**kwargs)


def _fingerprints(result):
    return [(f.extra["weights_first_batch"], f.extra["weights_final"]) for f in result.folds]


def test_every_fold_trains_a_fresh_model(tiny_digits, fast_config):
    x, y = tiny_digits
    result = cross_validate("mlp", x, y, folds=3, config=fast_config, model_kwargs=SMALL_MLP, record_weights=True)
    prints = _fingerprints(result)
    for k in range(1, 3):
        first_now, _ = prints[k]
        _, final_before = prints[k - 1]
        assert first_now != final_before  # the fold did not start from the previous fold's weights
    assert len({first for first, _ in prints}) == 3  # seed + fold: three different initialisations
    assert all(first != final for first, final in prints)  # and every fold did train


def test_reuse_model_continues_from_the_previous_fold(tiny_digits, fast_config):
    x, y = tiny_digits
    result = cross_validate("mlp", x, y, folds=3, config=fast_config, model_kwargs=SMALL_MLP, record_weights=True,
                            reuse_model=True)
    prints = _fingerprints(result)
    for k in range(1, 3):
        assert prints[k][0] == prints[k - 1][1]  # the article's protocol: the same network goes on training
    assert result.reuse_model and result.summary()["leaky"] is True
    assert result.summary()["protocol"] == "reuse-model (leaky)"


def test_scores_learn_and_summarise(tiny_digits, fast_config):
    x, y = tiny_digits
    seen = []
    result = cross_validate("mlp", x, y, folds=3, config=fast_config.replace(epochs=3), model_kwargs=SMALL_MLP,
                            on_result=seen.append)
    assert [r.fold for r in seen] == [0, 1, 2]
    assert result.scores.shape == (3,) and (result.scores > 0.8).all()
    assert result.std == pytest.approx(np.std(result.scores))  # numpy std, ddof=0, as the article
    for fold, (_, test) in zip(result.folds, result.splits):
        assert fold.n_test == len(test) and fold.n_train == len(x) - len(test)
        assert fold.history["val_accuracy"][-1] == pytest.approx(fold.accuracy)
        assert fold.extra["test_proba"].shape == (len(test), 10)
    oof = result.oof_proba()
    assert oof.shape == (len(x), 10)
    # Pooled out-of-fold accuracy is the test-size-weighted mean of the fold accuracies.
    weights = np.array([f.n_test for f in result.folds])
    assert (oof.argmax(1) == y).mean() == pytest.approx(np.average(result.scores, weights=weights))
    assert json.loads(json.dumps(result.summary()))["folds"] == 3


def test_fold_results_do_not_depend_on_execution_order(tiny_digits, fast_config):
    x, y = tiny_digits
    splits = make_splits(len(y), 3, seed=1)
    tasks = [FoldTask(k, tr, te, "mlp", SMALL_MLP, fast_config.replace(seed=fast_config.seed + k))
             for k, (tr, te) in enumerate(splits)]
    forward = LocalExecutor().map(tasks, x, y)
    backward = LocalExecutor().map(tasks[::-1], x, y)[::-1]
    for a, b in zip(forward, backward):
        assert a.fold == b.fold and a.accuracy == b.accuracy and a.loss == b.loss
        np.testing.assert_array_equal(a.extra["test_proba"], b.extra["test_proba"])
    # run_fold is a pure function of the task: same task, same result.
    again = run_fold(tasks[1], x, y)
    assert again.accuracy == forward[1].accuracy and again.history["loss"] == forward[1].history["loss"]


def test_resume_skips_saved_folds_and_gives_the_same_scores(tiny_digits, fast_config, tmp_path):
    x, y = tiny_digits
    out = tmp_path / "cv"
    first = cross_validate("mlp", x, y, folds=3, config=fast_config, model_kwargs=SMALL_MLP, output=out)
    assert sorted(p.name for p in (out / "folds").glob("*.json")) == ["fold-01.json", "fold-02.json", "fold-03.json"]
    (out / "folds" / "fold-02.json").unlink()  # as if the run had died during fold 2

    class Recording(LocalExecutor):
        def map(self, tasks, x, y, on_result=None):
            self.ran = [t.fold for t in tasks]
            return super().map(tasks, x, y, on_result)

    executor = Recording()
    second = cross_validate("mlp", x, y, folds=3, config=fast_config, model_kwargs=SMALL_MLP, output=out,
                            resume=True, executor=executor)
    assert executor.ran == [1]
    assert second.resumed == [0, 2]
    np.testing.assert_array_equal(second.scores, first.scores)
    np.testing.assert_array_equal(second.oof_proba(), first.oof_proba())


def test_resume_refuses_folds_made_with_other_settings(tiny_digits, fast_config, tmp_path):
    x, y = tiny_digits
    cross_validate("mlp", x, y, folds=3, config=fast_config, model_kwargs=SMALL_MLP, output=tmp_path)
    with pytest.raises(ConfigError, match="made with other settings"):
        cross_validate("mlp", x, y, folds=3, config=fast_config.replace(epochs=1), model_kwargs=SMALL_MLP,
                       output=tmp_path, resume=True)


def test_a_fresh_run_clears_an_earlier_runs_folds(tiny_digits, fast_config, tmp_path):
    x, y = tiny_digits
    cross_validate("mlp", x, y, folds=4, config=fast_config.replace(epochs=1), model_kwargs=SMALL_MLP, output=tmp_path)
    cross_validate("mlp", x, y, folds=3, config=fast_config.replace(epochs=1), model_kwargs=SMALL_MLP, output=tmp_path)
    assert not (tmp_path / "folds" / "fold-04.json").exists()


def test_protocol_errors(tiny_digits, fast_config, tmp_path):
    x, y = tiny_digits

    class OtherExecutor:  # any executor that is not local, e.g. the Ray one
        name = "elsewhere"

        def map(self, tasks, x, y, on_result=None):
            raise AssertionError("must not be called")

    with pytest.raises(ConfigError, match="cannot run as independent tasks"):
        cross_validate("mlp", x, y, config=fast_config, reuse_model=True, executor=OtherExecutor())
    with pytest.raises(ConfigError, match="cannot continue a --reuse-model run"):
        cross_validate("mlp", x, y, config=fast_config, reuse_model=True, output=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="needs an output folder"):
        cross_validate("mlp", x, y, config=fast_config, resume=True)
    with pytest.raises(ConfigError, match="unknown model"):
        cross_validate("nope", x, y, config=fast_config)
    with pytest.raises(ConfigError, match="has no option"):
        cross_validate("mlp", x, y, config=fast_config, model_kwargs={"width": 3})
    with pytest.raises(ConfigError, match="images but"):
        cross_validate("mlp", x, y[:-1], config=fast_config)
