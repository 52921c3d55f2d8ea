"""Width normalisation (the MCDNN's preprocessing, as a layer): ink width, centre, brightness, edge cases,
and a model that carries it through training, saving, loading and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitlab.errors import ConfigError
from digitlab.models.registry import build_model
from digitlab.models.storage import load_model, save_model
from digitlab.models.width_norm import WidthNormalize


def _ink_box(img: torch.Tensor, level: float = 0.5) -> tuple[int, int]:
    """First and last column at least half as bright as full ink, in one (28, 28) image of ink 1.0.

    Half the maximum, because interpolation blurs a hard edge symmetrically about where it lands: the
    half-bright columns mark the edge, while fainter blur extends by a fraction of the stretch."""
    cols = np.flatnonzero((img.amax(dim=0) >= level).numpy())
    return int(cols[0]), int(cols[-1])


def _bar(left: int, right: int, value: float = 1.0, rows=(6, 22)) -> torch.Tensor:
    """A (1, 1, 28, 28) image with a solid rectangle of ink in columns left..right."""
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, rows[0]:rows[1], left:right + 1] = value
    return x


@pytest.mark.parametrize("ink_left,ink_right", [(12, 15), (6, 21), (10, 19), (13, 13)])
@pytest.mark.parametrize("target", [10, 14, 20])
def test_the_ink_box_gets_the_target_width_about_the_same_centre(ink_left, ink_right, target):
    out = WidthNormalize(target)(_bar(ink_left, ink_right))
    left, right = _ink_box(out[0, 0])
    assert abs((right - left + 1) - target) <= 1
    assert abs((left + right) / 2 - (ink_left + ink_right) / 2) <= 0.5
    assert out.shape == (1, 1, 28, 28) and out.dtype == torch.float32


@pytest.mark.parametrize("target", [6, 10, 20])
def test_solid_ink_keeps_its_brightness_and_values_stay_in_range(target):
    # Squeezing a 16-px bar to 6 px or stretching it to 20: the middle of a flat bar stays 0.8, nothing overshoots.
    out = WidthNormalize(target)(_bar(6, 21, value=0.8))[0, 0]
    assert out[14, 14].item() == pytest.approx(0.8, abs=1e-5)
    assert out.min().item() >= 0 and out.max().item() <= 0.8 + 1e-5
    assert torch.all(out[:6] == 0) and torch.all(out[22:] == 0)  # rows are never touched


def test_a_digit_already_at_the_target_width_and_a_blank_image_pass_through_unchanged():
    x = torch.cat([_bar(9, 22), torch.zeros(1, 1, 28, 28), torch.full((1, 1, 28, 28), 0.1)])  # 14 px, blank, faint
    torch.testing.assert_close(WidthNormalize(14)(x), x)


def test_each_image_of_a_batch_is_normalised_by_its_own_ink():
    x = torch.cat([_bar(12, 15), _bar(4, 23), _bar(10, 17)])
    out = WidthNormalize(12)(x)
    for i in range(3):
        left, right = _ink_box(out[i, 0])
        assert abs((right - left + 1) - 12) <= 1
        torch.testing.assert_close(out[i:i + 1], WidthNormalize(12)(x[i:i + 1]))


@pytest.mark.parametrize("width", [3, 29, 12.5, True, "14"])
def test_bad_widths_are_config_errors_naming_the_range(width):
    with pytest.raises(ConfigError, match="input_width must be a whole number of pixels from 4 to 28"):
        WidthNormalize(width)
    with pytest.raises(ConfigError, match="input_width"):
        build_model("best", widths=[4, 4, 4], input_width=width)


@pytest.mark.parametrize("name", ["fast", "best", "deep"])
def test_models_take_input_width_as_an_architecture_argument_without_parameters(name, tmp_path):
    small = {"fast": [4, 4, 4], "best": [4, 4, 4], "deep": [4] * 10}[name]
    torch.manual_seed(0)
    plain, normalised = build_model(name, widths=small), build_model(name, widths=small, input_width=12)
    assert sum(p.numel() for p in normalised.parameters()) == sum(p.numel() for p in plain.parameters())
    assert normalised.digitlab_arch["kwargs"]["input_width"] == 12 and plain.digitlab_arch["kwargs"]["input_width"] is None
    assert isinstance(normalised.width_norm, WidthNormalize)
    normalised.train()
    normalised(torch.rand(8, 1, 28, 28))  # BN statistics worth saving
    normalised.eval()
    save_model(normalised, tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert loaded.digitlab_meta["architecture"]["kwargs"]["input_width"] == 12
    x = _bar(12, 15).repeat(2, 1, 1, 1)
    assert torch.equal(loaded(x), normalised(x))


def test_a_width_normalised_model_trains_through_the_loop(tiny_digits):
    from digitlab.train.config import TrainConfig
    from digitlab.train.device import seed_everything
    from digitlab.train.loop import fit

    x, y = tiny_digits
    seed_everything(0)
    model = build_model("fast", widths=[8, 16, 16], input_width=14)
    config = TrainConfig.from_flat(epochs=2, batch_size=32, optimizer="sgd", lr=0.05, schedule="onecycle", device="cpu",
                         threads=1, channels_last=True, augment="affine")
    history = fit(model, x[:500], y[:500], config, validation_data=(x[500:], y[500:]), verbose=False)
    assert history["val_accuracy"][-1] > 0.9  # bars at different heights: widths normalised, still learnable


@pytest.mark.slow
def test_a_width_normalised_model_exports_to_onnx_with_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    from digitlab.inference import onnx_export

    torch.manual_seed(0)
    model = build_model("fast", widths=[8, 8, 8], input_width=16).eval()
    result = onnx_export.export_onnx(model, tmp_path / "wn.onnx", parity_n=100)
    assert result["max_abs_diff"] < onnx_export.PARITY_TOLERANCE
    # The exported graph normalises widths itself: a narrow bar and a wide one of the same height agree.
    backend = onnx_export.OnnxBackend(tmp_path / "wn.onnx")
    bars = torch.cat([_bar(12, 15), _bar(6, 21)])[:, 0].numpy()
    probs = backend(bars)
    np.testing.assert_allclose(probs[0], probs[1], atol=0.05)
