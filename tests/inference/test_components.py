"""Connected pieces of an ink mask: which ones are the pen's."""

from __future__ import annotations

import numpy as np

from digitlab.inference.components import drop_faint, drop_texture, euler_number


def test_a_piece_much_fainter_than_the_pen_is_dropped():
    ink = np.zeros((60, 60), np.float32)
    ink[10:50, 10:14] = 0.95   # the pen's stroke
    ink[10:50, 40:42] = 0.45   # a sliver left by a shadow's edge: as strong as the shadow is deep
    ink[5:7, 30:33] = 0.9      # a small piece at the pen's strength stays
    mask = ink > 0.3
    kept = drop_faint(mask, ink)
    assert kept[10:50, 10:14].all() and kept[5:7, 30:33].all()
    assert not kept[:, 40:42].any()


def test_pieces_of_one_strength_are_all_kept():
    ink = np.zeros((40, 40), np.float32)
    ink[5:35, 5:8] = 0.7
    ink[5:35, 20:23] = 0.55  # a lighter stroke of the same pen (over 60% of the strongest)
    mask = ink > 0.3
    assert np.array_equal(drop_faint(mask, ink), mask)


def grainy(shape, seed=0) -> np.ndarray:
    """A surface's grain after thresholding: ink with holes everywhere."""
    return np.random.default_rng(seed).random(shape) < 0.7


def eight(mask: np.ndarray, y: int, x: int) -> None:
    """Two stacked rings: the most holes (2) a digit has."""
    for dy in (0, 30):
        mask[y + dy : y + dy + 30, x : x + 24] = True
        mask[y + dy + 6 : y + dy + 24, x + 6 : x + 18] = False


def test_grain_near_the_frame_is_dropped_and_a_digit_beside_it_kept():
    mask = np.zeros((200, 200), bool)
    mask[10:110, 8:36] = grainy((100, 28))  # a table's grain, clear of the frame by 8 px
    eight(mask, 120, 4)                     # an 8 touching the frame's left side: 2 holes
    eight(mask, 70, 100)
    kept = drop_texture(mask)
    assert not kept[10:110, 8:36].any()
    assert np.array_equal(kept[110:], mask[110:]) and np.array_equal(kept[:, 60:], mask[:, 60:])


def test_grain_far_from_the_frame_or_alone_is_kept():
    mask = np.zeros((200, 200), bool)
    mask[60:140, 70:130] = grainy((80, 60))  # in the middle: what the user pointed the camera at
    assert np.array_equal(drop_texture(mask), mask)
    alone = np.zeros((200, 200), bool)
    alone[0:100, 0:30] = grainy((100, 30))  # nothing else: the mask is left as it is
    assert np.array_equal(drop_texture(alone), alone)
    alone[150, 150] = alone[20, 150] = True  # specks beside it do not count as something else
    assert np.array_equal(drop_texture(alone), alone)


def test_euler_number_counts_pieces_minus_holes_as_labelling_does():
    from scipy import ndimage

    mask = np.zeros((80, 80), bool)
    eight(mask, 5, 5)                      # 1 piece, 2 holes
    mask[10, 50] = mask[11, 51] = True     # touching at a corner: 1 piece (8-connected)
    mask[40:60, 40:60] = grainy((20, 20))  # 1 piece or more, many holes
    pieces = ndimage.label(mask, structure=np.ones((3, 3), bool))[1]
    holes = ndimage.label(ndimage.binary_fill_holes(mask) & ~mask)[1]
    assert euler_number(mask) == pieces - holes
    assert euler_number(mask[:70, :35]) == -1  # the 8 alone


def test_grain_broken_into_a_field_of_pieces_near_the_frame_is_dropped():
    mask = np.zeros((200, 200), bool)
    for row, y in enumerate(range(10, 110, 2)):  # a wood grain's streaks, thresholded: 1x12 flecks
        for x in (2, 16):
            x += 7 * (row % 2)
            mask[y, x : x + 12] = True
    eight(mask, 70, 100)
    for y in (130, 150, 170):  # a 1 broken in three strokes near the frame: a few pieces, kept
        mask[y : y + 15, 180:186] = True
    field = (slice(10, 110), slice(2, 36))
    kept = drop_texture(mask)
    assert kept[field].sum() < 0.3 * mask[field].sum()  # all but some flecks at the field's rim
    assert np.array_equal(kept[:, 60:], mask[:, 60:])
