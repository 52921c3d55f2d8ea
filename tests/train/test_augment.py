"""Batched augmentation: shapes, dtypes, ranges, geometry, and that all randomness comes from the generator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from digitlab.errors import ConfigError
from digitlab.train.augment import affine_grid, blur_matrix, elastic_field, gaussian_kernel, make_augment

NAMES = ("affine", "elastic")
NO_AFFINE = {"rotate": 0, "shift": 0, "scale": 0, "shear": 0}


def digits_batch(n=16, seed=0):
    """float (n, 1, 28, 28) in [0, 1]: a bright bar on a dark background, as MNIST's ink on black."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.1
    x[:, :, 8:20, 12:16] = 1.0
    return x


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", NAMES)
def test_keeps_shape_dtype_device_and_range(name):
    x = digits_batch()
    out = make_augment(name)(x, gen())
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, x)  # it did something
    assert out.sum() > 0.5 * x.sum()  # and kept most of the ink on the canvas


@pytest.mark.parametrize("name", NAMES)
def test_keeps_channels_last_layout(name):
    x = digits_batch().contiguous(memory_format=torch.channels_last)
    out = make_augment(name)(x, gen())
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", NAMES)
def test_same_generator_state_same_images_and_global_rng_untouched(name):
    x = digits_batch()
    augment = make_augment(name)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = augment(x, gen(7)), augment(x, gen(7))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)  # only the passed generator was used
    assert not torch.equal(a, augment(x, gen(8)))


def test_generator_advances_so_consecutive_batches_differ():
    x, g = digits_batch(), gen(0)
    augment = make_augment("affine")
    assert not torch.equal(augment(x, g), augment(x, g))


def test_each_image_gets_its_own_transform():
    x = digits_batch(8)
    x[:] = x[0]  # eight copies of one image
    out = make_augment("affine")(x, gen())
    assert len({tuple(img.flatten()[::7].tolist()) for img in out}) == 8


def test_zero_strength_affine_is_the_identity():
    x = digits_batch()
    torch.testing.assert_close(make_augment("affine", **NO_AFFINE)(x, gen()), x, atol=1e-5, rtol=0)


def test_shift_only_moves_the_ink_by_at_most_the_shift():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 12:16, 12:16] = 1.0

    def centre(imgs):
        w = imgs[:, 0]
        idx = torch.arange(28.0)
        total = w.sum((1, 2))
        return torch.stack([(w.sum(2) * idx).sum(1) / total, (w.sum(1) * idx).sum(1) / total], 1)

    moved = centre(make_augment("affine", rotate=0, scale=0, shear=0, shift=2)(x, gen())) - centre(x)
    assert moved.abs().max() <= 2.0 + 1e-4
    assert moved.abs().max() > 0.5  # and it does move
    # a shift keeps the ink (the square stays inside the canvas)
    torch.testing.assert_close(make_augment("affine", rotate=0, scale=0, shear=0, shift=2)(x, gen()).sum(),
                               x.sum(), rtol=1e-4, atol=1e-3)


def test_rotation_keeps_the_ink_of_a_centred_disc():
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disc = (((yy - 13.5) ** 2 + (xx - 13.5) ** 2) < 36).float().expand(8, 1, 28, 28)
    out = make_augment("affine", rotate=45, shift=0, scale=0, shear=0)(disc, gen())
    torch.testing.assert_close(out.sum((1, 2, 3)), disc.sum((1, 2, 3)), rtol=0.02, atol=0)


@pytest.mark.parametrize("size,dtype", [(28, torch.float32), (5, torch.float64)])
def test_cached_affine_grid_is_torchs_affine_grid(size, dtype):
    theta = torch.randn(7, 2, 3, generator=gen(), dtype=dtype)
    expected = F.affine_grid(theta, [7, 1, size, size], align_corners=False)
    torch.testing.assert_close(affine_grid(theta, size), expected)
    torch.testing.assert_close(affine_grid(theta * 2, size), F.affine_grid(theta * 2, [7, 1, size, size],
                                                                            align_corners=False))


def test_blur_matrix_is_the_gaussian_conv():
    noise = torch.rand(6, 1, 28, 28, generator=gen()) * 2 - 1
    k = gaussian_kernel(4.0, 28, noise)
    r = len(k) // 2
    by_conv = F.conv2d(F.conv2d(noise, k.view(1, 1, 1, -1), padding=(0, r)), k.view(1, 1, -1, 1), padding=(r, 0))
    b = blur_matrix(4.0, 28, noise)
    torch.testing.assert_close(b @ noise @ b.T, by_conv, atol=1e-5, rtol=1e-4)
    assert k.sum().item() == pytest.approx(1.0) and len(k) == 25


def test_elastic_field_is_smooth_and_scales_with_alpha():
    like = torch.zeros(1)
    field = elastic_field(32, 28, alpha=34.0, sigma=4.0, generator=gen(), like=like)
    assert field.shape == (32, 28, 28, 2)
    centre = field[:, 10:18, 10:18]
    neighbour_step = (centre[:, 1:] - centre[:, :-1]).abs().mean()
    assert neighbour_step < 0.2 * centre.abs().mean()  # smooth: neighbours move together
    assert 0.3 < centre.std() < 3.0  # about a pixel of displacement for Simard's alpha=34, sigma=4
    half = elastic_field(32, 28, alpha=17.0, sigma=4.0, generator=gen(), like=like)
    torch.testing.assert_close(half * 2, field)


def test_elastic_without_affine_moves_pixels_a_little():
    x = digits_batch()
    out = make_augment("elastic", **NO_AFFINE)(x, gen())
    assert 0 < (out - x).abs().mean() < 0.2
    torch.testing.assert_close(make_augment("elastic", **NO_AFFINE, alpha=0)(x, gen()), x, atol=1e-5, rtol=0)


def test_none_is_the_identity():
    x = digits_batch()
    assert make_augment("none")(x, gen()) is x


@pytest.mark.parametrize("name,opts,match", [
    ("flip", {}, "unknown augmentation 'flip'"),
    ("affine", {"alpha": 3}, "has no option alpha"),
    ("affine", {"rotate": -5}, "must be a finite number >= 0"),
    ("affine", {"scale": 1.5}, "scale must be < 1"),
    ("elastic", {"sigma": 0}, "sigma must be > 0"),
    ("affine", {"rotate": "lots"}, "options must be numbers"),
])
def test_bad_settings_are_config_errors(name, opts, match):
    with pytest.raises(ConfigError, match=match):
        make_augment(name, **opts)


def test_wrong_input_is_a_config_error():
    with pytest.raises(ConfigError, match="float images shaped"):
        make_augment("affine")(torch.zeros(4, 1, 28, 20), gen())
    with pytest.raises(ConfigError, match="float images shaped"):
        make_augment("affine")(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), gen())


# ---- the styles augmentation: stroke width, blur, low resolution ----
from digitlab.train.augment_styles import blur, low_resolution, stroke_width  # noqa: E402

ONLY = {"stroke_p": 0.0, "blur_p": 0.0, "lowres_p": 0.0, **NO_AFFINE}


def test_styles_keeps_shape_range_and_is_reproducible():
    x = digits_batch(32)
    a = make_augment("styles", stroke_p=1, blur_p=1, lowres_p=1)
    y1, y2 = a(x, gen(3)), a(x, gen(3))
    assert y1.shape == x.shape and y1.dtype == x.dtype
    assert float(y1.min()) >= 0 and float(y1.max()) <= 1
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, a(x, gen(4)))


def test_styles_with_every_operation_off_is_the_warp_alone():
    x = digits_batch()
    assert torch.allclose(make_augment("styles", **ONLY)(x, gen()), x, atol=1e-5)


def test_thicker_strokes_add_ink_and_thinner_remove_it():
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    out = stroke_width(x, torch.tensor([1.0, -1.0]))
    assert float(out[0].sum()) == pytest.approx(14 * 6)  # a 3x3 dilation grows the 12x4 bar by 1 px per side
    assert float(out[1].sum()) == pytest.approx(10 * 2)  # an erosion shrinks it by 1 px per side
    assert torch.equal(stroke_width(x, torch.zeros(2)), x)


def test_blur_spreads_ink_keeps_its_mass_and_zero_sigma_is_identity():
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 14, 14] = 1.0
    out = blur(x, torch.tensor([0.0, 1.5]))
    assert torch.allclose(out[0], x[0], atol=1e-6)
    assert float(out[1].max()) < 0.2 and float(out[1].sum()) == pytest.approx(1.0, abs=1e-4)
    ref = F.conv2d(x[1:2], (lambda k: (k[:, None] * k[None, :])[None, None])(gaussian_kernel(1.5, 28, x)), padding=5)
    assert torch.allclose(out[1], ref[0], atol=2e-3)  # the same Gaussian, less the 3-sigma truncation


def test_low_resolution_averages_blocks_and_quantises():
    x = torch.zeros(1, 1, 28, 28)
    x[:, :, :14, :14] = 1.0  # one quadrant: exactly representable at 2x2, so it survives the round trip
    same = low_resolution(x, torch.tensor([2]), torch.tensor([False]))
    assert float(same[0, 0, 0, 0]) == pytest.approx(1.0) and float(same[0, 0, 27, 27]) == pytest.approx(0.0)
    # A single bright pixel at 7x7 becomes a 1/16 block, and 16 grey levels round it to 1/15.
    dot = torch.zeros(1, 1, 28, 28)
    dot[:, :, 1, 1] = 1.0
    plain = low_resolution(dot, torch.tensor([7]), torch.tensor([False]))
    levels = low_resolution(dot, torch.tensor([7]), torch.tensor([True]))
    assert float(plain.max()) == pytest.approx(1 / 16, abs=1e-5)
    assert float(levels.max()) == pytest.approx(1 / 15, abs=1e-5)
    assert float(plain.sum()) > 0.5  # the ink is spread out, not lost


@pytest.mark.parametrize("opts,match", [
    ({"stroke_p": 1.5}, "stroke_p must be in \\[0, 1\\]"),
    ({"thick": 2}, "thick must be in \\[0, 1\\]"),
    ({"blur": 5}, "blur .* must be in \\[0, 3\\]"),
    ({"lowres_min": 3}, "4 <= min <= max <= 20"),
    ({"lowres_min": 12, "lowres_max": 8}, "4 <= min <= max <= 20"),
    ({"gamma": 1}, "has no option gamma"),
])
def test_bad_styles_settings_are_config_errors(opts, match):
    with pytest.raises(ConfigError, match=match):
        make_augment("styles", **opts)
