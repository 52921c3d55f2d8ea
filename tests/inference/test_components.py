"""Connected pieces of an ink mask: which ones are the pen's."""

from __future__ import annotations

import numpy as np

from digitlab.inference.components import drop_faint


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
