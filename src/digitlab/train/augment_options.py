"""The augmentations' names, default strengths and range checks, without torch.

TrainConfig checks `--augment-arg` values here when it is built, so a bad strength fails in one line
before anything heavy loads; digitlab.train.augment applies them.
"""

from __future__ import annotations

import math

from digitlab.errors import ConfigError

AFFINE_DEFAULTS = {"rotate": 10.0, "shift": 2.0, "scale": 0.1, "shear": 10.0}  # degrees, px, fraction, degrees
ELASTIC_DEFAULTS = {**AFFINE_DEFAULTS, "alpha": 34.0, "sigma": 4.0}  # Simard's alpha (px) and sigma (px)
# The writing-style strengths of "styles" (digitlab.train.augment_styles).
STYLE_OPTIONS = {
    "thick": 1.0,  # strongest thickening: the share of a 3x3 dilation blended in, in [0, 1]
    "thin": 0.5,  # strongest thinning: the share of a 3x3 erosion blended in, in [0, 1]
    "stroke_p": 0.4,  # share of images whose stroke width changes
    "blur": 1.0,  # strongest Gaussian blur, sigma in px (0-3)
    "blur_p": 0.2,
    "lowres_min": 6.0,  # the digit's resolution (its 20-px box, as MNIST frames it) drawn in [min, max] px
    "lowres_max": 16.0,
    "lowres_p": 0.25,
    "quantise_p": 0.5,  # share of the low-resolution images quantised to 16 grey levels, as sklearn's digits
}
PROBABILITIES = ("stroke_p", "blur_p", "lowres_p", "quantise_p")
# styles: the affine map (elastic where alpha > 0) plus stroke width, blur and low resolution, drawn per image.
STYLES_DEFAULTS = {**AFFINE_DEFAULTS, "alpha": 0.0, "sigma": 4.0, **STYLE_OPTIONS}
DEFAULTS = {"none": {}, "affine": AFFINE_DEFAULTS, "elastic": ELASTIC_DEFAULTS, "styles": STYLES_DEFAULTS}


def check_style_options(opts: dict) -> None:
    """One-line ConfigError for a strength out of its range."""
    for key in (*PROBABILITIES, "thick", "thin"):
        if not 0 <= opts[key] <= 1:
            raise ConfigError(f"augmentation option {key} must be in [0, 1], got {opts[key]}")
    if not opts["blur"] <= 3:
        raise ConfigError(f"augmentation option blur (sigma, px) must be in [0, 3], got {opts['blur']}")
    if not 4 <= opts["lowres_min"] <= opts["lowres_max"] <= 20:
        raise ConfigError("augmentation options lowres_min and lowres_max must satisfy 4 <= min <= max <= 20 "
                          f"(px across the digit), got {opts['lowres_min']} and {opts['lowres_max']}")


def augment_options(name: str, **opts) -> dict:
    """DEFAULTS[name] with `opts` over them, as floats, every name and range checked (one line each)."""
    if name not in DEFAULTS:
        raise ConfigError(f"unknown augmentation {name!r}: choose one of {', '.join(DEFAULTS)}")
    defaults = DEFAULTS[name]
    unknown = set(opts) - set(defaults)
    if unknown:
        raise ConfigError(f"augmentation {name!r} has no option {', '.join(sorted(unknown))}: "
                          f"valid options are {', '.join(defaults) or 'none'}")
    try:
        merged = {**defaults, **{k: float(v) for k, v in opts.items()}}
    except (TypeError, ValueError):
        raise ConfigError(f"augmentation options must be numbers, got {opts}") from None
    for key, value in merged.items():
        if not value >= 0 or math.isinf(value):
            raise ConfigError(f"augmentation option {key} must be a finite number >= 0, got {value}")
    if merged.get("scale", 0) >= 1:
        raise ConfigError(f"augmentation scale must be < 1 (a fraction, e.g. 0.1), got {merged['scale']}")
    if merged.get("shear", 0) >= 90 or merged.get("rotate", 0) > 180:
        raise ConfigError("augmentation shear must be < 90 degrees and rotation <= 180 degrees")
    if name == "styles":
        check_style_options(merged)
    if name in ("elastic", "styles") and merged["sigma"] <= 0:
        raise ConfigError(f"elastic sigma must be > 0 px, got {merged['sigma']}")
    return merged
