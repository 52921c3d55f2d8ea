"""Bench: the article's 5 epochs of the mlp (rmsprop, batch 128) — digitlab vs a plain PyTorch loop.

Goal: digitlab's 5 epochs take at most 1/5 of Keras's time on the same machine (Keras 3.15 on TensorFlow
2.21 takes about 11 s on a quiet 2-core machine with 2 threads, so about 2.2 s). The baseline measured in this run is the
same network and optimizer in a plain PyTorch loop written the way a user would write it (DataLoader over a
TensorDataset, per-batch `.item()`). With `--keras-python PATH` (a Python with TensorFlow and Keras, see
bench/keras_reference.py) the article's Keras code is timed on this machine too, and the goal is
checked against that measurement instead of the 11 s reference.

digitlab trains with its defaults: the fused mlp step (digitlab.train.fused_mlp) with its native kernels
(digitlab.train.native, built once per machine before the timed runs) and, on a CPU with bf16 hardware
(AVX-512 BF16 or AMX), bf16 matrix products with float32 weights and optimizer. The fused step on torch
ops alone (as on a machine without a C compiler), the general autograd loop (fused=False) and the
float32-only time are printed too.
Wall time on a shared 2-core machine swings with the load, so the process CPU time of each run is
printed beside it (with 1 thread, `--threads 1`, CPU time is close to what a quiet machine gives).

    DIGITLAB_DATA_DIR=../shared/data python bench/seed_mlp.py [--repeats 1] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import _common  # puts src/ on the path; shared setup and baseline loop


# Keras 3.15 (TensorFlow 2.21 CPU) on the article's 5 epochs, 2 threads, quiet 2-core Xeon: 11.2 s wall
# (`python bench/keras_reference.py fit --data-dir DIR/mnist --threads 2`); used when Keras is not at hand.
KERAS_REFERENCE_S = 11.0


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def digitlab_run(data, seed: int, cpu_amp=None, fused=True, native=True) -> tuple[float, float, float, float]:
    """digitlab's fit; native=False runs the fused step's torch version (as without a C compiler)."""
    import os

    import digitlab as dl
    from digitlab.train.device import seed_everything
    from digitlab.train.native import ENV_SWITCH

    if not native:
        os.environ[ENV_SWITCH] = "0"
    try:
        return _digitlab_fit(dl, data, seed, cpu_amp, fused, seed_everything)
    finally:
        os.environ.pop(ENV_SWITCH, None)


def _digitlab_fit(dl, data, seed, cpu_amp, fused, seed_everything):
    seed_everything(seed)
    model = dl.build_model("mlp")
    config = dl.TrainConfig.from_flat(epochs=5, batch_size=128, seed=seed, cpu_amp=cpu_amp, fused=fused)
    with Clock() as clock:
        history = dl.fit(model, data.x_train, data.y_train, config, verbose=False)
    test = dl.evaluate(model, data.x_test, data.y_test)["accuracy"]
    return clock.wall, clock.cpu, history.last("accuracy"), test


def plain_pytorch_run(data, seed: int) -> tuple[float, float, float, float]:
    """What a user writes after reading the PyTorch tutorials."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    x = torch.tensor(data.x_train, dtype=torch.float32).reshape(-1, 784) / 255.0
    y = torch.tensor(data.y_train)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)
    with Clock() as clock:
        for _epoch in range(5):
            _, train_acc = _common.plain_pytorch_epoch(model, opt, loss_fn, loader)
    with torch.no_grad():
        xt = torch.tensor(data.x_test, dtype=torch.float32).reshape(-1, 784) / 255.0
        test_acc = (model(xt).argmax(1) == torch.tensor(data.y_test)).float().mean().item()
    return clock.wall, clock.cpu, train_acc, test_acc


def matmul_floor(steps: int, bf16: bool, repeats: int = 300) -> float:
    """Seconds that the matrix products of `steps` training steps take alone, in the training precision.

    Per step of batch 128: forward x W1 (128x784x512) and h W2; backward dW2, dh and dW1 (512x128x784).
    No implementation of this training on this machine, however fused, can take less time than this.
    """
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    x, w1 = torch.rand(128, 784, dtype=dtype), torch.rand(512, 784, dtype=dtype)
    h, w2, dz = torch.rand(128, 512, dtype=dtype), torch.rand(10, 512, dtype=dtype), torch.rand(128, 10, dtype=dtype)

    def step():
        torch.mm(x, w1.t()), torch.mm(h, w2.t()), torch.mm(dz.t(), h), torch.mm(dz, w2), torch.mm(h.t(), x)

    for _ in range(20):
        step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats * steps


class _Tiny:
    """The first 512 images of `data`, for warm-up runs."""

    def __init__(self, data):
        self.x_train, self.y_train = data.x_train[:512], data.y_train[:512]
        self.x_test, self.y_test = data.x_test[:512], data.y_test[:512]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each, Keras's too; the fastest of each is reported and compared")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")
    parser.add_argument("--keras-python", default=None,
                        help="a Python with TensorFlow + Keras: time the article's Keras code here too "
                             "(default: $DIGITLAB_KERAS_PYTHON)")
    args = parser.parse_args()
    from digitlab.train.device import prepare_training_process

    prepare_training_process()  # as the CLI's training commands do, before torch starts its threads

    import torch

    from digitlab.data.dataset import load_dataset
    from digitlab.train.device import use_cpu_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    env = _common.setup_lines("cpu")
    data = load_dataset("mnist")

    # One tiny run of each first: the first optimizer step of a process imports torch._dynamo (about 1 s),
    # which is start-up cost, not training time, and would otherwise land in whichever loop runs first.
    warm = _Tiny(data)
    digitlab_run(warm, seed=0)
    digitlab_run(warm, seed=0, fused=False)
    plain_pytorch_run(warm, seed=0)

    def best_of(run, **kw):
        return min((run(data, seed=i, **kw) for i in range(args.repeats)), key=lambda r: r[0])

    from digitlab.train.native import status as native_status

    fused_step = native_status()  # what the warm-up runs found (later runs switch the kernels off and on)
    print(f"fused step: {fused_step}")
    ours = best_of(digitlab_run)
    torch_step = best_of(digitlab_run, native=False)
    general = best_of(digitlab_run, fused=False)
    fp32 = best_of(digitlab_run, cpu_amp=False) if use_cpu_bf16(None) else ours
    base = best_of(plain_pytorch_run)
    precision = "bf16" if use_cpu_bf16(None) else "float32"
    rows = ((f"digitlab ({precision})", ours), (f"  torch-op step ({precision})", torch_step),
            (f"  general loop ({precision})", general), ("digitlab (float32)", fp32), ("plain PyTorch", base))
    for name, r in rows:
        print(f"{name:24s}: {r[0]:6.2f} s wall  {r[1]:6.2f} s CPU  train acc {r[2]:.4f}  test acc {r[3]:.4f}")
    print(f"the fused mlp step vs the general autograd loop: {general[0] / ours[0]:.2f}x "
          f"(its native kernels vs its torch ops: {torch_step[0] / ours[0]:.2f}x)")
    print(f"speed-up vs plain PyTorch: {base[0] / ours[0]:.2f}x wall, {base[1] / ours[1]:.2f}x CPU "
          f"(float32 only: {base[0] / fp32[0]:.2f}x wall)")
    floor = matmul_floor(5 * -(-len(data.x_train) // 128), use_cpu_bf16(None))
    print(f"the matrix products alone ({precision}): {floor:.2f} s = {floor / ours[0]:.0%} of digitlab's time "
          "(the floor for any implementation on this machine)")
    figures = {"bench": "seed_mlp", "digitlab_s": round(ours[0], 3), "digitlab_cpu_s": round(ours[1], 3),
               "digitlab_precision": precision, "digitlab_train_acc": ours[2], "digitlab_test_acc": ours[3],
               "fused_step": fused_step.split(" (")[0], "digitlab_torch_step_s": round(torch_step[0], 3),
               "digitlab_torch_step_test_acc": torch_step[3], "digitlab_general_loop_s": round(general[0], 3), "digitlab_general_loop_test_acc": general[3],
               "digitlab_fp32_s": round(fp32[0], 3), "digitlab_fp32_test_acc": fp32[3],
               "plain_pytorch_s": round(base[0], 3), "plain_pytorch_cpu_s": round(base[1], 3),
               "plain_pytorch_test_acc": base[3], "speedup_vs_plain": round(base[0] / ours[0], 3), "goal_s": round(KERAS_REFERENCE_S / 5, 2),
               "matmul_floor_s": round(floor, 3),
               "commit": env["commit"], "threads": env.get("torch_threads"), "load_average": env.get("load_average")}
    keras = _common.keras_reference("fit", args.keras_python, repeats=args.repeats, threads=args.threads)
    if keras is None:
        print(f"keras: not measured (--keras-python); the reference: about {KERAS_REFERENCE_S:.0f} s for these 5 "
              "epochs on a quiet 2-core machine")
        print(f"ratio vs the reference: {KERAS_REFERENCE_S / ours[0]:.2f}x (goal >= 5x, i.e. <= "
              f"{KERAS_REFERENCE_S / 5:.1f} s)")
    else:
        print(f"{'keras ' + keras['keras'] + ' (' + keras['backend'] + ')':24s}: {keras['keras_s']:6.2f} s wall  "
              f"{keras['keras_cpu_s']:6.2f} s CPU  train acc {keras['train_acc']:.4f}  test acc {keras['test_acc']:.4f}"
              + (f"  (fastest of {keras['keras_runs_s']})" if len(keras.get("keras_runs_s", [])) > 1 else ""))
        ratio, cpu_ratio = keras["keras_s"] / ours[0], keras["keras_cpu_s"] / ours[1]
        print(f"speed-up vs keras on this machine: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU "
              f"(goal >= 5x, i.e. <= {keras['keras_s'] / 5:.2f} s): {'met' if ratio >= 5 else 'not met'}")
        print(f"even at that floor, with nothing else to do: {keras['keras_s'] / floor:.2f}x keras")
        figures.update(keras_s=keras["keras_s"], keras_cpu_s=keras["keras_cpu_s"], keras_runs_s=keras.get("keras_runs_s"),
                       speedup_vs_keras_cpu=round(cpu_ratio, 3),
                       keras_test_acc=keras["test_acc"], speedup_vs_keras=round(ratio, 3),
                       keras_version=keras["keras"], floor_speedup_vs_keras=round(keras["keras_s"] / floor, 3))
    _common.emit_json(figures)


if __name__ == "__main__":
    main()
