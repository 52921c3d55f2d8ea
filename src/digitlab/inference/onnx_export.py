"""Export a digitlab model to ONNX (softmax probabilities out, dynamic batch, metadata inside), check it
against torch, and run it with ONNX Runtime.

The exported graph is `softmax(model(image))`: input `image` float32 (N, 1, 28, 28) in [0, 1] (the
MNIST polarity: white ink on black), output `probabilities` float32 (N, C). The metadata
(`metadata_props`) holds `digitlab.classes` and `digitlab.preprocessing` (JSON), `digitlab.version`,
`digitlab.architecture`, `digitlab.metrics`, `digitlab.output` = "probabilities" and, for a model
calibrated with `digitlab calibrate`, `digitlab.temperature_scaling` (the graph's probabilities are the
raw ones; apply the temperature as digitlab.evaluate.temperature.apply_temperature does).

`quantize="int8"` writes the same graph with int8 weights and uint8 activations (ONNX Runtime static
quantization, calibrated on MNIST training images): 2-2.5x the images/s of float32 for the shipped CNN
on AVX-512 VNNI CPUs, at the same test accuracy. Its check is top-1 agreement with torch, since int8
probabilities differ from float32 ones by more than PARITY_TOLERANCE by design.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from digitlab import __version__
from digitlab.data.dataset import load_dataset
from digitlab.errors import ConfigError, DataError, ModelError, require
from digitlab.files import atomic_path

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-4  # max |softmax_torch - softmax_onnx|
QUANTIZATIONS = ("int8",)
CALIBRATION_IMAGES = 1000  # MNIST training images (seeded draw) that set the int8 activation ranges
INT8_AGREEMENT = 0.995     # int8: top-1 agreement with torch on the parity images, at least


def parity_images(n: int = PARITY_IMAGES, require_mnist: bool = False) -> tuple[np.ndarray, str]:
    """(float32 (n, 28, 28) in [0, 1], description): MNIST test images, or seeded random ones
    (with a description that says so) when MNIST is not available locally and not `require_mnist`."""
    try:
        data = load_dataset("mnist", download=False)
        return data.x_test[:n].astype(np.float32) / 255.0, f"{n} MNIST test images"
    except DataError:
        if require_mnist:
            raise
        rng = np.random.default_rng(0)
        return rng.random((n, 28, 28), dtype=np.float32), (
            f"{n} random images (MNIST is not available locally; set DIGITLAB_DATA_DIR or run "
            "`digitlab data download` for a check on real digits)"
        )


def export_onnx(model, path: str | Path, *, check: bool = True, parity_n: int = PARITY_IMAGES,
                quantize: str | None = None, calibration: np.ndarray | None = None) -> dict:
    """Write `model` (a digitlab torch model, as from load_model) to `path` atomically.

    With `check`, the file is compared with torch on `parity_n` images before it replaces `path`;
    a max abs softmax difference of PARITY_TOLERANCE or more raises ModelError and leaves no file.
    quantize="int8": static int8 (see the module docstring); `calibration` float32 (N, 28, 28) in
    [0, 1] (default: CALIBRATION_IMAGES MNIST training images). Its check instead requires top-1
    agreement with torch of INT8_AGREEMENT on the parity images (MNIST test images: random ones
    would say nothing about a calibrated model).
    Returns {"path", "max_abs_diff", "parity_images", "opset"} (+ "quantize", "agreement" for int8).
    """
    require("onnx", "onnx")
    require("onnxruntime", "onnx")
    import onnx  # lazy: the optional [onnx] extra

    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}: choose {', '.join(QUANTIZATIONS)}")
    if quantize and calibration is None:
        calibration = calibration_images()

    meta = getattr(model, "digitlab_meta", {}) or {}
    wrapped = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)).eval().cpu()
    example = torch.zeros(2, 1, 28, 28)
    quiet = logging.getLogger("torch.onnx")  # it logs a warning per torchvision op it cannot register
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                wrapped, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False,
            )
        except Exception as exc:  # the exporter raises many types; the user needs one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"ONNX export failed: {first}") from None
        finally:
            quiet.setLevel(level)
    proto = program.model_proto
    props = {
        "digitlab.version": __version__,
        "digitlab.output": OUTPUT_NAME,
        "digitlab.classes": json.dumps(meta.get("classes") or [str(i) for i in range(10)]),
        "digitlab.preprocessing": json.dumps(meta.get("preprocessing") or {}),
        "digitlab.architecture": json.dumps(meta.get("architecture") or {}),
        "digitlab.metrics": json.dumps(_scalar_metrics(meta.get("metrics") or {})),
    }
    if meta.get("temperature_scaling"):
        # The graph outputs the raw probabilities; a runtime applies the temperature (Recognizer does).
        props["digitlab.temperature_scaling"] = json.dumps(
            {k: meta["temperature_scaling"].get(k) for k in ("temperature", "fitted_on")})
    result = {"path": str(path), "opset": int(max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")))}
    if quantize:
        props["digitlab.quantization"] = json.dumps(
            {"scheme": quantize, "weights": "int8 per channel", "activations": "uint8",
             "calibration_images": len(calibration)})
        proto = quantize_int8(proto, calibration)
        result["quantize"] = quantize
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
        if check and quantize:
            x, what = parity_images(parity_n, require_mnist=True)
            diff, agreement = max_abs_diff(wrapped, str(tmp), x, with_agreement=True)
            result.update(max_abs_diff=diff, agreement=agreement, parity_images=what)
            if not agreement >= INT8_AGREEMENT:
                raise ModelError(
                    f"int8 parity check failed: top-1 agreement with torch {agreement:.4f} < {INT8_AGREEMENT} "
                    f"on {what}; the file was not written (export without --quantize)"
                )
        elif check:
            x, what = parity_images(parity_n)
            diff = max_abs_diff(wrapped, str(tmp), x)
            result.update(max_abs_diff=diff, parity_images=what)
            if not diff < PARITY_TOLERANCE:
                raise ModelError(
                    f"ONNX parity check failed: max |softmax difference| {diff:.2e} >= {PARITY_TOLERANCE:g} "
                    f"on {what}; the file was not written"
                )
    return result


def _scalar_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}


def max_abs_diff(wrapped_torch, onnx_path: str, x28: np.ndarray, batch: int = 500, with_agreement: bool = False):
    """Max abs difference between torch's and ONNX Runtime's softmax on (N, 28, 28) images; with
    `with_agreement`, (difference, fraction of images where both give the same top class)."""
    session = OnnxBackend(onnx_path)
    worst, same = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x28), batch):
            xb = np.ascontiguousarray(x28[i : i + batch], dtype=np.float32)
            expected, got = wrapped_torch(torch.from_numpy(xb).unsqueeze(1)).numpy(), session(xb)
            worst = max(worst, float(np.abs(expected - got).max()))
            same += int((expected.argmax(1) == got.argmax(1)).sum())
    return (worst, same / max(1, len(x28))) if with_agreement else worst


def calibration_images(n: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """float32 (n, 28, 28) in [0, 1]: a seeded draw of MNIST training images (never test images)."""
    try:
        data = load_dataset("mnist", download=False)
    except DataError as exc:
        raise DataError(f"int8 calibration needs the MNIST training images: {exc}") from None
    index = np.random.default_rng(seed).choice(len(data.x_train), min(n, len(data.x_train)), replace=False)
    return data.x_train[np.sort(index)].astype(np.float32) / 255.0


def quantize_int8(proto, calibration: np.ndarray, batch: int = 100):
    """A float32 ModelProto -> its static int8 version (ONNX Runtime, QDQ format): int8 per-channel
    weights, uint8 activations with min/max ranges measured on `calibration` (N, 28, 28); the last
    layer and the softmax stay float32."""
    import onnx  # lazy: the optional [onnx] extra
    from onnxruntime import quantization as q  # lazy: the optional [onnx] extra

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter(range(0, len(calibration), batch))

        def get_next(self):
            i = next(self.batches, None)
            return None if i is None else {INPUT_NAME: np.ascontiguousarray(calibration[i : i + batch, None], np.float32)}

    quiet = logging.getLogger()  # onnxruntime.quantization logs advice through the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="digitlab-int8-") as folder, contextlib.redirect_stdout(io.StringIO()):
            fp32, pre, int8 = (str(Path(folder) / name) for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
            onnx.save(proto, fp32)
            q.quant_pre_process(fp32, pre, skip_symbolic_shape=True)  # shape inference, BN folding
            # The classifier layer and the softmax stay float: uint8 logits tie close classes (and
            # the last layer is a tiny part of the work).
            nodes = onnx.load(pre).graph.node
            softmax_inputs = {i for n in nodes if n.op_type == "Softmax" for i in n.input}
            float_nodes = [n.name for n in nodes if n.op_type == "Softmax" or set(n.output) & softmax_inputs]
            q.quantize_static(pre, int8, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                              calibrate_method=q.CalibrationMethod.MinMax, nodes_to_exclude=float_nodes)
            return onnx.load(int8)
    except Exception as exc:  # onnxruntime.quantization raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"int8 quantization failed: {first}") from None
    finally:
        quiet.setLevel(level)


class OnnxBackend:
    """Probabilities from an ONNX file through ONNX Runtime: (N, 28, 28) float32 -> (N, C) float32."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = require("onnxruntime", "onnx")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load ONNX model {path}: {first}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = props
        self.classes = json.loads(props.get("digitlab.classes", "null")) or [str(i) for i in range(10)]
        self.outputs_probabilities = props.get("digitlab.output", OUTPUT_NAME) == OUTPUT_NAME

    def __call__(self, x28: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x28, dtype=np.float32).reshape(-1, 1, 28, 28)
        out = self.session.run(None, {self.input_name: x})[0]
        if not self.outputs_probabilities:  # a foreign ONNX file giving logits
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out.astype(np.float32, copy=False)


def exported_session(model) -> OnnxBackend:
    """Export `model` to a temporary file (parity-checked), load it, and delete the file."""
    with tempfile.TemporaryDirectory(prefix="digitlab-onnx-") as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(model, path, check=True)
        return OnnxBackend(path)
