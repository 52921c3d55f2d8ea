"""predict_logits: the batched forward pass every scorer shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitlab.models.registry import build_model
from digitlab.train.predict import predict_logits


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(37, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module", params=["mlp", "fast"])
def model(request):
    torch.manual_seed(0)
    return build_model(request.param).eval()


def _reference(model, images):
    with torch.no_grad():
        return model(torch.tensor(images, dtype=torch.float32).div(255).unsqueeze(1))


def test_batches_give_the_whole_set_forward_pass(model, images):
    expected = _reference(model, images)
    for batch_size in (1, 5, 36, 37, 1000):  # 37 images: the last batch is short, or the only one
        got = predict_logits(model, images, batch_size=batch_size)
        assert got.dtype == torch.float32 and got.shape == (37, 10)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_takes_float_tensors_and_channels_last_alike(model, images):
    expected = _reference(model, images)
    as_float = torch.tensor(images, dtype=torch.float32).div(255).unsqueeze(1)
    torch.testing.assert_close(predict_logits(model, as_float, batch_size=8), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(predict_logits(model, images, channels_last=True), expected, rtol=1e-4, atol=1e-5)


def test_views_stack_along_a_new_first_axis(model, images):
    flipped = torch.flip(torch.tensor(images, dtype=torch.float32).div(255).unsqueeze(1), dims=[3])
    got = predict_logits(model, images, batch_size=10, views=lambda xb: [xb, torch.flip(xb, dims=[3])])
    assert got.shape == (2, 37, 10)
    torch.testing.assert_close(got[0], _reference(model, images), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(got[1], model(flipped), rtol=1e-4, atol=1e-5)


def test_runs_in_eval_mode_without_gradients_and_restores_the_mode(images):
    torch.manual_seed(0)
    model = build_model("mlp", dropout=0.5).train()
    first = predict_logits(model, images)
    torch.testing.assert_close(predict_logits(model, images), first)  # dropout off: deterministic
    assert model.training and not first.requires_grad


def test_an_empty_set_gives_no_rows_with_the_models_classes(model):
    got = predict_logits(model, np.zeros((0, 28, 28), np.uint8))
    assert got.shape == (0, 10)


def test_bf16_autocast_returns_float32_close_to_float32(images):
    torch.manual_seed(0)
    model = build_model("mlp").eval()
    got = predict_logits(model, images, amp=True)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, _reference(model, images), rtol=0.05, atol=0.05)


def test_wrong_shapes_fail_with_one_clear_line(model):
    from digitlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"shaped \(N, 28, 28\)"):
        predict_logits(model, np.zeros((3, 32, 32), np.uint8))
