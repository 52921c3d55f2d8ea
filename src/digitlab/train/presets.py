"""Presets: tuned settings held as data.

Each preset names a model (and its architecture arguments) and the TrainConfig fields it sets.
Settings are chosen on a validation split carved from the training set (`val_split=5000`, seeds 0-1);
the test set only reports. Each entry's "chosen" says what was compared. `digitlab train --preset
NAME` starts from these; any flag given on the command line wins.

Units: epochs are passes over the 60,000 training images; lr is the peak of the schedule;
warmup_epochs may be a fraction; weight_decay is L2 for sgd.
"""

from __future__ import annotations

from digitlab.errors import ConfigError

# The recipe of the strong MNIST single models, shared by `best` and the `compact` model that ships.
BEST_RECIPE = {
    "epochs": 40, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
    "weight_decay": 5e-4, "schedule": "onecycle", "warmup_epochs": 2, "label_smoothing": 0.1,
    "augment": "affine", "channels_last": True, "cpu_amp": True,
}

PRESETS: dict[str, dict] = {
    # The tutorial's setup, for reference.
    "article": {
        "model": "mlp",
        "model_kwargs": {},
        "config": {"epochs": 5, "batch_size": 128, "optimizer": "rmsprop"},
        "description": "the article's mlp: rmsprop, 5 epochs, batch 128",
    },
    # 99% test accuracy in the least CPU time: one epoch of a 41k-parameter BN convnet.
    "fast": {
        "model": "fast",
        "model_kwargs": {},
        "config": {
            "epochs": 1, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
            "weight_decay": 5e-4, "schedule": "onecycle", "warmup_epochs": 0.2, "label_smoothing": 0.1,
            "channels_last": True, "cpu_amp": True,
        },
        "description": "fast convnet, 1 epoch: 99% test accuracy in seconds on a laptop CPU",
        "chosen": "1-epoch, 1-thread CPU runs on val_split=5000 (mean validation accuracy; seeds 0-1, then 0-2). "
                  "Widths 16-32-64: sgd lr 0.1 batch 128 98.90, lr 0.2 98.88, lr 0.05 98.67, batch 64 98.95 "
                  "(+10% CPU), batch 256 98.76, warm-up 0.1 epoch 98.80, no label smoothing 98.76, adam 98.48, "
                  "adamw 98.85. bf16 on CPU: same accuracy, 1.3-1.6x less CPU. Widths (bf16, seeds 0-2): 16-32-64 "
                  "99.01, 16-32-96 99.09 (same CPU), 16-32-128 98.99, 16-32-128 batch 64 99.10 (+20% CPU)",
    },
    # 99% in the fewest steps, for GPUs: there a small net's step costs about the same whatever the batch
    # (3.3 ms for `fast` on an H200, mostly launching kernels), so a quarter of the steps is the way to 0.5 s.
    # Measured on an H200 (session 8): 0.32 s to 99.35 / 99.39 / 99.24% (`fast`: 1.23 s in the same run).
    "fast-gpu": {
        "model": "fast",
        "model_kwargs": {"widths": [32, 64, 128]},
        "config": {
            "epochs": 1, "batch_size": 512, "optimizer": "adam", "lr": 0.01, "beta1": 0.7, "beta2": 0.9,
            "schedule": "onecycle", "warmup_epochs": 0.2, "label_smoothing": 0.1, "channels_last": True,
            "cpu_amp": True,
        },
        "description": "fast convnet at widths 32-64-128, 1 epoch in 118 steps of 512 images (Adam, betas "
                       "0.7/0.9): 99% in the fewest steps, for GPUs",
        "chosen": "1-epoch, 1-thread CPU runs on val_split=5000, seeds 0-4, mean (min) validation accuracy; `fast` "
                  "as it is (430 steps) 99.13 (98.82). Adam betas 0.7/0.9, no weight decay, onecycle with 0.2 "
                  "epochs' warm-up: batch 256 widths 32-64-128 lr 0.01 99.29 (99.08); batch 512 (108 steps) "
                  "widths 32-64-128 lr 0.005 99.12, 0.01 99.21 (99.00), 0.02 99.17, 0.04 99.14; at lr 0.01: betas "
                  "0.8/0.95 99.10, 0.6/0.9 99.15, warm-up 0.3 99.14, widths 32-64-192 99.14, 48-96-192 (lr 0.02) "
                  "99.16, 16-32-96 99.03; batch 1024 (54 steps) lr 0.04 98.38. SGD at batch 256-512 (session 6) "
                  "lost 0.1-0.5 points",
    },
    # 99.5% on a CPU within a minute: the same net, 10 epochs, with affine augmentation.
    "fast-99.5": {
        "model": "fast",
        "model_kwargs": {},
        "config": {
            "epochs": 10, "batch_size": 128, "optimizer": "sgd", "lr": 0.2, "momentum": 0.9, "nesterov": True,
            "weight_decay": 5e-4, "schedule": "onecycle", "warmup_epochs": 1, "label_smoothing": 0.1,
            "augment": "affine", "clean_epochs": 1, "channels_last": True, "cpu_amp": True,
        },
        "description": "fast convnet, 10 epochs with affine augmentation (the last without): 99.5% in about a "
                       "minute of CPU",
        "chosen": "1-thread CPU runs on val_split=5000, seeds 0-1, mean validation accuracy at 50-100 CPU-seconds: "
                  "16-32-96 affine 6 epochs 99.31, 10 epochs 99.40 (lr 0.1) / 99.44 (lr 0.2); 24-48-96 affine 4 "
                  "epochs 99.31, 6 epochs 99.35; 32-64-128 affine 3 epochs 99.26; 16-48-128 affine 8 epochs 99.33; "
                  "batch 256 lr 0.2 12 epochs 99.44 (more CPU); no augmentation 5 epochs 99.06 (seed 0). Then (seeds 0-3, "
                  "16-32-96, lr 0.2, 10 epochs): augmenting every epoch 99.36/99.46/99.58/99.44 (mean 99.46), the "
                  "last epoch clean 99.34/99.54/99.56/99.50 (mean 99.49) and one epoch's augmentation less to pay",
    },
    # The highest single-model accuracy; sized for a GPU (40 epochs); the teacher of the shipped model.
    "best": {
        "model": "best",
        "model_kwargs": {},
        "config": BEST_RECIPE,
        "description": "VGG-style BN/dropout convnet, 40 epochs, affine augmentation (H200: about 2 minutes)",
        "chosen": "the recipe of the strong MNIST single models (BN, dropout, one-cycle SGD-Nesterov, label "
                  "smoothing 0.1, augmentation), 40 epochs to fit the GPU budget. A reduced CPU check on "
                  "val_split=5000 (widths 16-32-64, 6 epochs, seed 0): no augmentation 99.46, affine 99.34, elastic "
                  "98.74; so Simard-strength elastic was dropped. At the full 40 epochs (val_split=5000, seed 0, "
                  "CPU, 1 thread, 98 min each): affine 99.66 (17 errors, val_loss 0.0995), no augmentation 99.54 "
                  "(23 errors, 0.1028), so affine stays; one seed, six images apart. The test set only reports "
                  "(seeds 0-3 on an H200: 99.71, 99.77, 99.74, 99.74). Three times the epochs (120, val_split=5000, "
                  "seeds 0-4, H200, session 9): 19.2 validation errors per member against 20.4, the ensemble 18 "
                  "against 18, so 40 stays",
    },
    # The no-pooling deep stack (An et al. 2020's M3) on `best`'s recipe: the ensemble's members. GPU only:
    # 2.7x `best`'s arithmetic per image.
    "deep": {
        "model": "deep",
        "model_kwargs": {},
        "config": BEST_RECIPE,  # the same settings, 40 epochs
        "description": "ten unpadded 3x3 conv layers, no pooling, on best's recipe (40 epochs; H200: about 3 "
                       "minutes, 5 at once); 99.69-99.73%, not better than best",
        "chosen": "not tuned here. The architecture is the published one (An et al. 2020's M3, about 99.8% "
                  "alone); the recipe is `best`'s (chosen on val_split=5000 for that net), unchanged. Why a new "
                  "net: `best`'s seeds make the same mistakes (5 seeds ensembled to 99.76% on the H200, session "
                  "7), and on val_split=5000 neither more seeds, other widths and recipes, nor twice the epochs "
                  "moved that family's ensemble (bench/ensemble_diversity.py). A CPU check (val_split=5000, seed "
                  "0, 1 epoch, warm-up 0.2): validation 98.62%, so the recipe trains it. Test, reported only "
                  "(H200, session 8, seeds 0-4): 99.72 / 99.73 / 99.71 / 99.71 / 99.69%, ensemble 99.74%",
    },
    # The model that ships in the package: `best`'s recipe on a net small enough to serve 20,000 images/s
    # on 2 CPU cores (int8 ONNX), trained on a CPU in about 20 minutes.
    "compact": {
        "model": "best",
        "model_kwargs": {"widths": [16, 32, 64]},
        "config": BEST_RECIPE,  # the same settings, on a smaller net
        "description": "best's recipe at widths 16-32-64 (78k params, 7.3M multiply-adds): the shipped model",
        "chosen": "widths by inference cost, not by accuracy: untrained nets exported to int8 ONNX, batch 1024 on "
                  "2 cores (bench/inference.py's setting): 48-96-192 4.3k images/s, 32-64-128 9.8k, 24-48-96 14.0k, "
                  "16-32-64 24.9k; the issue asks 20k. The recipe is `best`'s (see its val_split notes), unchanged, "
                  "not re-tuned. Test, seed 0: 99.62% alone, 99.70% distilled from `best` (--teacher, weight 0.5, "
                  "T 2: the defaults, not tuned); the distilled one ships",
    },
}


def get_preset(name: str) -> dict:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(sorted(PRESETS))}") from None
