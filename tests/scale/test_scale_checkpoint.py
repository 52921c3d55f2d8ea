"""Checkpoints: what they hold, how they are written, which ones resuming trusts, and that a resumed
fit ends bit-identical to an uninterrupted one (CPU, one thread, same seed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from digitlab.errors import ConfigError, DataError, OutputError
from digitlab.models.registry import build_model
from digitlab.train.checkpoint import (
    MARKER,
    CheckpointCallback,
    checkpoint_dir,
    decode_tree,
    encode_tree,
    latest_checkpoint,
    load_for_resume,
    read_checkpoint,
    write_checkpoint,
)
from digitlab.train.config import TrainConfig
from digitlab.train.device import seed_everything
from digitlab.train.loop import fit

# Every piece of state a resume must restore is exercised: Adam (tuple betas, per-parameter tensors),
# a one-cycle schedule, dropout (torch's global RNG), shuffling (the loop's generator), a carved
# validation split and keep-best (best weights + bookkeeping).
CONFIG = TrainConfig.from_flat(epochs=3, batch_size=32, optimizer="adam", schedule="onecycle", val_split=200,
                     keep_best=True, threads=1, seed=3, device="cpu")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
MODEL_KWARGS = {"hidden": 64, "dropout": 0.3}


def _train(x, y, callbacks, config=CONFIG):
    seed_everything(config.seed)
    model = build_model("mlp", **MODEL_KWARGS)
    history = fit(model, x, y, config, callbacks=callbacks, verbose=False)
    return model, history


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _without_times(history) -> dict:
    return {k: v for k, v in history.items() if k != "epoch_time"}


def test_encode_decode_round_trips_optimizer_and_scheduler_state():
    model = build_model("mlp", hidden=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    model(torch.rand(4, 1, 28, 28)).sum().backward()
    opt.step()
    tensors: dict = {}
    tree = encode_tree(opt.state_dict(), "optimizer", tensors)
    json.dumps(tree)  # the non-tensor part is plain JSON
    assert all(isinstance(v, torch.Tensor) for v in tensors.values()) and "optimizer.state.0.exp_avg" in tensors
    back = decode_tree(json.loads(json.dumps(tree)), tensors)
    assert back["param_groups"][0]["betas"] == (0.8, 0.95)  # a tuple again, not a list
    assert set(back["state"]) == {0, 1, 2, 3}  # int keys again
    for pid, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            assert torch.equal(back["state"][pid][name], value)


def test_encode_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="cannot store object"):
        encode_tree({"x": object()}, "p", {})


@pytest.mark.parametrize("device", DEVICES)
def test_resumed_fit_is_bit_identical_to_an_uninterrupted_one(tmp_path, digits, device):
    x, y = digits
    config = CONFIG.replace(device=device)
    full_model, full_history = _train(x, y, [CheckpointCallback(tmp_path / "full", every=1, keep=5)], config)
    checkpoint = read_checkpoint(checkpoint_dir(tmp_path / "full") / "epoch-0001")
    assert checkpoint.epoch == 1 and checkpoint.config == config
    if device == "cuda":
        assert "cuda" in checkpoint.meta["rng"]  # the CUDA RNG (dropout there) is saved too

    # Scramble every RNG first: the resumed run must depend on the checkpoint alone.
    seed_everything(12345)
    torch.rand(100)
    np.random.rand(7)
    if device == "cuda":
        torch.cuda.manual_seed_all(12345)
    resumed = CheckpointCallback(tmp_path / "resumed", every=1, keep=5, resume_from=checkpoint)
    model, history = _train(x, y, [resumed], config)
    assert _same_weights(model, full_model)
    assert _without_times(history) == _without_times(full_history)
    assert [p.name for p in resumed.written] == ["epoch-0002", "epoch-0003"]


def test_resuming_without_the_rng_states_would_differ(tmp_path, digits):
    """The test above can fail: drop the loop generator's state and the weights no longer match."""
    x, y = digits
    full_model, _ = _train(x, y, [CheckpointCallback(tmp_path / "full", every=1)])
    checkpoint = read_checkpoint(checkpoint_dir(tmp_path / "full") / "epoch-0001")
    rng = checkpoint.meta["rng"]
    checkpoint.tensors[rng["generator"]["__tensor__"]] = torch.Generator().manual_seed(999).get_state()
    model, _ = _train(x, y, [CheckpointCallback(tmp_path / "bad", every=1, resume_from=checkpoint)])
    assert not _same_weights(model, full_model)


def test_a_resumed_ema_run_continues_the_same_average(tmp_path, digits):
    x, y = digits
    config = CONFIG.replace(ema_decay=0.9, keep_best=False)
    full_model, _ = _train(x, y, [CheckpointCallback(tmp_path / "full", every=1, keep=5)], config)
    checkpoint = read_checkpoint(checkpoint_dir(tmp_path / "full") / "epoch-0001")
    assert checkpoint.meta["ema"] is not None
    model, _ = _train(x, y, [CheckpointCallback(tmp_path / "resumed", every=1, resume_from=checkpoint)], config)
    assert _same_weights(model, full_model)
    # Without the saved average the run would end elsewhere: the average above came from the checkpoint.
    n_averaged = checkpoint.meta["ema"]["n_averaged"]["__tensor__"]
    checkpoint.tensors[n_averaged] = torch.zeros_like(checkpoint.tensors[n_averaged])  # restart the average
    restarted, _ = _train(x, y, [CheckpointCallback(tmp_path / "restarted", every=1, resume_from=checkpoint)], config)
    assert not _same_weights(restarted, full_model)
    # A checkpoint from before the setting existed cannot resume an EMA run.
    checkpoint.meta["ema"] = None
    with pytest.raises(ConfigError, match="trained without --ema-decay"):
        _train(x, y, [CheckpointCallback(tmp_path / "old", resume_from=checkpoint)], config)


def test_checkpoint_restores_numpy_rng(tmp_path, digits):
    x, y = digits
    config = CONFIG.replace(epochs=1, val_split=0, keep_best=False)
    np.random.seed(42)
    _train(x, y, [CheckpointCallback(tmp_path, every=1)], config)
    expected = np.random.rand(3)  # what numpy would have drawn next in the original process
    checkpoint = read_checkpoint(checkpoint_dir(tmp_path) / "epoch-0001")
    np.random.seed(0)
    model = build_model("mlp", **MODEL_KWARGS)
    fit(model, x, y, config.replace(epochs=1), callbacks=[CheckpointCallback(tmp_path / "r", resume_from=checkpoint)],
        verbose=False)
    assert np.array_equal(np.random.rand(3), expected)


def test_keeps_the_newest_k_and_files_are_safetensors_plus_json(tmp_path, digits):
    x, y = digits
    _train(x, y, [CheckpointCallback(tmp_path, every=1, keep=2)])
    root = checkpoint_dir(tmp_path)
    assert sorted(p.name for p in root.iterdir()) == ["epoch-0002", "epoch-0003"]
    files = sorted(p.name for p in (root / "epoch-0003").iterdir())
    assert files == ["checkpoint.json", "model.safetensors", "training_state.safetensors"]
    for path in (root / "epoch-0003").iterdir():
        assert not path.read_bytes().startswith(b"\x80")  # no pickle protocol header anywhere


def test_every_n_epochs_and_always_the_last(tmp_path, digits):
    x, y = digits
    callback = CheckpointCallback(tmp_path, every=2, keep=5)
    _train(x, y, [callback])
    assert [p.name for p in callback.written] == ["epoch-0002", "epoch-0003"]


def test_incomplete_and_corrupt_checkpoints_are_skipped_with_reasons(tmp_path, digits, capsys):
    x, y = digits
    _train(x, y, [CheckpointCallback(tmp_path, every=1, keep=5)])
    root = checkpoint_dir(tmp_path)
    (root / "epoch-0003" / MARKER).unlink()  # crashed before its commit marker
    weights = root / "epoch-0002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)  # bytes rotted on disk
    (root / ".epoch-0004.abc.tmp").mkdir()  # a temp folder left by a kill: never considered
    checkpoint, skipped = latest_checkpoint(tmp_path)
    assert checkpoint.epoch == 1
    assert len(skipped) == 2 and "incomplete" in skipped[0] and "corrupt" in skipped[1]
    assert load_for_resume(tmp_path).epoch == 1
    err = capsys.readouterr().err
    assert err.count("warning: skipping checkpoint") == 2


def test_nothing_to_resume_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        load_for_resume(tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        load_for_resume(tmp_path / "missing")
    (checkpoint_dir(tmp_path) / "epoch-0001").mkdir(parents=True)
    with pytest.raises(DataError, match="incomplete"):
        read_checkpoint(checkpoint_dir(tmp_path) / "epoch-0001")


def test_resume_with_other_settings_is_refused(tmp_path, digits):
    x, y = digits
    _train(x, y, [CheckpointCallback(tmp_path, every=1)], CONFIG.replace(epochs=1))
    checkpoint = read_checkpoint(checkpoint_dir(tmp_path) / "epoch-0001")
    with pytest.raises(ConfigError, match="different settings .*lr"):
        _train(x, y, [CheckpointCallback(tmp_path / "r", resume_from=checkpoint)], CONFIG.replace(epochs=1, lr=0.1))
    with pytest.raises(ConfigError, match="steps per epoch"):
        _train(x[:600], y[:600], [CheckpointCallback(tmp_path / "r", resume_from=checkpoint)], CONFIG.replace(epochs=1))


def test_an_interrupted_write_leaves_no_checkpoint_and_keeps_the_old_one(tmp_path, digits, monkeypatch):
    x, y = digits
    callback = CheckpointCallback(tmp_path, every=1, keep=5)
    _train(x, y, [callback], CONFIG.replace(epochs=1))
    before = {p.name: p.read_bytes() for p in (checkpoint_dir(tmp_path) / "epoch-0001").iterdir()}

    import digitlab.train.checkpoint as ckpt

    real = ckpt.write_json

    def crash(path, obj):  # dies just before the commit marker, as a kill at that instant would
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        _train(x, y, [callback], CONFIG.replace(epochs=2))
    monkeypatch.setattr(ckpt, "write_json", real)
    assert sorted(p.name for p in checkpoint_dir(tmp_path).iterdir()) == ["epoch-0001"]
    assert {p.name: p.read_bytes() for p in (checkpoint_dir(tmp_path) / "epoch-0001").iterdir()} == before


def test_unwritable_checkpoint_folder_is_an_output_error(tmp_path, digits):
    x, y = digits
    (tmp_path / "run").write_text("a file where the run folder should be")
    with pytest.raises(OutputError, match="cannot write"):
        _train(x, y, [CheckpointCallback(tmp_path / "run", every=1)], CONFIG.replace(epochs=1))


def test_bad_callback_settings():
    with pytest.raises(ConfigError, match="interval"):
        CheckpointCallback("x", every=0)
    with pytest.raises(ConfigError, match="at least 1"):
        CheckpointCallback("x", keep=0)


def test_writing_an_existing_epoch_again_replaces_it_whole(tmp_path, digits):
    x, y = digits
    callback = CheckpointCallback(tmp_path, every=1)
    _train(x, y, [callback], CONFIG.replace(epochs=1))
    # Writing the same epoch again (a resumed run re-reaching it) replaces the old copy whole.
    checkpoint = read_checkpoint(callback.written[0])
    model = build_model("mlp", **MODEL_KWARGS)
    model.load_state_dict(checkpoint.model_state)
    from digitlab.train.loop import TrainState
    from digitlab.train.optim import make_optimizer, make_scheduler

    opt = make_optimizer(model.parameters(), CONFIG)
    state = TrainState(model, opt, make_scheduler(opt, CONFIG, 32), torch.Generator(), CONFIG.replace(epochs=1),
                       torch.device("cpu"), checkpoint.meta["steps_per_epoch"], epoch=1)
    again = write_checkpoint(tmp_path, state)
    assert again == callback.written[0] and read_checkpoint(again).epoch == 1
