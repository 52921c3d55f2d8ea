"""Callbacks: hooks the loop calls at the start and end of training, of each epoch and of each batch.

A callback reads (or, to resume, restores) the loop's TrainState. Keep `on_batch_end` cheap: it runs
after every optimizer step.
"""

from __future__ import annotations


class Callback:
    def on_train_begin(self, state) -> None: ...
    def on_epoch_begin(self, state) -> None: ...
    def on_batch_end(self, state, step: int) -> None: ...
    def on_epoch_end(self, state, logs: dict) -> None: ...
    def on_train_end(self, state) -> None: ...


class CallbackList(Callback):
    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def on_train_begin(self, state):
        for cb in self.callbacks:
            cb.on_train_begin(state)

    def on_epoch_begin(self, state):
        for cb in self.callbacks:
            cb.on_epoch_begin(state)

    def on_batch_end(self, state, step):
        for cb in self.callbacks:
            cb.on_batch_end(state, step)

    def on_epoch_end(self, state, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(state, logs)

    def on_train_end(self, state):
        for cb in self.callbacks:
            cb.on_train_end(state)
