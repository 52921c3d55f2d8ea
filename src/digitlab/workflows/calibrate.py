"""Calibration: fit the temperature that makes a model's confidences match its accuracy.

The temperature T (probabilities = softmax(logits / T)) is fitted on images the model did not train
on: the run's validation split, or training images with the model's training augmentation (each one a
new image). The test set is only reported, before and after, never fitted on. Predictions keep their
order; only the probabilities change.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import softmax

from digitlab import __version__
from digitlab.data.dataset import Dataset, load_dataset
from digitlab.errors import ConfigError
from digitlab.evaluate.temperature import apply_temperature, calibration_stats, fit_temperature
from digitlab.files import ensure_dir, read_json, write_bytes, write_json
from digitlab.models.storage import load_model, pretrained_path, resolve_model_files
from digitlab.train.augment import make_augment
from digitlab.train.config import TrainConfig, flatten_settings
from digitlab.train.predict import predict_logits
from digitlab.train.tensors import split_validation, to_input_tensor

SOURCES = ("auto", "val", "augmented-train")
MIN_IMAGES = 100
AUGMENT_CHUNK = 1024  # images warped at a time


def calibrate(model_or_run, data: Dataset | str | None = None, *, on: str = "auto", images: int = 10_000,
              seed: int = 0, output: str | Path | None = None, config: TrainConfig | dict | None = None,
              data_dir=None, download: bool = True) -> dict:
    """Fit a model's temperature on held-out images and record it with the model.

    model_or_run: a model from digitlab (load_model or a trained one: its `digitlab_meta` says how it
    trained), a run folder, a .safetensors or model .json file, or "pretrained" (the shipped model; needs
    `output`). data: a Dataset, a dataset name, or None for the dataset the model trained on (data_dir and
    download are passed to load_dataset). on: "val" (the run's validation split), "augmented-train"
    (`images` training images, warped with the run's augmentation, affine if it had none, chosen by
    `seed`), or "auto" (val if the run held one out, else augmented-train if it trained with augmentation).
    config: how the model trained (its val_split, seed and augmentation), for a model that does not carry
    its saved config (one built and fitted in this session).

    A file model gets the result in its JSON ("temperature_scaling"), or a calibrated copy in folder
    `output`; a model object gets it in `model.digitlab_meta`. Returns the record: temperature, what it
    was fitted on, before/after statistics on the fitting images and the test set, "model" (the JSON
    written, if any) and "architecture".
    """
    if images < MIN_IMAGES:
        raise ConfigError(f"--images must be at least {MIN_IMAGES}, got {images}")
    if on not in SOURCES:
        raise ConfigError(f"unknown calibration source {on!r}: choose one of {', '.join(SOURCES)}")
    in_memory = isinstance(model_or_run, torch.nn.Module)
    if in_memory:
        if output is not None:
            raise ConfigError("output is for model files: save the model with save_model first, then calibrate "
                              "its folder")
        model, meta_path, weights_path = model_or_run, None, None
        meta = getattr(model, "digitlab_meta", None)
        if meta is None:
            model.digitlab_meta = meta = {}
    else:
        shipped = str(model_or_run) == "pretrained"
        if shipped and output is None:
            raise ConfigError("the shipped model lives inside the installed package: give -o FOLDER for a "
                              "calibrated copy")
        meta_path, weights_path = resolve_model_files(pretrained_path() if shipped else model_or_run)
        model = load_model(meta_path)
        meta = read_json(meta_path, what="model description")
    data = _dataset(data, (meta.get("metrics") or {}).get("dataset"), data_dir, download)

    train_config = config.to_dict() if isinstance(config, TrainConfig) else config
    train_config = train_config if train_config is not None else meta.get("train_config") or {}
    x_fit, y_fit, described = fitting_set(data, train_config, on, images, seed)
    fit_logits = predict_logits(model, x_fit).cpu().numpy()
    temperature = fit_temperature(fit_logits, y_fit)
    test_probs = softmax(predict_logits(model, data.x_test).cpu().numpy(), axis=1)
    fit_probs = softmax(fit_logits, axis=1)
    record = {
        "temperature": round(temperature, 4),
        "fitted_on": described,
        "fit": {"before": calibration_stats(fit_probs, y_fit),
                "after": calibration_stats(apply_temperature(fit_probs, temperature), y_fit)},
        "test": {"before": calibration_stats(test_probs, data.y_test),
                 "after": calibration_stats(apply_temperature(test_probs, temperature), data.y_test)},
        "digitlab_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    meta["temperature_scaling"] = record
    target = None
    if not in_memory:
        target = meta_path
        if output is not None:
            out = ensure_dir(output)
            if out.resolve() != weights_path.parent.resolve():
                write_bytes(out / weights_path.name, weights_path.read_bytes())  # atomic: never half a copy
            target = out / meta_path.name
        write_json(target, meta)
    return {"model": str(target) if target else None, "architecture": (meta.get("architecture") or {}).get("name"),
            **record}


def _dataset(data, trained_on: str | None, data_dir, download: bool) -> Dataset:
    """The Dataset to calibrate on, refused (before loading anything) if the model trained on another."""
    name = data if isinstance(data, str) else getattr(data, "name", None) or trained_on or "mnist"
    if trained_on and name != trained_on:
        raise ConfigError(f"this model was trained on {trained_on}, so it is calibrated on {trained_on} images: "
                          f"give that dataset (--dataset {trained_on})")
    if data is None or isinstance(data, str):
        return load_dataset(name, data_dir=data_dir, download=download)
    return data


def fitting_set(data: Dataset, train_config: dict, on: str = "auto", images: int = 10_000, seed: int = 0):
    """(images float32 (N, 1, 28, 28) in [0, 1], int labels (N,), description) the model did not train on.

    train_config: the model's saved TrainConfig as a dict, nested or flat (its val_split, seed and augmentation).
    """
    train_config = flatten_settings(train_config)
    val_split = int(train_config.get("val_split") or 0)
    augment = train_config.get("augment") or "none"
    if on == "auto":
        if val_split:
            on = "val"
        elif augment != "none":
            on = "augmented-train"
        else:
            raise ConfigError("this model trained on every training image without augmentation, so no image is "
                              "held out to calibrate on: retrain it with --val-split 5000, or use "
                              "--on augmented-train (affine-augmented training images)")
    if on == "val":
        if not val_split:
            raise ConfigError("this model held out no validation split (it trained without --val-split): "
                              "use --on augmented-train")
        split_seed = int(train_config.get("seed") or 0)
        *_, x_val, y_val = split_validation(to_input_tensor(data.x_train), torch.tensor(data.y_train),
                                            val_split, split_seed)
        return x_val, y_val.numpy(), f"its validation split ({val_split} training images held out, seed {split_seed})"
    kind = augment if augment != "none" else "affine"
    if augment == "none":
        print("warning: this model trained without augmentation, so affine-augmented images are harder for it "
              "than its test set: the temperature will likely come out too high (less confident than it should be)",
              file=sys.stderr)
    n = min(images, len(data.x_train))
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(data.x_train), generator=generator)[:n].sort().values.numpy()
    x = to_input_tensor(data.x_train[pick])
    warp = make_augment(kind)
    with torch.no_grad():
        x = torch.cat([warp(x[i : i + AUGMENT_CHUNK], generator) for i in range(0, n, AUGMENT_CHUNK)])
    return x, np.asarray(data.y_train[pick]), f"{n} training images with {kind} augmentation (seed {seed})"
