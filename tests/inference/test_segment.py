"""segment_line on small synthetic lines, with a stand-in classifier that reads everything as a
confident 0: what is left to decide the segmentation is the cut costs and the shape priors."""

from __future__ import annotations

import numpy as np

from digitlab.inference.segment import Segment, is_one_digit, segment_line, side_by_side


def ring(h: int = 60, w: int = 44, stroke: int = 7) -> np.ndarray:
    """Bool (h, w): an upright ellipse outline, a '0' of MNIST's proportions."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    return np.abs(r - (1 - stroke / h)) < stroke / h


def line_of(*pieces: tuple[np.ndarray, int]) -> np.ndarray:
    """A line 100 px tall with each (mask, x) drawn at row 20, overlapping where they meet."""
    canvas = np.zeros((100, 300), bool)
    for mask, x in pieces:
        canvas[20 : 20 + mask.shape[0], x : x + mask.shape[1]] |= mask
    return canvas


def confident_zero(x28: np.ndarray) -> np.ndarray:
    probs = np.full((len(x28), 10), 0.08 / 9, np.float32)
    probs[:, 0] = 0.92
    return probs


def boxes(mask: np.ndarray, classify=confident_zero):
    return [s.box for s in segment_line(mask.astype(np.float32), mask, classify)]


def test_one_ring_is_one_digit_even_when_its_halves_would_read_well():
    assert len(boxes(line_of((ring(), 40)))) == 1


def test_separate_rings_are_separate_digits_left_to_right():
    found = boxes(line_of((ring(), 40), (ring(), 120), (ring(), 200)))
    assert [b[1] for b in found] == sorted(b[1] for b in found)
    assert [abs(b[1] - x) <= 2 for b, x in zip(found, (40, 120, 200))] == [True] * 3


def test_touching_rings_are_two_digits():
    found = boxes(line_of((ring(), 40), (ring(), 83)))  # 1 px of overlap: one component
    assert len(found) == 2
    left, right = found
    assert abs(left[1] - 40) <= 2 and abs(right[3] - 127) <= 2
    # The cut may bend through the right ring's loop (fewer ink pixels than the long contact).
    assert 80 <= left[3] <= 96 and 80 <= right[1] <= 92


def test_a_broken_stroke_stays_with_its_digit():
    broken = ring()
    broken[:, 20:24] = False  # the ring in two halves, 4 px apart
    found = boxes(line_of((broken, 40), (ring(), 140)))
    assert len(found) == 2 and found[0][1] <= 41 and found[0][3] >= 83


def test_without_a_classifier_only_wide_groups_are_cut():
    assert len(boxes(line_of((ring(), 40)), classify=None)) == 1
    assert len(boxes(line_of((ring(), 40), (ring(), 80)), classify=None)) == 2


def test_cuts_anchored_at_a_middle_row_pass_through_it_and_cost_the_ink_they_cross():
    from digitlab.inference.cut_paths import anchored_paths

    # A bar across the top half, open below: a path through the middle row's gap crosses only the bar.
    local = np.zeros((20, 15), bool)
    local[2:5, :] = True
    local[8:, 4:11] = True
    local[8:, 7] = False  # a one-column slot through the lower half
    total, trace = anchored_paths(local, 10, 2, 13)
    assert np.isinf(total[:2]).all() and np.isinf(total[13:]).all()
    path = trace(7)
    assert path.shape == (20,) and path[10] == 7 and np.abs(np.diff(path)).max() <= 1
    assert total[7] == local[np.arange(20), path].sum() == 3  # the bar's three rows, nothing else
    assert total[5] > total[7]


def test_a_candidate_with_twice_a_digits_stroke_length_scores_lower():
    from digitlab.inference.digit_score import DIGIT_BONUS, LOG_P_WEIGHT, candidate_score

    probs = confident_zero(np.zeros((1, 28, 28), np.float32))[0]
    single = line_of((ring(), 40))
    double = single.copy()
    double[32:68, 50:74] |= ring(36, 24, 4)  # a second ring inside the first: same box, same aspect
    plain = candidate_score(single, probs, 60.0)
    # A plain 0 pays (almost) nothing for its strokes' length.
    assert plain > LOG_P_WEIGHT * np.log(0.92) + DIGIT_BONUS - 0.1
    assert candidate_score(double, probs, 60.0) < plain - 1.0


def ring_with_bar(bar: int = 40) -> np.ndarray:
    """Bool (60, 44 + bar): a ring with a bar from its top right (a 5 with a long flag, a 2 with a
    long base): as wide as 1.4 line heights, and cut into many atoms along the bar."""
    mask = np.zeros((60, 44 + bar), bool)
    mask[:, :44] = ring()
    mask[8:14, 36:] = True
    return mask


def test_a_digit_with_a_long_stroke_stays_whole():
    assert len(boxes(line_of((ring_with_bar(), 40)))) == 1


def slanted(h: int, w: int, x_top: float, x_bottom: float, width: float = 6) -> np.ndarray:
    """Bool (h, w): a straight stroke from (0, x_top) to (h, x_bottom)."""
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return np.abs(xx - (x_top + (x_bottom - x_top) * yy / h)) < width / 2


def ones_or_doubtful_zero(x28: np.ndarray) -> np.ndarray:
    """A stand-in classifier: a narrow input is a confident 1 (0.92), a wider one a doubtful 0 (0.6)."""
    probs = np.zeros((len(x28), 10), np.float32)
    for k, image in enumerate(x28):
        rows = np.flatnonzero(image.max(axis=1) > 0.3)
        cols = np.flatnonzero(image.max(axis=0) > 0.3)
        narrow = cols[-1] - cols[0] < 0.6 * (rows[-1] - rows[0])
        digit, p = (1, 0.92) if narrow else (0, 0.6)
        probs[k] = (1 - p) / 9
        probs[k, digit] = p
    return probs


def test_two_touching_digits_that_read_doubtfully_as_one_are_split():
    # Two 1s leaning into each other, touching at the top: one component, a doubtful 0 when whole.
    peak = slanted(60, 44, 20, 3) | slanted(60, 44, 24, 41)
    found = boxes(line_of((peak, 40)), ones_or_doubtful_zero)
    assert len(found) == 2
    assert found[0][1] <= 44 and found[1][3] >= 80 and found[0][3] <= found[1][1] + 8


def test_a_digit_in_pieces_is_digit_shaped_and_a_number_is_not():
    broken = ring()
    broken[:, 20:24] = False  # a 0 in two tall halves side by side: two groups, one digit's shape
    assert is_one_digit(line_of((broken, 40)))
    assert not is_one_digit(line_of((ring(), 40), (ring(), 90)))  # two digits: wider than tall


def test_side_by_side_needs_parts_of_the_inks_height():
    mask = line_of((ring(), 40))
    whole = Segment(mask, (20, 40, 80, 84))
    part = Segment(mask, (20, 40, 45, 84))  # a quarter of the height: a cut-off piece of one digit
    assert side_by_side([whole, whole], mask)
    assert not side_by_side([part, whole], mask)
