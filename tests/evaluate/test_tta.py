"""Test-time augmentation: exact shifts, rotation direction, the policies' views, and the averaged softmax."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from digitlab.errors import ConfigError
from digitlab.evaluate.metrics import predict_proba
from digitlab.evaluate.tta import POLICIES, check_policy, rotate, shift, views


def _dot(row: int, col: int) -> torch.Tensor:
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, row, col] = 1.0
    return x


@pytest.mark.parametrize("dx, dy", [(1, 0), (-1, 0), (0, 1), (0, -1), (-2, 3)])
def test_shift_moves_every_pixel_exactly_and_fills_with_background(dx, dy):
    moved = shift(_dot(10, 12), dx, dy)
    assert moved.shape == (1, 1, 28, 28)
    assert moved.nonzero().tolist() == [[0, 0, 10 + dy, 12 + dx]]
    # What leaves the frame is gone, and what comes in is background.
    edge = shift(_dot(0, 27), 1, -1)
    assert edge.sum() == 0


def test_rotate_turns_clockwise_about_the_centre_and_keeps_the_ink():
    bar = torch.zeros(1, 1, 28, 28)
    bar[0, 0, 4:10, 13:15] = 1.0  # above the centre
    turned = rotate(bar, 90.0)
    rows, cols = (turned[0, 0] > 0.5).nonzero(as_tuple=True)
    assert rows.float().mean().item() == pytest.approx(13.5, abs=1.0)  # now level with the centre ...
    assert cols.float().mean().item() > 17  # ... and to its right: clockwise, as y points down
    assert turned.sum().item() == pytest.approx(bar.sum().item(), rel=0.05)
    assert rotate(bar, 0.0) is bar


def test_every_policy_starts_with_the_image_itself():
    x = torch.rand(3, 1, 28, 28)
    for name, spec in POLICIES.items():
        got = list(views(x, name))
        assert len(got) == len(spec) and torch.equal(got[0], x)
        assert all(v.shape == x.shape for v in got)
    assert len(POLICIES["shift8"]) == 9 and len(set(POLICIES["shift8"])) == 9


def test_unknown_policy_is_a_one_line_error_naming_the_choices():
    assert check_policy(None) == "none"
    with pytest.raises(ConfigError, match="unknown TTA policy 'flip': choose one of none, shift4"):
        check_policy("flip")


class CentreOfMass(torch.nn.Module):
    """A 'model' that answers from where the ink is: class 1 when it is right of the centre, else 0."""

    def forward(self, x):
        cols = torch.arange(28, dtype=x.dtype)
        centre = (x.sum(dim=(1, 2)) * cols).sum(1) / x.sum(dim=(1, 2, 3)).clamp_min(1e-6)
        score = (centre - 13.5) * 20
        return torch.stack([-score, score], dim=1)

    def parameters(self, recurse=True):
        yield torch.zeros(1)


def test_predict_proba_averages_the_softmax_over_the_views():
    x = np.zeros((2, 28, 28), dtype=np.uint8)
    x[0, 10:18, 14] = 255  # column 14: the centre is 13.5, so a shift left turns it into class 0
    x[1, 10:18, 5] = 255
    model = CentreOfMass()
    plain = predict_proba(model, x)
    assert plain[0].argmax() == 1 and plain[1].argmax() == 0
    tta = predict_proba(model, x, tta="shift4")
    # Image 0's five views: itself, right, left (now left of the centre), down, up: 4 say 1, one says 0.
    assert tta[0, 1] == pytest.approx(4 / 5, abs=0.01)
    np.testing.assert_allclose(tta.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(predict_proba(model, x, tta="none"), plain)


def test_evaluate_cli_with_tta(tmp_path, capsys):
    from digitlab.cli.main import main
    from digitlab.data.idx import encode_idx
    from digitlab.models.registry import build_model
    from digitlab.models.storage import save_model
    from digitlab.train.device import seed_everything

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 30)):
        (data / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        (data / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(rng.integers(0, 10, n).astype(np.uint8)))
    seed_everything(0)
    run = save_model(build_model("fast", widths=[8, 16, 16]), tmp_path / "run")
    assert main(["evaluate", str(run), "--data-dir", str(data), "--tta", "rotate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tta"] == "rotate"
    assert main(["evaluate", str(run), "--data-dir", str(data), "--tta", "flip"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown TTA policy 'flip'" in err
