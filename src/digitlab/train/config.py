"""TrainConfig: every training setting in one frozen dataclass, saved with each model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from digitlab.errors import ConfigError

OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")
SCHEDULES = ("constant", "onecycle", "cosine", "exponential")
AUGMENTS = ("none", "affine", "elastic", "styles")
# torch.compile's modes. On CUDA, "reduce-overhead" replays each step as a CUDA graph: for a small net,
# whose step is mostly kernel launches, that is where the time goes. On a CPU they all compile alike.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# Keras's defaults, so that `--optimizer rmsprop` trains as the article's `compile(optimizer="rmsprop")`.
DEFAULT_LR = {"rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2}


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "rmsprop"
    lr: float | None = None  # None -> the optimizer's Keras default (DEFAULT_LR)
    momentum: float = 0.9  # sgd momentum
    nesterov: bool = True  # sgd
    rho: float = 0.9  # rmsprop decay, Keras's default (torch's alpha)
    eps: float = 1e-7  # Keras's epsilon for rmsprop/adam
    beta1: float = 0.9  # adam/adamw: decay of the gradient's running mean (torch's and Keras's default)
    beta2: float = 0.999  # adam/adamw: decay of the squared gradient's running mean
    weight_decay: float = 0.0  # decoupled for adamw, L2 otherwise
    schedule: str = "constant"
    lr_decay: float = 0.98  # the exponential schedule's factor per epoch (applied a little every step)
    warmup_epochs: float = 0.0  # linear warm-up length, in epochs (fractions allowed)
    label_smoothing: float = 0.0
    augment: str = "none"  # batched tensor augmentation, see digitlab.train.augment
    # Its strengths, over the defaults (digitlab.train.augment.DEFAULTS), e.g. {"rotate": 20, "shift": 5.6}.
    augment_options: dict | None = None
    clean_epochs: int = 0  # the last N epochs see the images as they are, without augmentation
    # Font-rendered digits (digitlab.data.synthetic, "train" fonts, seeded by `seed`) added to the training
    # images: the handwriting styles MNIST lacks (flagged 1s, crossed 7s). Not in the validation split.
    synthetic_fonts: int = 0
    teacher: str | None = None  # distil from this model (run folder, .safetensors, or "pretrained")
    distill_weight: float = 0.5  # the soft (teacher) term's share of the loss, see digitlab.train.distill
    distill_temperature: float = 2.0  # softens both distributions in the soft term
    val_split: int = 0  # images carved from the training set for validation (0 = none)
    early_stopping: int = 0  # patience in epochs on val_loss (0 = off)
    keep_best: bool = False  # restore the weights of the best val_loss epoch at the end
    # Keep an exponential moving average of the weights, updated after every step, and end with it: each
    # step moves the average (1 - ema_decay) of the way to the new weights; its BN statistics are measured
    # afresh after every epoch. 0 = off. Validation, keep_best and early stopping then judge the average.
    ema_decay: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto -> cuda, then mps, then cpu
    threads: int | None = None  # torch CPU threads (None = torch's default, one per core)
    channels_last: bool = False
    compile: bool = False  # torch.compile the model (CUDA mostly)
    compile_mode: str = "default"  # one of COMPILE_MODES, used when compile is on
    fused: bool = True  # the mlp on CPU trains through hand-written gradients (digitlab.train.fused_mlp)
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    # bf16 autocast for CPU training: None = auto, on where the CPU has bf16 hardware (AVX-512 BF16, AMX),
    # where it halves the GEMM time at the same accuracy; True also uses oneDNN's emulation elsewhere.
    cpu_amp: bool | None = None
    eval_batch_size: int = 2048

    def __post_init__(self):
        def bad(msg):
            raise ConfigError(msg)

        if self.epochs < 1:
            bad(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            bad(f"batch size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            bad(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            bad(f"unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.augment not in AUGMENTS:
            bad(f"unknown augmentation {self.augment!r}: choose one of {', '.join(AUGMENTS)}")
        if self.augment_options is not None and not isinstance(self.augment_options, dict):
            bad(f"augment options must be a mapping such as {{'rotate': 20}}, got {self.augment_options!r}")
        if self.augment_options:
            from digitlab.train.augment import make_augment

            make_augment(self.augment, **self.augment_options)  # names and ranges checked there, one line each
        if not 0 < self.lr_decay <= 1:
            bad(f"lr decay (the exponential schedule's factor per epoch) must be in (0, 1], got {self.lr_decay}")
        if self.compile_mode not in COMPILE_MODES:
            bad(f"unknown compile mode {self.compile_mode!r}: choose one of {', '.join(COMPILE_MODES)}")
        if self.lr is not None and not self.lr > 0:
            bad(f"learning rate must be > 0, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            bad(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                bad(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.weight_decay < 0:
            bad(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.warmup_epochs < 0 or (self.warmup_epochs > 0 and self.warmup_epochs >= self.epochs):
            bad(f"warm-up ({self.warmup_epochs} epochs) must be >= 0 and shorter than training ({self.epochs} epochs)")
        if not 0 <= self.clean_epochs < self.epochs:
            bad(f"clean epochs ({self.clean_epochs}) must be >= 0 and fewer than the epochs ({self.epochs})")
        if self.clean_epochs and self.augment == "none":
            bad("clean epochs turn augmentation off for the last epochs: set --augment too")
        if not 0 < self.distill_weight <= 1:
            bad(f"distill weight must be in (0, 1], got {self.distill_weight}")
        if not self.distill_temperature > 0:
            bad(f"distill temperature must be > 0, got {self.distill_temperature}")
        if self.synthetic_fonts < 0:
            bad(f"synthetic fonts (font digits mixed in) must be >= 0, got {self.synthetic_fonts}")
        if self.val_split < 0:
            bad(f"val split must be >= 0 images, got {self.val_split}")
        if not 0 <= self.ema_decay < 1:
            bad(f"EMA decay must be in [0, 1) (0 = off; 0.999 is usual), got {self.ema_decay}")
        if self.threads is not None and self.threads < 1:
            bad(f"threads must be >= 1, got {self.threads}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return cls(**data)

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)
