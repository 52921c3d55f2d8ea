"""Font-rendered digits: the font list and its fixed split, each style's shape, MNIST framing, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from digitlab.data import synthetic
from digitlab.data.synthetic import STYLES, available_fonts, font_digits, mnist_frame, render_digit
from digitlab.errors import ConfigError


def test_splits_are_disjoint_fixed_and_non_empty():
    train, test, every = available_fonts("train"), available_fonts("test"), available_fonts("all")
    assert train and test
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(every)
    assert available_fonts("test") == test  # the same on every call (a hash of the name, not a random draw)
    assert any(p.name.startswith("DejaVu") for p in every)  # matplotlib's fonts are always there


def test_splits_stay_non_empty_with_only_matplotlibs_fonts(monkeypatch, tmp_path):
    synthetic._usable_fonts.cache_clear()
    monkeypatch.setattr(synthetic, "FONT_ROOT", tmp_path)  # no Debian fonts
    monkeypatch.setattr(synthetic, "_handwriting_fonts", lambda root=tmp_path: [])
    try:
        assert available_fonts("train") and available_fonts("test")
    finally:
        synthetic._usable_fonts.cache_clear()


def test_a_font_without_digits_is_left_out(tmp_path):
    fake = tmp_path / "broken.ttf"
    fake.write_bytes(b"not a font")
    assert not synthetic._draws_digits(fake)


@pytest.mark.parametrize("style,label", [("plain", 3), ("flagged1", 1), ("crossed7", 7), ("open4", 4),
                                         ("straight9", 9), ("thick", 8)])
def test_each_style_draws_its_digit_whole_with_a_margin(style, label):
    img = render_digit(label, available_fonts()[0], style=style, size=64)
    assert img.shape == (64, 64) and img.dtype == np.uint8
    assert img.max() == 255 and img.min() == 0  # white ink on black
    ys, xs = np.nonzero(img)
    assert ys.min() >= 3 and xs.min() >= 3 and ys.max() <= 60 and xs.max() <= 60  # nothing touches the edge


def test_crossed_seven_has_more_ink_across_its_stem_than_the_plain_seven():
    font = available_fonts()[0]
    plain = render_digit(7, font, size=64)
    crossed = render_digit(7, font, style="crossed7", size=64)
    assert (crossed > 127).sum() > (plain > 127).sum()


@pytest.mark.parametrize("seed", range(5))
def test_flagged_one_has_its_flag_left_of_the_stem_in_the_upper_half(seed):
    img = render_digit(1, available_fonts()[0], style="flagged1", size=64, rng=np.random.default_rng(seed))
    ink = img > 127
    flag_left = np.nonzero(ink[:32].any(axis=0))[0].min()
    stem_left = np.nonzero(ink[36:44].any(axis=0))[0].min()
    assert flag_left < stem_left - 3  # the upstroke reaches well left of the stem below it


def test_heavy_style_has_more_ink():
    font = available_fonts()[0]
    assert (render_digit(3, font, style="thick", size=64) > 127).sum() > (render_digit(3, font, size=64) > 127).sum()


def test_mnist_frame_scales_the_ink_to_20px_and_centres_its_mass():
    ink = np.zeros((100, 100), np.uint8)
    ink[10:90, 40:60] = 255  # an 80x20 bar
    out = mnist_frame(ink)
    ys, xs = np.nonzero(out > 64)
    assert out.shape == (28, 28) and ys.max() - ys.min() + 1 == 20
    mass = out.astype(float)
    cy, cx = (mass.sum(1) * np.arange(28)).sum() / mass.sum(), (mass.sum(0) * np.arange(28)).sum() / mass.sum()
    assert abs(cy + 0.5 - 14) <= 1 and abs(cx + 0.5 - 14) <= 1


def test_font_digits_are_balanced_seeded_and_mnist_shaped():
    x, y = font_digits(60, seed=1)
    assert x.shape == (60, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(np.bincount(y, minlength=10), np.full(10, 6))
    x2, y2 = font_digits(60, seed=1)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, font_digits(60, seed=2)[0])
    rows = np.nonzero((x > 0).any(axis=2).any(axis=0))[0]
    assert rows.min() >= 2 and rows.max() <= 25  # MNIST's frame: the ink inside the middle 20-24 px


def test_font_digits_restricted_to_a_style_draw_only_its_digit():
    _, y = font_digits(12, split="test", styles=["flagged1"])
    assert set(y.tolist()) == {1}
    _, y = font_digits(20, styles=["crossed7", "plain"])
    assert set(y.tolist()) == set(range(10))


@pytest.mark.parametrize("call,match", [
    (lambda f: render_digit(10, f), "label must be a digit"),
    (lambda f: render_digit(3, f, style="fancy"), "unknown style"),
    (lambda f: render_digit(3, f, style="flagged1"), "draws only the digit 1"),
    (lambda f: render_digit(3, f, size=4), "size must be"),
    (lambda f: render_digit(3, f.parent / "missing.ttf"), "not found"),
    (lambda f: font_digits(0), "n must be"),
    (lambda f: font_digits(5, split="dev"), "unknown font split"),
    (lambda f: font_digits(5, styles=["curly"]), "unknown style"),
    (lambda f: font_digits(5, seed=-1), "seed must be"),
])
def test_bad_arguments_are_one_line_config_errors(call, match):
    with pytest.raises(ConfigError, match=match) as info:
        call(available_fonts()[0])
    assert "\n" not in str(info.value)


def test_styles_are_listed():
    assert STYLES == ("plain", "flagged1", "crossed7", "open4", "straight9", "thick")
