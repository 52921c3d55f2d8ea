"""Micro-batching for the 28x28 fast path: inference threads that serve many requests per model call.

Requests that arrive while the model is busy are stacked into one batch on the next call. On a small
CPU this does two things: one thread wake-up (instead of one threadpool hand-off per request), and one
forward pass over N images, which costs far less than N passes of one image. With a single request in
flight it is simply a hop to the inference thread and back.

The event loop never blocks: `predict` enqueues (a lock-free-for-the-caller SimpleQueue put) and awaits
a future that the inference thread resolves with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable

import numpy as np

log = logging.getLogger("digitlab.serve")


class Batcher:
    """Run `predict_batch` ((N, 28, 28) float32 in [0, 1] -> (N, C) probabilities) on `threads`
    background threads, each taking up to `max_batch` queued requests per call.

    Two threads by default: while one computes a batch the next one forms and starts on the other
    core (torch and ONNX Runtime release the GIL), so a 2-core machine is used fully.
    """

    def __init__(self, predict_batch: Callable[[np.ndarray], np.ndarray], max_batch: int = 32,
                 threads: int = 2) -> None:
        self._predict_batch = predict_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"digitlab-inference-{i}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    async def predict(self, x28: np.ndarray) -> np.ndarray:
        """Probabilities (C,) float for one float32 (28, 28) image."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((x28, future, loop))
        return await future

    def close(self, timeout: float = 5.0) -> None:
        for _ in self._threads:
            self._queue.put(None)  # one stop mark per thread
        for thread in self._threads:
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = [first], False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # a stop mark: serve what was taken, then stop
                    stop = True
                    break
                batch.append(item)
            self._serve(batch)
            if stop:
                return

    def _serve(self, batch: list) -> None:
        try:
            probs = np.asarray(self._predict_batch(np.stack([x for x, _, _ in batch])))
            outcomes = [(future, probs[i], None) for i, (_, future, _) in enumerate(batch)]
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, which reports it
            log.exception("inference failed for a batch of %d", len(batch))
            outcomes = [(future, None, exc) for _, future, _ in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for (_, _, loop), outcome in zip(batch, outcomes):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, results)
            except RuntimeError:  # that loop has closed (its client went away): nobody is waiting
                pass


def _resolve(results: list) -> None:
    for future, value, exc in results:
        if future.done():  # cancelled: the client disconnected
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
