"""Progress without a terminal: a header at once, periodic lines within an epoch, one line per epoch."""

from __future__ import annotations

import io

from digitlab.models.registry import build_model
from digitlab.train.config import TrainConfig
from digitlab.train.loop import fit
from digitlab.train.progress import EpochLines


def test_fit_prints_a_header_before_the_first_epoch_ends(tiny_digits, capsys):
    x, y = tiny_digits
    fit(build_model("fast"), x, y, TrainConfig(epochs=2, batch_size=100))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Training fast (41,450 params) on cpu: 2 epochs of 6 steps")
    assert [line.split(" - ")[0] for line in lines[1:]] == ["Epoch 1/2", "Epoch 2/2"]


def test_lines_within_an_epoch_every_interval(tiny_digits):
    x, y = tiny_digits
    stream = io.StringIO()
    # interval=0: a line after every step, each with the running loss and accuracy.
    fit(build_model("mlp"), x, y, TrainConfig(epochs=1, batch_size=200), callbacks=[EpochLines(stream, 0.0)],
        verbose=False)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("Training mlp (407,050 params)")
    steps = [line for line in lines if " - step " in line]
    assert [line.split(" - ")[1] for line in steps] == ["step 1/3", "step 2/3", "step 3/3"]
    assert all("loss: " in line and "accuracy: " in line for line in steps)
    assert lines[-1].startswith("Epoch 1/1 - ")


def test_no_lines_within_an_epoch_shorter_than_the_interval(tiny_digits):
    x, y = tiny_digits
    stream = io.StringIO()
    fit(build_model("mlp"), x, y, TrainConfig(epochs=1, batch_size=200), callbacks=[EpochLines(stream, 3600.0)],
        verbose=False)
    assert len(stream.getvalue().splitlines()) == 2  # the header and the epoch's line
