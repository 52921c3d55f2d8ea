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


# -- int8 -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_mlp(mnist):
    """An mlp trained for two seconds on 3,000 MNIST images: confident enough that int8 agreement means
    something (an untrained net's near-uniform outputs flip under any rounding)."""
    import torch

    from digitlab.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("mlp")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(mnist.x_train[:3000].astype(np.float32) / 255).unsqueeze(1)
    y = torch.from_numpy(mnist.y_train[:3000].astype(np.int64))
    for _ in range(4):
        for i in range(0, 3000, 100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i : i + 100]), y[i : i + 100]).backward()
            opt.step()
    model.digitlab_meta = {"architecture": {"name": "mlp"}}
    return model.eval()


def test_int8_export_is_quantized_agrees_with_torch_and_keeps_metadata(trained_mlp, mnist, tmp_path):
    import onnx

    calibration = mnist.x_train[3000:3500].astype(np.float32) / 255
    fp32 = onnx_export.export_onnx(trained_mlp, tmp_path / "fp32.onnx", parity_n=300)
    result = onnx_export.export_onnx(trained_mlp, tmp_path / "int8.onnx", parity_n=300, quantize="int8",
                                     calibration=calibration)
    assert result["quantize"] == "int8" and result["agreement"] >= onnx_export.INT8_AGREEMENT
    assert result["max_abs_diff"] > fp32["max_abs_diff"]  # it really is a different (rounded) model
    proto = onnx.load(str(tmp_path / "int8.onnx"))
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert sum(int(np.prod(t.dims)) for t in int8_weights) >= 784 * 512  # dense1's weights are int8
    assert (tmp_path / "int8.onnx").stat().st_size < 0.4 * (tmp_path / "fp32.onnx").stat().st_size
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["digitlab.quantization"])["calibration_images"] == 500
    assert json.loads(props["digitlab.architecture"])["name"] == "mlp"
    x = mnist.x_test[:500].astype(np.float32) / 255
    probs = onnx_export.OnnxBackend(tmp_path / "int8.onnx")(x)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-3)
    assert (probs.argmax(1) == mnist.y_test[:500]).mean() > 0.85  # it learned and int8 kept it


def test_int8_export_that_disagrees_leaves_no_file(trained_mlp, mnist, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "INT8_AGREEMENT", 1.01)  # nothing can pass: the failure path
    with pytest.raises(ModelError, match="int8 parity check failed"):
        onnx_export.export_onnx(trained_mlp, tmp_path / "m.onnx", parity_n=100, quantize="int8",
                                calibration=mnist.x_train[:100].astype(np.float32) / 255)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_quantization_is_a_config_error(trained_mlp, tmp_path):
    from digitlab.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown quantization 'int4'"):
        onnx_export.export_onnx(trained_mlp, tmp_path / "m.onnx", quantize="int4")


def test_cli_export_int8(trained_mlp, tmp_path, capsys):
    from digitlab.cli.main import main
    from digitlab.models.storage import save_model

    run = tmp_path / "run"
    save_model(trained_mlp, run)
    out = tmp_path / "int8.onnx"
    assert main(["export", str(run), "--onnx", str(out), "--quantize", "int8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["quantize"] == "int8" and result["agreement"] >= onnx_export.INT8_AGREEMENT
    assert out.exists() and (tmp_path / "int8.onnx").stat().st_size < 500_000  # int8: a quarter of 1.6 MB
    with pytest.raises(SystemExit) as exc:  # argparse: an unknown choice, exit 2
        main(["export", str(run), "--onnx", str(tmp_path / "x.onnx"), "--quantize", "int4"])
    assert exc.value.code == 2 and not (tmp_path / "x.onnx").exists()
