"""The micro-batcher: every caller gets its own row back, concurrent calls share a model call,
a failing model call fails each of its callers, and close() stops the thread."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from digitlab.serve.batcher import Batcher


class SlowSum:
    """A stand-in *model* (the batcher is what is tested): row sums, 5 ms per call, batch sizes kept."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(x))
        self.threads.add(threading.current_thread().name)
        time.sleep(0.005)
        return x.reshape(len(x), -1).sum(axis=1, keepdims=True)


def test_each_caller_gets_its_own_answer_and_calls_are_batched():
    model = SlowSum()
    batcher = Batcher(model)
    inputs = [np.full((28, 28), i / 100, np.float32) for i in range(64)]

    async def main():
        return await asyncio.gather(*(batcher.predict(x) for x in inputs))

    try:
        answers = asyncio.run(main())
    finally:
        batcher.close()
    np.testing.assert_allclose([a[0] for a in answers], [x.sum() for x in inputs], rtol=1e-6)
    assert sum(model.batch_sizes) == 64
    assert max(model.batch_sizes) > 1          # requests that waited were served together
    assert model.threads <= {"digitlab-inference-0", "digitlab-inference-1"}  # never on the event loop's thread


def test_a_failing_model_call_fails_every_caller_in_it():
    def broken(x):
        raise RuntimeError("model exploded")

    batcher = Batcher(broken)

    async def main():
        return await asyncio.gather(*(batcher.predict(np.zeros((28, 28), np.float32)) for _ in range(3)),
                                    return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)


def test_close_stops_the_inference_thread():
    batcher = Batcher(SlowSum())
    assert batcher.alive
    batcher.close()
    assert not batcher.alive


def test_max_batch_is_respected():
    model = SlowSum()
    batcher = Batcher(model, max_batch=4)

    async def main():
        await asyncio.gather(*(batcher.predict(np.ones((28, 28), np.float32)) for _ in range(20)))

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    assert max(model.batch_sizes) <= 4 and sum(model.batch_sizes) == 20


def test_a_single_request_is_not_delayed():
    batcher = Batcher(lambda x: x.reshape(len(x), -1).mean(axis=1, keepdims=True))

    async def main():
        t0 = time.perf_counter()
        await batcher.predict(np.ones((28, 28), np.float32))
        return time.perf_counter() - t0

    try:
        elapsed = asyncio.run(main())
    finally:
        batcher.close()
    assert elapsed < 0.5  # no waiting for a batch to fill: a lone request goes straight through
