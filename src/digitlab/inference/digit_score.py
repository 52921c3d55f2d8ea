"""How well a candidate piece of ink reads as one digit: the score the multi-digit reading maximises.

The model's log probability, plus priors measured on MNIST and on generated numbers: each class's
width/height and stroke length, and penalties for a candidate that is short (a piece of a digit),
has empty columns inside (two digits with space between) or is wide (two digits that touch).
See digitlab.inference.segment for how the reading uses it.
"""

from __future__ import annotations

import numpy as np

from digitlab.inference.digit28 import _erode_cross

# log(width / height) of MNIST training digits per class 0-9 (bounding box of pixels > 127): mean, std
ASPECT_LOG_MEAN = (-0.119, -1.007, -0.083, -0.262, -0.270, -0.086, -0.360, -0.294, -0.311, -0.433)
ASPECT_LOG_STD = (0.218, 0.489, 0.242, 0.226, 0.229, 0.286, 0.229, 0.230, 0.237, 0.215)
SHORT = 0.75          # a digit shorter than 75% of the line is likely a piece of one
SHORT_WEIGHT = 3.0    # cost per unit of log(SHORT * line height / height)
GAP_WEIGHT = 1.0      # cost per line height of empty columns inside a digit
DIGIT_BONUS = 0.25    # added per digit: > 0 favours more, smaller digits
WIDE = 1.0            # a digit wider than the line is tall is likely two that touch
WIDE_WEIGHT = 1.0     # cost per line height of width beyond WIDE
LOG_P_WEIGHT = 2.0    # the model's log probability counts twice: its confidence tops out near 0.92
                      # (label smoothing), so a doubtful reading of two touching digits as one
                      # otherwise costs too little next to the priors
RUN_ASPECT_WEIGHT = 0.1  # the width/height prior's weight in a candidate's score
ODD_ASPECT = 2.5      # beyond 2.5 standard deviations a width/height is implausible for a class
ODD_ASPECT_WEIGHT = 1.0  # cost per squared standard deviation beyond ODD_ASPECT
# log(length of a digit's strokes / line height) per class 0-9, the length being half the ink's boundary
# (a ribbon's length, whatever the pen's width): mean, std over the correctly read digits of 1,000
# generated numbers (seeds 3 and 5)
INK_LOG_MEAN = (0.817, 0.126, 0.764, 0.738, 0.605, 0.775, 0.640, 0.498, 0.746, 0.604)
INK_LOG_STD = (0.119, 0.092, 0.150, 0.144, 0.116, 0.133, 0.156, 0.113, 0.133, 0.128)
LITTLE_INK = 4.0      # beyond 4 standard deviations shorter than the class's strokes: a piece (half a 0 is no 5)
MUCH_INK = 2.5        # beyond 2.5 longer: likely two digits that touch (an 88 is no 8)
INK_WEIGHT = 1.0      # cost per squared standard deviation beyond those


def candidate_score(mask: np.ndarray, probs: np.ndarray, line_height: float) -> float:
    """How well a candidate reads as one digit: the model's log probability (times LOG_P_WEIGHT)
    plus the width/height and stroke-length priors of the class that maximises their sum, less
    penalties for being short (a piece of a digit), for columns without ink inside it (two digits
    with space between) and for being wide."""
    y0, x0, y1, x1 = box_of(mask)
    height = y1 - y0
    log_p = LOG_P_WEIGHT * np.log(np.maximum(probs, 1e-6))
    if len(probs) == len(ASPECT_LOG_MEAN):
        z = (np.log((x1 - x0) / height) - np.array(ASPECT_LOG_MEAN)) / np.array(ASPECT_LOG_STD)
        log_p = log_p - RUN_ASPECT_WEIGHT * 0.5 * z**2 - ODD_ASPECT_WEIGHT * np.maximum(0.0, np.abs(z) - ODD_ASPECT) ** 2
        crop = mask[y0:y1, x0:x1]
        length = max(np.count_nonzero(crop & ~_erode_cross(crop)) / 2.0, 1.0) / line_height
        z = (np.log(length) - np.array(INK_LOG_MEAN)) / np.array(INK_LOG_STD)
        odd = np.maximum(0.0, -z - LITTLE_INK) ** 2 + np.maximum(0.0, z - MUCH_INK) ** 2
        log_p = log_p - INK_WEIGHT * odd
    short = max(0.0, np.log(SHORT * line_height / height))
    cols = mask[y0:y1, x0:x1].any(axis=0)
    gap = longest_false_run(cols) / line_height
    wide = max(0.0, (x1 - x0) / line_height - WIDE)
    return float(log_p.max()) - SHORT_WEIGHT * short - GAP_WEIGHT * gap - WIDE_WEIGHT * wide + DIGIT_BONUS


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def longest_false_run(values: np.ndarray) -> int:
    """Length of the longest run of False in a bool vector."""
    best = run = 0
    for v in values:
        run = 0 if v else run + 1
        best = max(best, run)
    return best
