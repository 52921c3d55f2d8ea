"""bench/real_world.py: the --quick run measures every set for the three recognisers and ends with its JSON line."""

from __future__ import annotations

import json

import pytest
from scipy import ndimage

BENCH_SCRIPT = "real_world"


@pytest.mark.slow
def test_quick_run_reports_every_set_for_every_model(bench, capsys, mnist):
    assert bench.main(["--quick", "--agreement", "5"]) == 0
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    from real_world_sets import STRESS_SETS

    expected = {"mnist", "sklearn_digits", "realdigits", *STRESS_SETS}
    assert set(figures["sets"]) == expected
    for name, acc in figures["sets"].items():
        assert set(acc) == {"n", "shipped", "previous", "naive"} and all(0 <= acc[m] <= 1 for m in bench.MODELS), name
    assert figures["sets"]["tight16"]["n"] == 30 and figures["sets"]["realdigits"]["n"] == 210
    assert len(figures["realdigits_per_source"]) == 19 and set(figures["realdigits_per_kind"]) == {
        "canvas", "photo", "photo-lowres", "tablet"}
    # The naive resize never inverts: dark ink on white paper is read as noise, far below the real path.
    assert figures["sets"]["realdigits"]["naive"] < figures["sets"]["realdigits"]["shipped"] - 0.3
    # Every set but the blank photos (no digit to agree on), and read's answers on those.
    assert figures["read_agreement_n"] == 5 * (1 + len(STRESS_SETS)) and 0 <= figures["read_agrees"] <= 1
    assert 0 <= figures["read_blank_quiet"] <= 1 and "read on blank photos" in out
    assert set(figures["met"]) == set(bench.GOALS) and "goal >=" in out


def test_stress_sets_are_seeded_and_labelled(bench, mnist):
    from real_world_sets import NO_DIGIT, STRESS_SETS, stress_set

    for name in STRESS_SETS:
        a = stress_set(name, mnist.x_test, mnist.y_test, 3, seed=5)
        assert a == stress_set(name, mnist.x_test, mnist.y_test, 3, seed=5), name
        assert a != stress_set(name, mnist.x_test, mnist.y_test, 3, seed=6), name
    assert {y for _, y in stress_set("flagged1", mnist.x_test, mnist.y_test, 4, seed=0)} == {1}
    assert {y for _, y in stress_set("blank", mnist.x_test, mnist.y_test, 4, seed=0)} == {NO_DIGIT}


def test_a_pencil_photo_is_faint_and_its_blank_twin_has_no_ink(bench, mnist):
    import io

    import numpy as np
    from PIL import Image
    from real_world_sets import pencil_photo

    def grey(data):
        return np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32) / 255

    rng = np.random.default_rng(0)
    for _ in range(3):
        img = grey(pencil_photo(mnist.x_test[0], rng))
        assert 480 <= img.shape[0] <= 960 and img.shape[1] == img.shape[0] * 4 // 3
        local = img / np.maximum(ndimage.maximum_filter(img, 15), 1e-3)  # each pixel against the paper near it
        # A line is there, but faint: 25-50% darker than its paper (a dark pen would reach 0.1), plus noise.
        assert (local < 0.8).mean() > 3e-4 and local.min() > 0.3
        blank = grey(pencil_photo(None, rng))
        assert (blank / np.maximum(ndimage.maximum_filter(blank, 15), 1e-3) < 0.8).mean() < 1e-4


def test_tight_crop_touches_the_edges_with_no_margin(bench, mnist):
    import io

    import numpy as np
    from PIL import Image
    from real_world_sets import tight_crop

    img = np.asarray(Image.open(io.BytesIO(tight_crop(mnist.x_test[0], 16))))
    assert img.shape == (16, 16)
    ink = img < 128
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    assert (rows[0] == 0 and rows[-1] == 15) or (cols[0] == 0 and cols[-1] == 15)


def test_a_missing_realdigits_folder_is_one_line(bench, capsys, tmp_path):
    assert bench.main(["--quick", "--realdigits", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "realdigits-dev not found" in err and len(err.strip().splitlines()) == 1
