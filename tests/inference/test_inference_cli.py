"""`digitlab predict`, `read` and `export`: output formats, --show, bad inputs, exit codes."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from digitlab.cli.main import main
from inference_helpers import encode, ring_digit


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_folder_goes_on_past_every_bad_file(capsys, images, mlp_run, tmp_path):
    code, out, err = run_cli(capsys, "predict", "--model", mlp_run, images["ring.png"].parent, tmp_path / "gone.png")
    assert code == 1
    good = [line for line in out.splitlines() if line]
    assert len(good) == 2 and all("ring." in line and "confidence" in line and "top 3:" in line for line in good)
    errors = err.strip().splitlines()
    assert len(errors) == 6  # empty, text, truncated png, truncated jpg, bomb, missing path
    for name, words in [("empty.png", "empty (0 bytes)"), ("notes.png", "not an image"),
                        ("truncated.png", "truncated or corrupt"), ("truncated.jpg", "truncated or corrupt"),
                        ("bomb.png", "too large"), ("gone.png", "no such file")]:
        assert any(name in e and words in e for e in errors), name
    assert all(e.startswith("digitlab predict: ") for e in errors)


def test_predict_all_good_exits_zero_and_flags_unsure(capsys, images, mlp_run):
    code, out, _ = run_cli(capsys, "predict", "--model", mlp_run, "--min-confidence", "0.99", images["ring.png"])
    assert code == 0 and "UNSURE" in out


def test_predict_json_and_csv(capsys, images, mlp_run):
    code, out, _ = run_cli(capsys, "predict", "--model", mlp_run, "--json", images["ring.png"], images["empty.png"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and rows[0]["digit"] is not None and len(rows[0]["top"]) == 3
    assert rows[1]["digit"] is None and "empty" in rows[1]["error"]
    code, out, _ = run_cli(capsys, "predict", "--model", mlp_run, "--csv", images["ring.png"])
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(table) == 1 and table[0]["file"] == str(images["ring.png"])
    assert float(table[0]["confidence"]) == pytest.approx(float(table[0]["p1"]))


def test_predict_show_writes_a_grid(capsys, images, mlp_run, tmp_path):
    grid = tmp_path / "grid.png"
    code, _, err = run_cli(capsys, "predict", "--model", mlp_run, "--show", grid, images["ring.png"], images["notes.png"])
    assert code == 1 and f"wrote {grid}" in err
    assert Image.open(grid).size[0] > 100


def test_predict_empty_folder_and_max_pixels(capsys, tmp_path, mlp_run, images):
    empty = tmp_path / "nothing"
    empty.mkdir()
    code, _, err = run_cli(capsys, "predict", "--model", mlp_run, empty)
    assert code == 1 and "holds no images" in err
    code, _, err = run_cli(capsys, "predict", "--model", mlp_run, "--max-pixels", "1000", images["ring.png"])
    assert code == 1 and "too large" in err and "limit 1,000" in err


def test_predict_without_a_model_names_the_fix(capsys, images):
    from digitlab.models.storage import pretrained_path

    if (pretrained_path() / "model.json").exists():
        pytest.skip("a pretrained model ships in this checkout")
    code, _, err = run_cli(capsys, "predict", images["ring.png"])
    assert code == 1 and "no pretrained model ships" in err and "--model" in err


def test_read_prints_the_number_and_draws_boxes(capsys, mlp_run, tmp_path):
    canvas = np.full((120, 400), 255, np.uint8)
    for x in (40, 160, 280):
        canvas[20:100, x : x + 60] = ring_digit(80, radius=0.3, width=0.1)[:, 10:70]
    src = tmp_path / "number.png"
    src.write_bytes(encode(Image.fromarray(canvas)))
    shown = tmp_path / "boxes.png"
    code, out, err = run_cli(capsys, "read", "--model", mlp_run, "--show", shown, src)
    assert code == 0 and "per digit:" in out and out.count(":") >= 4
    drawn = np.asarray(Image.open(shown).convert("RGB")).astype(int)
    assert Image.open(shown).size == (400, 120)
    assert ((np.abs(drawn[..., 0] - drawn[..., 1]) > 60)).sum() > 100  # coloured boxes were drawn
    code, out, _ = run_cli(capsys, "read", "--model", mlp_run, "--json", src)
    assert len(json.loads(out)["digits"]) == 3


def test_read_bad_input_and_show_with_many_images(capsys, mlp_run, images, tmp_path):
    code, out, err = run_cli(capsys, "read", "--model", mlp_run, images["truncated.jpg"], images["ring.png"])
    assert code == 1 and "truncated" in err and "ring.png" in out
    code, _, err = run_cli(capsys, "read", "--model", mlp_run, "--show", tmp_path / "x.png", images["ring.png"], images["ring.jpg"])
    assert code == 2 and "one IMAGE" in err


def test_export_then_predict_with_onnx(capsys, mlp_run, images, tmp_path):
    pytest.importorskip("onnxruntime")
    target = tmp_path / "model.onnx"
    code, out, _ = run_cli(capsys, "export", mlp_run, "--onnx", target)
    assert code == 0 and target.exists() and "parity with torch" in out and "MNIST test images" in out
    code, onnx_out, _ = run_cli(capsys, "predict", "--runtime", "onnx", "--model", target, "--json", images["ring.png"])
    code2, torch_out, _ = run_cli(capsys, "predict", "--model", mlp_run, "--json", images["ring.png"])
    a, b = json.loads(onnx_out), json.loads(torch_out)
    assert code == code2 == 0 and a["digit"] == b["digit"]
    assert np.abs(np.array(a["probabilities"]) - b["probabilities"]).max() < 1e-4
    code, _, err = run_cli(capsys, "export", "--onnx", target)
    assert code == 2 and "give a run folder" in err


def test_predict_on_several_digits_suggests_read(capsys, mlp_run, tmp_path):
    canvas = np.full((120, 400), 255, np.uint8)
    for x in (40, 160, 280):
        canvas[20:100, x : x + 60] = ring_digit(80, radius=0.3, width=0.1)[:, 10:70]
    number, one = tmp_path / "number.png", tmp_path / "one.png"
    number.write_bytes(encode(Image.fromarray(canvas)))
    one.write_bytes(encode(Image.fromarray(canvas[:, 20:140])))
    code, out, _ = run_cli(capsys, "predict", "--model", mlp_run, number, one)
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert code == 0
    assert f"digitlab read {number}" in lines[str(number)] and "digitlab read" not in lines[str(one)]
