"""Scoring a folder of labelled images (`digitlab evaluate --images`) and `read` on folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from digitlab.cli.main import main
from digitlab.errors import ConfigError
from digitlab.inference.folder import NO_PREFIX, list_image_folder, score_folder, source_of, summarise
from render import render_number

PER_SOURCE = 2  # clean digits per label and per source


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _dark_on_white(digit: np.ndarray, side: int = 84) -> Image.Image:
    return Image.fromarray(255 - digit).resize((side, side), Image.BICUBIC)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, mnist):
    """DIR/<label>/ with clean MNIST test digits from two sources (alice_, bob_), a number folder 2026/,
    a text file named .png (in 3/), a blank image (in 5/), a stray file and a folder that is no label."""
    root = tmp_path_factory.mktemp("labelled")
    for label in range(10):
        folder = root / str(label)
        folder.mkdir()
        rows = np.flatnonzero(mnist.y_test == label)[: 2 * PER_SOURCE]
        for k, row in enumerate(rows):
            source = "alice" if k < PER_SOURCE else "bob"
            _dark_on_white(mnist.x_test[row]).save(folder / f"{source}_{k}.png")
    (root / "3" / "alice_notes.png").write_text("not an image\n")
    Image.new("L", (64, 64), 255).save(root / "5" / "bob_blank.png")
    number = root / "2026"
    number.mkdir()
    digits = [mnist.x_test[np.flatnonzero(mnist.y_test == d)[5]] for d in (2, 0, 2, 6)]
    (number / "door.png").write_bytes(render_number(digits, np.random.default_rng(3)))
    (root / "README.txt").write_text("my digits\n")
    (root / "scans").mkdir()
    return root


def test_source_is_the_prefix_before_the_first_underscore():
    assert source_of("x/mhw32c_3.jpg") == "mhw32c"
    assert source_of("a_b_c.png") == "a"
    assert source_of("plain.png") == NO_PREFIX and source_of("_x.png") == NO_PREFIX


def test_listing_labels_sources_and_what_was_left_out(labelled):
    listing = list_image_folder(labelled)
    assert listing.labels == [str(d) for d in range(10)] + ["2026"]
    assert len(listing.images) == 10 * 2 * PER_SOURCE + 3
    assert [im.is_number for im in listing.images].count(True) == 1
    skipped = dict(listing.skipped)
    assert "label folder" in skipped[str(labelled / "README.txt")]
    assert "named by digits" in skipped[str(labelled / "scans")]


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp / "gone", "no such folder"),
    (lambda tmp: (tmp / "f.png").write_bytes(b"x") and tmp / "f.png", "a file, not a folder"),
    (lambda tmp: (tmp / "cats").mkdir() or tmp, "no labelled images"),
    (lambda tmp: (tmp / "7").mkdir() or tmp, "no labelled images"),
])
def test_a_bad_folder_is_one_clear_error(tmp_path, make, words):
    with pytest.raises(ConfigError, match=words) as info:
        list_image_folder(make(tmp_path))
    assert "\n" not in str(info.value)


def test_score_counts_every_file_once_and_bad_ones_as_wrong_with_their_reason(labelled, shipped):
    score = score_folder(shipped, list_image_folder(labelled), batch_size=7)  # several batches
    n = 10 * 2 * PER_SOURCE + 3
    assert score["n"] == n and score["right"] == n - 2 and score["accuracy"] == pytest.approx((n - 2) / n)
    assert score["unreadable"] == 1 and score["no_digit"] == 1
    wrong = {w["file"]: w for w in score["wrong"]}
    assert set(wrong) == {str(labelled / "3" / "alice_notes.png"), str(labelled / "5" / "bob_blank.png")}
    notes = wrong[str(labelled / "3" / "alice_notes.png")]
    assert notes["predicted"] is None and "not an image" in notes["reason"] and notes["true"] == "3"
    assert "no digit" in wrong[str(labelled / "5" / "bob_blank.png")]["reason"]
    assert score["per_class"]["3"] == {"n": 2 * PER_SOURCE + 1, "right": 2 * PER_SOURCE,
                                       "accuracy": pytest.approx(2 * PER_SOURCE / (2 * PER_SOURCE + 1))}
    assert score["per_class"]["2026"] == {"n": 1, "right": 1, "accuracy": 1.0}  # read as a number
    assert score["per_source"]["alice"]["n"] == 10 * PER_SOURCE + 1 and score["per_source"]["alice"]["right"] == 10 * PER_SOURCE
    assert score["per_source"]["bob"]["n"] == 10 * PER_SOURCE + 1
    assert score["per_source"][NO_PREFIX] == {"n": 1, "right": 1, "accuracy": 1.0}  # door.png
    assert {(c["true"], c["predicted"], c["count"]) for c in score["confusions"]} == {("3", None, 1), ("5", None, 1)}


def test_confusions_count_true_to_answered_most_frequent_first():
    from digitlab.inference.folder import Answer, LabelledImage

    def answer(label, predicted, name):
        return Answer(LabelledImage(f"{label}/{name}", label, source_of(name)), predicted, 0.9)

    answers = [answer("1", "7", "a_1.png"), answer("1", "7", "b_2.png"), answer("4", "9", "a_3.png"),
               answer("1", "1", "a_4.png"), answer("7", "7", "b_5.png")]
    s = summarise(answers)
    assert s["confusions"] == [{"true": "1", "predicted": "7", "count": 2}, {"true": "4", "predicted": "9", "count": 1}]
    assert s["per_class"]["1"] == {"n": 3, "right": 1, "accuracy": pytest.approx(1 / 3)}
    assert s["per_source"]["b"] == {"n": 2, "right": 1, "accuracy": 0.5}
    assert [w["file"] for w in s["wrong"]] == ["1/a_1.png", "1/b_2.png", "4/a_3.png"]


def test_evaluate_images_text_and_json(capsys, labelled):
    code, out, err = run_cli(capsys, "evaluate", "--images", labelled)
    assert code == 0 and err == ""
    assert "Accuracy: " in out and "1 unreadable, 1 with no digit found" in out
    assert "Per source" in out and "alice:" in out and "3 -> no answer: 1" in out
    assert "alice_notes.png: true 3, no answer:" in out
    code, out, _ = run_cli(capsys, "evaluate", "--images", labelled, "--json")
    score = json.loads(out)
    assert code == 0 and score["n"] == 10 * 2 * PER_SOURCE + 3 and score["per_class"]["2026"]["right"] == 1
    assert {"per_class", "per_source", "confusions", "wrong", "skipped", "unreadable", "no_digit"} <= set(score)


def test_evaluate_images_with_an_onnx_model_and_a_run_folder(capsys, labelled, tmp_path, mlp_run):
    code, _, _ = run_cli(capsys, "export", "--pretrained", "--onnx", tmp_path / "m.onnx")
    assert code == 0
    code, out, _ = run_cli(capsys, "evaluate", "--images", labelled, "--model", tmp_path / "m.onnx", "--json")
    assert code == 0 and json.loads(out)["right"] == 10 * 2 * PER_SOURCE + 1
    code, out, _ = run_cli(capsys, "evaluate", mlp_run, "--images", labelled, "--json")
    assert code == 0 and json.loads(out)["model"] == "mlp"


@pytest.mark.parametrize("argv, words", [
    (["--images", "{missing}"], "no such folder"),
    (["--images", "{root}", "--tta", "shift4"], "--tta applies to the test set"),
    (["--images", "{root}", "--pretrained", "--model", "x"], "name one model"),
    ([], "give a run folder"),
])
def test_evaluate_bad_arguments_are_one_line(capsys, labelled, tmp_path, argv, words):
    argv = [a.format(missing=tmp_path / "missing", root=labelled) for a in argv]
    code, out, err = run_cli(capsys, "evaluate", *argv)
    assert code == 2 and out == "" and words in err and len(err.strip().splitlines()) == 1


def test_read_takes_folders_and_recursive(capsys, tmp_path, mnist):
    top = tmp_path / "numbers"
    (top / "more").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, digits in (("a.png", (4, 2)), ("more/b.png", (7, 0, 1))):
        images = [mnist.x_test[np.flatnonzero(mnist.y_test == d)[1]] for d in digits]
        (top / name).write_bytes(render_number(images, rng))
    code, out, _ = run_cli(capsys, "read", "--json", top)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["number"] for r in rows] == ["42"]
    code, out, _ = run_cli(capsys, "read", "--json", "--recursive", top)
    assert code == 0 and [json.loads(line)["number"] for line in out.splitlines()] == ["42", "701"]
    code, out, err = run_cli(capsys, "read", top / "more", tmp_path / "gone", tmp_path / "numbers" / "a.png")
    assert code == 1 and out.count("\n") == 2 and "gone: no such file or folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(capsys, "read", empty)
    assert code == 1 and "holds no images" in err and "--recursive" in err


def test_read_show_needs_one_image_after_folders_are_expanded(capsys, labelled, tmp_path):
    code, _, err = run_cli(capsys, "read", "--show", tmp_path / "o.png", labelled / "7")
    assert code == 2 and "--show draws one image" in err and not (tmp_path / "o.png").exists()


def test_read_answers_what_predict_answers_on_single_digits(capsys, labelled):
    files = sorted(str(p) for p in labelled.glob("[0-9]/*_[0-9].png"))
    _, out, _ = run_cli(capsys, "predict", "--json", *files)
    predicted = {r["source"]: r["digit"] for r in map(json.loads, out.splitlines())}
    _, out, _ = run_cli(capsys, "read", "--json", *files)
    read = {r["source"]: r["number"] for r in map(json.loads, out.splitlines())}
    assert len(read) == len(files) == 10 * 2 * PER_SOURCE
    assert {f: str(d) for f, d in predicted.items()} == read
