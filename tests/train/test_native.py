"""The native kernels of the fused mlp step: built once and cached, the same numbers as torch, and a clean
fallback to the torch version when they cannot be built."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from digitlab.models.registry import build_model
from digitlab.train import native
from digitlab.train.config import TrainConfig
from digitlab.train.fused_mlp import FusedMLPStep
from digitlab.train.loop import fit, to_input_tensor
from digitlab.train.rmsprop import KerasRMSprop


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No kernels loaded in this process yet, and an empty cache."""
    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native, "_failed", {})
    monkeypatch.setenv("DIGITLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    monkeypatch.delenv("CC", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def kernels():
    found = native.mlp_kernels()
    assert found is not None, native.status()  # this machine has a C compiler: fail rather than skip
    return found


def test_the_kernels_are_built_once_then_loaded_from_the_cache(fresh, monkeypatch):
    first = native.mlp_kernels()
    assert first is not None, native.status()
    assert first.build_seconds > 0 and "built in" in native.status()
    assert first.path.parent == fresh / "kernels" and first.path.exists()
    assert [p.name for p in first.path.parent.iterdir()] == [first.path.name]  # no temporary file left
    assert "-fopenmp" in first.flags and "-march=native" in first.flags

    monkeypatch.setattr(native, "_loaded", None)  # a new process: the library is on disk
    built = []
    monkeypatch.setattr(native, "_build", lambda *args: built.append(args))
    second = native.mlp_kernels()
    assert second.path == first.path and second.build_seconds == 0.0 and not built
    assert "cached" in native.status()

    # A damaged library (say, a disk that filled) is rebuilt, not fatal. In a new process: this one has
    # the library mapped, and dlopen would hand back the loaded one by its name.
    first.path.unlink()
    first.path.write_bytes(b"half a library")
    probe = "from digitlab.train import native; k = native.mlp_kernels(); print(k.build_seconds, k.path)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DIGITLAB_CACHE_DIR": str(fresh)})
    seconds, path = done.stdout.split()
    assert float(seconds) > 0 and path == str(first.path) and first.path.stat().st_size > 1000


def test_a_failing_compiler_or_the_switch_falls_back_to_the_torch_step(fresh, monkeypatch, tiny_digits):
    monkeypatch.setenv("CC", "/bin/false")
    assert native.mlp_kernels() is None
    assert "failed" in native.status() and "torch ops" in native.status()
    assert not any((fresh / "kernels").iterdir())  # nothing half-written
    builds, build = [], native._build
    monkeypatch.setattr(native, "_build", lambda *args: builds.append(args))
    assert native.mlp_kernels() is None and "failed" in native.status() and not builds  # not retried
    monkeypatch.setattr(native, "_build", build)

    x, y = tiny_digits[0][:128], tiny_digits[1][:128]
    model = build_model("mlp", hidden=16)
    optimizer = KerasRMSprop(model.parameters())
    step = FusedMLPStep(model, optimizer, TrainConfig(batch_size=64), bf16=False, x=to_input_tensor(x))
    assert step.kind == "torch"
    with pytest.raises(RuntimeError, match="native kernels are not available"):
        FusedMLPStep(model, optimizer, TrainConfig(batch_size=64), bf16=False, x=to_input_tensor(x), native=True)
    history = fit(model, x, y, TrainConfig(epochs=2, batch_size=64), verbose=False)
    assert history["loss"][1] < history["loss"][0]  # still trains

    monkeypatch.delenv("CC")
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.mlp_kernels() is None and "DIGITLAB_NATIVE=0" in native.status()


def test_a_run_says_once_why_its_mlp_trains_without_the_kernels(fresh, monkeypatch, capsys, tiny_digits):
    x, y = tiny_digits[0][:128], tiny_digits[1][:128]
    monkeypatch.setenv("CC", "/bin/false")
    fit(build_model("mlp", hidden=16), x, y, TrainConfig(epochs=2, batch_size=64), verbose=True)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "/bin/false failed" in notes[0] and "1.4x slower" in notes[0]

    monkeypatch.setenv(native.ENV_SWITCH, "0")  # turned off on purpose: nothing to say
    fit(build_model("mlp", hidden=16), x, y, TrainConfig(epochs=1, batch_size=64), verbose=True)
    monkeypatch.delenv(native.ENV_SWITCH)
    monkeypatch.delenv("CC")
    fit(build_model("mlp", hidden=16), x, y, TrainConfig(epochs=1, batch_size=64), verbose=True)  # builds
    assert "note:" not in capsys.readouterr().err


def test_widths_the_kernels_do_not_take_use_the_torch_step(kernels, tiny_digits):
    assert kernels.supports(512, 10) and kernels.supports(48, 3)
    assert not kernels.supports(40, 10) and not kernels.supports(512, 17)
    x = to_input_tensor(tiny_digits[0][:64])
    model = build_model("mlp", hidden=40)
    step = FusedMLPStep(model, KerasRMSprop(model.parameters()), TrainConfig(batch_size=64), bf16=False, x=x)
    assert step.kind == "torch"


def _reference_head(h, w2, b2, target):
    """What the head computes, in torch float64: ReLU, logits, (softmax - target) / m, and the gradients."""
    hr = h.double().relu()
    logits = hr @ w2.double().T + b2.double()
    d = (logits.softmax(1) - target.double()) / len(h)
    return logits, d.T @ hr, d.sum(0), (d @ w2.double()) * (hr > 0)


def _run_head(kernels, h, w2, b2, target, threads=2):
    m, hidden = h.shape
    classes = len(b2)
    logits, g2, gb2 = torch.empty(m, classes), torch.empty(classes, hidden), torch.empty(classes)
    dh, scratch, loss = torch.empty_like(h), torch.empty(m * (hidden + classes)), torch.empty(m)
    kernels.head(m, hidden, classes, int(h.dtype == torch.bfloat16), h.data_ptr(), w2.data_ptr(), b2.data_ptr(),
                 target.data_ptr(), logits.data_ptr(), loss.data_ptr(), g2.data_ptr(), gb2.data_ptr(), dh.data_ptr(),
                 scratch.data_ptr(), scratch[m * hidden :].data_ptr(), threads)
    return logits, g2, gb2, dh, loss


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("m, hidden, classes", [(128, 512, 10), (37, 48, 3), (5, 16, 16)])
def test_the_head_computes_what_torch_computes(kernels, dtype, m, hidden, classes, threads):
    gen = torch.Generator().manual_seed(m)
    h = torch.randn(m, hidden, generator=gen).to(dtype)
    w2, b2 = torch.randn(classes, hidden, generator=gen) * 0.1, torch.randn(classes, generator=gen)
    target = torch.softmax(torch.randn(m, classes, generator=gen) * 3, 1)  # smoothed targets, not only one-hot
    h_before = h.clone()
    logits, g2, gb2, dh, loss = _run_head(kernels, h, w2, b2, target, threads)
    ref_logits, ref_g2, ref_gb2, ref_dh = _reference_head(h, w2, b2, target)
    ref_loss = -(ref_logits.log_softmax(1) * target.double()).sum(1)

    assert torch.equal(h, h_before)  # the pre-activations are read, not changed
    assert torch.allclose(logits.double(), ref_logits, rtol=1e-5, atol=1e-5)
    assert torch.allclose(loss.double(), ref_loss, rtol=1e-5, atol=1e-6)
    assert torch.allclose(g2.double(), ref_g2, rtol=1e-4, atol=1e-7)
    assert torch.allclose(gb2.double(), ref_gb2, rtol=1e-4, atol=1e-7)
    assert dh.dtype == dtype
    if dtype == torch.bfloat16:  # rounded once, to nearest: within half a bf16 step of the exact value
        assert torch.all((dh.double() - ref_dh).abs() <= ref_dh.abs() * 2**-8 + 1e-9)  # + float32 sums
    else:
        assert torch.allclose(dh.double(), ref_dh, rtol=1e-4, atol=1e-8)
    assert torch.all(dh[h <= 0] == 0) and torch.any(dh != 0)


def test_a_nan_activation_shows_in_the_logits(kernels):
    """ReLU passes NaN as torch's does, so a diverging run shows NaN in its loss instead of hiding it."""
    h = torch.randn(4, 16)
    h[2, 5] = float("nan")
    logits, *_, loss = _run_head(kernels, h, torch.randn(10, 16), torch.zeros(10), torch.eye(10)[:4])
    assert torch.isnan(logits[2]).all() and not torch.isnan(logits[[0, 1, 3]]).any()
    assert torch.isnan(loss[2]) and not torch.isnan(loss[[0, 1, 3]]).any()


def _rmsprop(kernels, g1, g_rest, w, v, lr, rho, eps, wd, with_copy=True, threads=2):
    cw = torch.empty(len(w), dtype=torch.bfloat16)
    kernels.rmsprop(len(g1), len(w), int(g1.dtype == torch.bfloat16), g1.data_ptr(), g_rest.data_ptr(),
                    w.data_ptr(), v.data_ptr(), cw.data_ptr() if with_copy else None, lr, rho, eps, wd, threads)
    return cw


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_the_update_is_keras_rmsprop_and_writes_the_bf16_copy(kernels, dtype, wd, threads):
    gen = torch.Generator().manual_seed(1)
    n1, n = 4096 * 3 + 48, 4096 * 3 + 48 + 530  # blocks, a part block, and a layer 2 that is not 16-aligned
    w, v = torch.randn(n, generator=gen), torch.rand(n, generator=gen) * 1e-3
    v[:7] = 0.0  # a fresh state, where eps matters
    g1, g_rest = (torch.randn(n1, generator=gen) * 1e-2).to(dtype), torch.randn(n - n1, generator=gen) * 1e-2
    lr, rho, eps = 1e-3, 0.9, 1e-7
    g = torch.cat([g1.double(), g_rest.double()]) + wd * w.double()
    want_v = rho * v.double() + (1 - rho) * g**2
    want_w = w.double() - lr * g / torch.sqrt(want_v + eps)

    cw = _rmsprop(kernels, g1, g_rest, w, v, lr, rho, eps, wd, threads=threads)
    assert torch.allclose(v.double(), want_v, rtol=1e-6, atol=1e-12)
    assert torch.allclose(w.double(), want_w, rtol=1e-6, atol=1e-9)
    assert torch.equal(cw, w.to(torch.bfloat16))  # the products' copy is torch's own rounding of the new weights


def test_the_bf16_copy_rounds_exactly_as_torch_does(kernels):
    """lr = 0 and zero gradients leave w as it is, so the copy is the rounding alone, edge cases included."""
    w = torch.tensor([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -(1.0 + 2**-8), 1.0 + 2**-8 + 2**-20, 3.4028235e38,
                      -3.4028235e38, float("inf"), float("-inf"), 1e-40, -1e-45, 0.0, -0.0, 65504.0, 1 / 3, -2.5e-5])
    w = torch.cat([w, torch.randn(4096 * 2 - len(w)) * 10 ** torch.randint(-8, 8, (4096 * 2 - len(w),))])
    v = torch.zeros(len(w))
    cw = _rmsprop(kernels, torch.zeros(4096 * 2 - 16), torch.zeros(16), w.clone(), v, 0.0, 0.9, 1e-7, 0.0)
    assert torch.equal(cw.view(torch.int16), w.to(torch.bfloat16).view(torch.int16))
    nan = torch.full((32,), float("nan"))
    cw = _rmsprop(kernels, torch.zeros(16), torch.zeros(16), nan, torch.zeros(32), 0.0, 0.9, 1e-7, 0.0)
    assert torch.isnan(cw.float()).all()  # never rounded into an infinity


def test_without_a_copy_the_update_writes_only_the_weights(kernels):
    w, v = torch.ones(64), torch.zeros(64)
    _rmsprop(kernels, torch.ones(48), torch.ones(16), w, v, 0.1, 0.5, 1e-7, 0.0, with_copy=False)
    assert torch.allclose(v, torch.tensor(0.5)) and torch.allclose(w, torch.tensor(1 - 0.1 / 0.5**0.5))


def _train_in_forked_child(queue):
    import torch

    torch.set_num_threads(1)  # as the cross-validation pool's forked workers run
    x = torch.randint(0, 256, (256, 28, 28), dtype=torch.uint8).numpy()
    y = torch.randint(0, 10, (256,)).numpy()
    history = fit(build_model("mlp", hidden=32), x, y, TrainConfig(epochs=1, batch_size=64), verbose=False)
    queue.put(history["loss"][0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_one_thread_worker_trains_through_the_kernels(kernels):
    """libgomp's thread pool does not survive fork: a child that woke it would hang. With one thread the
    kernels never enter a parallel region, so a forked worker trains after its parent used two threads."""
    import multiprocessing

    h = torch.randn(64, 48)
    _run_head(kernels, h, torch.randn(10, 48), torch.zeros(10), torch.eye(10)[torch.arange(64) % 10], threads=2)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_train_in_forked_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked worker hung")
    assert child.exitcode == 0 and math.isfinite(queue.get(timeout=5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_gather_takes_the_rows_live_pixels_and_a_bias_column(kernels, dtype, threads):
    from digitlab.train.fused_mlp import _runs

    gen = torch.Generator().manual_seed(2)
    pixels = torch.rand(300, 784, generator=gen).to(dtype)
    live = torch.ones(784, dtype=torch.bool)
    live[:60], live[100:130], live[-5:], live[400] = False, False, False, False
    columns = live.nonzero().squeeze(1)
    runs = _runs(columns.tolist())
    assert [r[2] for r in runs] == [40, 270, 378]  # 60-99, 130-399, 401-778
    rows = torch.randperm(300, generator=gen)[:257]  # a shuffled subset of the rows
    out = torch.full((257, len(columns) + 1), -7.0, dtype=dtype)
    table = torch.tensor(runs, dtype=torch.int32)
    kernels.gather(len(rows), rows.data_ptr(), pixels.data_ptr(), 784, pixels.element_size(), table.data_ptr(),
                   len(runs), out.data_ptr(), out.shape[1], threads)
    assert torch.equal(out[:, :-1], pixels[rows][:, columns]) and torch.all(out[:, -1] == 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("threads", [1, 2])
def test_live_columns_are_those_not_zero_in_every_row(kernels, dtype, threads):
    pixels = torch.zeros(1001, 784, dtype=dtype)
    pixels[5, 3], pixels[1000, 700], pixels[17, 9], pixels[:, 400] = 0.5, 1e-3, -2.0, 1.0
    pixels[3, 12] = -0.0  # a negative zero is blank
    live = torch.empty(784, dtype=torch.uint8)
    assert kernels.live_columns(len(pixels), 784, pixels.element_size(), pixels.data_ptr(), live.data_ptr(), threads)
    assert live.nonzero().squeeze(1).tolist() == [3, 9, 400, 700]
    assert not kernels.live_columns(1, 5000, 4, torch.zeros(5000).data_ptr(), live.data_ptr(), threads)  # too wide


def test_without_openmp_or_cpu_flags_the_kernels_still_compute_the_same(fresh, monkeypatch):
    """The last flag sets tried (a compiler without OpenMP, a CPU it cannot target) build one-thread,
    generic-vector code: slower, the same numbers."""
    monkeypatch.setattr(native, "FLAG_SETS", (["-O3", "-fno-math-errno"],))
    plain = native.mlp_kernels()
    assert plain is not None and plain.flags == ["-O3", "-fno-math-errno"], native.status()
    gen = torch.Generator().manual_seed(5)
    h, w2, b2 = torch.randn(37, 48, generator=gen).bfloat16(), torch.randn(10, 48, generator=gen), torch.zeros(10)
    target = torch.eye(10)[torch.arange(37) % 10]
    logits, g2, gb2, dh, loss = _run_head(plain, h, w2, b2, target, threads=2)
    ref_logits, ref_g2, ref_gb2, ref_dh = _reference_head(h, w2, b2, target)
    assert torch.allclose(logits.double(), ref_logits, rtol=1e-5, atol=1e-5)
    assert torch.allclose(g2.double(), ref_g2, rtol=1e-4, atol=1e-7)
    assert torch.all((dh.double() - ref_dh).abs() <= ref_dh.abs() * 2**-8 + 1e-9)
    w, v = torch.ones(64), torch.zeros(64)
    _rmsprop(plain, torch.ones(48), torch.ones(16), w, v, 0.1, 0.5, 1e-7, 0.0, threads=2)
    assert torch.allclose(w, torch.tensor(1 - 0.1 / 0.5**0.5))
