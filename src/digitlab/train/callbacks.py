"""Callbacks: what the training loop calls around each step, epoch and the whole run.

`fit` itself only shuffles, steps, validates and records. Everything else is a callback on this one
protocol: progress (train.progress), early stopping and keep-best (here), the weight average
(train.ema), distillation (train.distill) and checkpoints (train.checkpoint). A callback reads, and
may change, the loop's TrainState. The hooks, in the order they run:

    on_train_begin(state)              once; a resume restores weights, optimizer, RNG and epoch here
    on_epoch_begin(state)
      on_loss(state, logits, loss, step) -> loss    general loop only: add a term to the step's loss
      on_batch_end(state, step)        after every optimizer step: keep it cheap
    on_epoch_trained(state)            after the epoch's last step, before validation
    on_epoch_end(state, logs)          after validation; state.epoch counts this epoch already
    on_train_end(state)                once, after the last epoch
"""

from __future__ import annotations


class Callback:
    def on_train_begin(self, state) -> None: ...
    def on_epoch_begin(self, state) -> None: ...
    def on_batch_end(self, state, step: int) -> None: ...
    def on_epoch_trained(self, state) -> None: ...
    def on_epoch_end(self, state, logs: dict) -> None: ...
    def on_train_end(self, state) -> None: ...

    def on_loss(self, state, logits, loss, step: int):
        return loss


class CallbackList(Callback):
    def __init__(self, callbacks):
        self.callbacks = list(callbacks)
        # Only callbacks that change the loss are asked for it: the hook sits in the hot loop.
        self.loss_callbacks = [cb for cb in self.callbacks if type(cb).on_loss is not Callback.on_loss]

    def on_train_begin(self, state):
        for cb in self.callbacks:
            cb.on_train_begin(state)

    def on_epoch_begin(self, state):
        for cb in self.callbacks:
            cb.on_epoch_begin(state)

    def on_loss(self, state, logits, loss, step):
        for cb in self.loss_callbacks:
            loss = cb.on_loss(state, logits, loss, step)
        return loss

    def on_batch_end(self, state, step):
        for cb in self.callbacks:
            cb.on_batch_end(state, step)

    def on_epoch_trained(self, state):
        for cb in self.callbacks:
            cb.on_epoch_trained(state)

    def on_epoch_end(self, state, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(state, logs)

    def on_train_end(self, state):
        for cb in self.callbacks:
            cb.on_train_end(state)


class EarlyStopping(Callback):
    """Stop after `patience` epochs in a row without a new best val_loss (state.epochs_without_improvement)."""

    def __init__(self, patience: int):
        self.patience = patience

    def on_epoch_end(self, state, logs) -> None:
        if "val_loss" in logs and state.epochs_without_improvement >= self.patience:
            state.stop_training = True


class KeepBest(Callback):
    """Keep a copy of the weights of the best val_loss epoch (of the average, with EMA), and end with them."""

    def on_epoch_end(self, state, logs) -> None:
        if "val_loss" in logs and state.best_epoch == state.epoch:  # this epoch is the new best
            kept = state.ema.module if state.ema is not None else state.model
            state.best_weights = {k: v.detach().clone() for k, v in kept.state_dict().items()}

    def on_train_end(self, state) -> None:
        if state.best_weights is not None:
            state.model.load_state_dict(state.best_weights)
