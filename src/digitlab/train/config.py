"""TrainConfig: every training setting, in frozen groups, saved with each model.

    TrainConfig(epochs=3, optimizer=OptimizerConfig("adam", lr=1e-3))
    TrainConfig.from_flat(epochs=3, optimizer="adam", lr=1e-3)   # the same, by the flat names

The run itself (epochs, batch size, seed, validation) sits on TrainConfig; the rest in groups:
`optimizer`, `schedule` (of the learning rate), `augmentation` (of the training images),
`regularisation` (label smoothing, EMA, distillation) and `runtime` (where and how fast it runs, not
what it learns). The command line's flags, the presets and model.json files written before the groups
use flat names (`lr`, `augment`, `ema_decay`, ...): FLAT_NAMES routes each to its group, and
`from_flat`, `replace` and `from_dict` accept them.
"""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, field, fields, replace

from digitlab.errors import ConfigError
from digitlab.train.augment_options import augment_options

OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")
SCHEDULES = ("constant", "onecycle", "cosine", "exponential")
AUGMENTS = ("none", "affine", "elastic", "styles")
# torch.compile's modes. On CUDA, "reduce-overhead" replays each step as a CUDA graph: for a small net,
# whose step is mostly kernel launches, that is where the time goes. On a CPU they all compile alike.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# Keras's defaults, so that `--optimizer rmsprop` trains as the article's `compile(optimizer="rmsprop")`.
DEFAULT_LR = {"rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2}


def _bad(msg: str):
    raise ConfigError(msg)


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer and its hyper-parameters; unset ones are Keras's defaults."""

    name: str = "rmsprop"  # one of OPTIMIZERS, with Keras's defaults
    lr: float | None = None  # None -> the optimizer's Keras default (DEFAULT_LR)
    momentum: float = 0.9  # sgd momentum
    nesterov: bool = True  # sgd
    rho: float = 0.9  # rmsprop decay, Keras's default (torch's alpha)
    eps: float = 1e-7  # Keras's epsilon for rmsprop/adam
    beta1: float = 0.9  # adam/adamw: decay of the gradient's running mean (torch's and Keras's default)
    beta2: float = 0.999  # adam/adamw: decay of the squared gradient's running mean
    weight_decay: float = 0.0  # decoupled for adamw, L2 otherwise

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            _bad(f"unknown optimizer {self.name!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.lr is not None and not self.lr > 0:
            _bad(f"learning rate must be > 0, got {self.lr}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                _bad(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.weight_decay < 0:
            _bad(f"weight decay must be >= 0, got {self.weight_decay}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.name]


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning rate's course over training, stepped every batch (digitlab.train.optim)."""

    name: str = "constant"  # one of SCHEDULES; lr is its peak
    lr_decay: float = 0.98  # the exponential schedule's factor per epoch (applied a little every step)
    warmup_epochs: float = 0.0  # linear warm-up length, in epochs (fractions allowed)

    def __post_init__(self):
        if self.name not in SCHEDULES:
            _bad(f"unknown schedule {self.name!r}: choose one of {', '.join(SCHEDULES)}")
        if not 0 < self.lr_decay <= 1:
            _bad(f"lr decay (the exponential schedule's factor per epoch) must be in (0, 1], got {self.lr_decay}")


@dataclass(frozen=True)
class AugmentationConfig:
    """What the training images go through: batched warps, and font digits mixed in."""

    name: str = "none"  # batched tensor augmentation, see digitlab.train.augment
    # Its strengths, over the defaults (digitlab.train.augment_options.DEFAULTS), e.g. {"rotate": 20, "shift": 5.6}.
    options: dict | None = None
    clean_epochs: int = 0  # the last N epochs see the images as they are, without augmentation
    # Font-rendered digits (digitlab.data.synthetic, "train" fonts, seeded by the run's seed) added to the
    # training images: the handwriting styles MNIST lacks (flagged 1s, crossed 7s). Not in the validation split.
    synthetic_fonts: int = 0

    def __post_init__(self):
        if self.name not in AUGMENTS:
            _bad(f"unknown augmentation {self.name!r}: choose one of {', '.join(AUGMENTS)}")
        if self.options is not None and not isinstance(self.options, dict):
            _bad(f"augment options must be a mapping such as {{'rotate': 20}}, got {self.options!r}")
        if self.options:
            augment_options(self.name, **self.options)  # names and ranges checked there, one line each
        if self.clean_epochs and self.name == "none":
            _bad("clean epochs turn augmentation off for the last epochs: set --augment too")
        if self.synthetic_fonts < 0:
            _bad(f"synthetic fonts (font digits mixed in) must be >= 0, got {self.synthetic_fonts}")


@dataclass(frozen=True)
class RegularisationConfig:
    """Label smoothing, a moving average of the weights, and distillation from a teacher model."""

    label_smoothing: float = 0.0
    # Keep an exponential moving average of the weights, updated after every step, and end with it: each
    # step moves the average (1 - ema_decay) of the way to the new weights; its BN statistics are measured
    # afresh after every epoch. 0 = off. Validation, keep_best and early stopping then judge the average.
    ema_decay: float = 0.0
    teacher: str | None = None  # distil from this model (run folder, .safetensors, or "pretrained")
    distill_weight: float = 0.5  # the soft (teacher) term's share of the loss, see digitlab.train.distill
    distill_temperature: float = 2.0  # softens both distributions in the soft term
    # Fine-tuning only: at the end, blend the weights back toward those training started from, this
    # share of the way (WiSE-FT, see digitlab.train.blend). Keeps what the start model knew. 0 = off.
    blend_start: float = 0.0

    def __post_init__(self):
        if not 0 <= self.label_smoothing < 1:
            _bad(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.ema_decay < 1:
            _bad(f"EMA decay must be in [0, 1) (0 = off; 0.999 is usual), got {self.ema_decay}")
        if not 0 < self.distill_weight <= 1:
            _bad(f"distill weight must be in (0, 1], got {self.distill_weight}")
        if not self.distill_temperature > 0:
            _bad(f"distill temperature must be > 0, got {self.distill_temperature}")
        if not 0 <= self.blend_start < 1:
            _bad(f"blend-start (the starting weights' share at the end) must be in [0, 1), got {self.blend_start}")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how fast a run trains, not what it learns (a resumed run may change device and threads)."""

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
        if self.compile_mode not in COMPILE_MODES:
            _bad(f"unknown compile mode {self.compile_mode!r}: choose one of {', '.join(COMPILE_MODES)}")
        if self.threads is not None and self.threads < 1:
            _bad(f"threads must be >= 1, got {self.threads}")


GROUPS = {"optimizer": OptimizerConfig, "schedule": ScheduleConfig, "augmentation": AugmentationConfig,
          "regularisation": RegularisationConfig, "runtime": RuntimeConfig}
# A group field whose flat name is not its own: the flags say --optimizer, --schedule, --augment.
_FLAT_RENAMES = {("optimizer", "name"): "optimizer", ("schedule", "name"): "schedule",
                 ("augmentation", "name"): "augment", ("augmentation", "options"): "augment_options"}


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting: the run's own on it, the rest in groups (see the module docstring).

    Build it from groups, `TrainConfig(epochs=3, optimizer=OptimizerConfig("adam"))`, or from the flat
    names the flags use, `TrainConfig.from_flat(epochs=3, optimizer="adam")`.
    """

    epochs: int = 5
    batch_size: int = 128
    seed: int = 0
    val_split: int = 0  # images carved from the training set for validation (0 = none)
    early_stopping: int = 0  # patience in epochs on val_loss (0 = off)
    keep_best: bool = False  # restore the weights of the best val_loss epoch at the end
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    regularisation: RegularisationConfig = field(default_factory=RegularisationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self):
        for name, group in GROUPS.items():
            value = getattr(self, name)
            if not isinstance(value, group):
                _bad(f"{name}= takes a {group.__name__}(...), got {value!r}; for flat settings such as "
                     f"{name}='...' use TrainConfig.from_flat")
        if self.epochs < 1:
            _bad(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            _bad(f"batch size must be >= 1, got {self.batch_size}")
        if self.val_split < 0:
            _bad(f"val split must be >= 0 images, got {self.val_split}")
        warmup, clean = self.schedule.warmup_epochs, self.augmentation.clean_epochs
        if warmup < 0 or (warmup > 0 and warmup >= self.epochs):
            _bad(f"warm-up ({warmup} epochs) must be >= 0 and shorter than training ({self.epochs} epochs)")
        if not 0 <= clean < self.epochs:
            _bad(f"clean epochs ({clean}) must be >= 0 and fewer than the epochs ({self.epochs})")

    @classmethod
    def from_flat(cls, **settings) -> "TrainConfig":
        """A config from flat names (`lr`, `augment`, `ema_decay`, ...; see FLAT_NAMES) and/or groups."""
        return cls().replace(**settings)

    def replace(self, **changes) -> "TrainConfig":
        """A copy with `changes`: flat names go to their group; a group object replaces the group."""
        top, groups, unknown = {}, {}, []
        for name, value in changes.items():
            if name in GROUPS and isinstance(value, GROUPS[name]):
                top[name] = value
            elif name in FLAT_NAMES:
                group, key = FLAT_NAMES[name]
                (top if group is None else groups.setdefault(group, {}))[key] = value
            else:
                unknown.append(name)
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(sorted(unknown))}")
        for group, values in groups.items():
            top[group] = replace(top.get(group, getattr(self, group)), **values)
        return replace(self, **top)

    def to_dict(self) -> dict:
        """The nested form saved in model.json and checkpoints."""
        return asdict(self)

    def to_flat(self) -> dict:
        """{flat name: value} for every setting, as the flags and presets name them."""
        return {flat: getattr(self if group is None else getattr(self, group), key)
                for flat, (group, key) in FLAT_NAMES.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """A saved config: the nested form of to_dict, or the flat one (presets, older model.json files)."""
        if not isinstance(data, dict):
            raise ConfigError(f"training settings must be a mapping of names to values, got {type(data).__name__}")
        settings = flatten_settings(data, strict=True)
        try:
            return cls.from_flat(**settings)
        except TypeError as exc:  # a hand-edited file: "epochs": "5" fails the first comparison
            raise ConfigError(f"training settings hold a value of the wrong type ({exc})") from None


def flatten_settings(data: dict, strict: bool = False) -> dict:
    """A saved config in either form -> {flat name: value}, unchecked; unknown keys kept (refused if strict)."""
    flat, unknown = {}, []
    for name, value in data.items():
        if name in GROUPS and isinstance(value, dict):
            for key, inner in value.items():
                flat_name = _FLAT_RENAMES.get((name, key), key)
                if FLAT_NAMES.get(flat_name) == (name, key):
                    flat[flat_name] = inner
                else:
                    unknown.append(f"{name}.{key}")
                    flat[f"{name}.{key}"] = inner
        else:
            if name not in FLAT_NAMES:
                unknown.append(name)
            flat[name] = value
    if strict and unknown:
        raise ConfigError(f"unknown training settings: {', '.join(sorted(unknown))}")
    return flat


def flat_field(name: str) -> Field:
    """The dataclass field behind a flat name (its type and default)."""
    group, key = FLAT_NAMES[name]
    return next(f for f in fields(TrainConfig if group is None else GROUPS[group]) if f.name == key)


# flat name -> (group or None for TrainConfig's own fields, field name in it)
FLAT_NAMES: dict[str, tuple[str | None, str]] = {
    **{f.name: (None, f.name) for f in fields(TrainConfig) if f.name not in GROUPS},
    **{_FLAT_RENAMES.get((group, f.name), f.name): (group, f.name)
       for group, cls in GROUPS.items() for f in fields(cls)},
}
