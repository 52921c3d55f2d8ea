"""ONNX export: metadata, dynamic batch, parity with torch, atomic writing, the ONNX Runtime backend."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from digitlab.errors import ModelError  # noqa: E402
from digitlab.inference import onnx_export  # noqa: E402
from digitlab.inference.recognizer import Recognizer  # noqa: E402
from digitlab.models.storage import load_model  # noqa: E402


@pytest.fixture(scope="module")
def exported(mlp_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    result = onnx_export.export_onnx(load_model(mlp_run), path, parity_n=200)
    return path, result


def test_export_writes_metadata_and_passes_parity(exported):
    import onnx

    path, result = exported
    assert result["max_abs_diff"] < onnx_export.PARITY_TOLERANCE and result["path"] == str(path)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["digitlab.classes"]) == [str(i) for i in range(10)]
    assert json.loads(props["digitlab.preprocessing"])["input_shape"] == [1, 28, 28]
    assert props["digitlab.output"] == "probabilities" and props["digitlab.version"]
    assert json.loads(props["digitlab.architecture"])["name"] == "mlp"


def test_dynamic_batch_gives_probabilities(exported):
    backend = onnx_export.OnnxBackend(exported[0])
    for n in (1, 7, 300):
        probs = backend(np.random.default_rng(n).random((n, 28, 28), dtype=np.float32))
        assert probs.shape == (n, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_onnx_runtime_from_a_run_folder_exports_on_the_fly_and_matches_torch(mlp_run, images):
    via_onnx = Recognizer.load(mlp_run, runtime="onnx")  # the .onnx file written by `export` is tested in the CLI tests
    assert via_onnx.info["runtime"] == "onnx" and via_onnx.info["architecture"] == "mlp"
    via_torch = Recognizer.load(mlp_run)
    a, b = via_onnx.predict_one(images["ring.png"]), via_torch.predict_one(images["ring.png"])
    assert a.digit == b.digit and np.abs(np.array(a.probabilities) - b.probabilities).max() < 1e-4


def test_a_failed_parity_check_leaves_no_file(mlp_run, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "PARITY_TOLERANCE", 0.0)  # nothing can pass: the failure path
    target = tmp_path / "model.onnx"
    with pytest.raises(ModelError, match="parity check failed"):
        onnx_export.export_onnx(load_model(mlp_run), target, parity_n=50)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_onnx_file_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        Recognizer.load(bad)
