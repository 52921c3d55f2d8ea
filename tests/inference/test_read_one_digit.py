"""`read` on an image of one digit answers what `predict` answers; a narrow pair stays two digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inference_helpers import encode


def drawn(strokes, size=(140, 110), width=9) -> bytes:
    """PNG of pen strokes (lists of (x, y) points), dark on white."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for points in strokes:
        draw.line(points, fill=0, width=width, joint="curve")
    return encode(image)


FIVE_DETACHED_BAR = [
    [(40, 22), (96, 18)],                                       # the bar, lifted off the stem
    [(36, 34), (32, 70)],                                       # the stem
    [(32, 70), (60, 62), (84, 76), (88, 100), (70, 120), (40, 122), (24, 112)],  # the bowl
]
ONE = [[(0, 20), (0, 120)]]


# MNIST test digits cropped tight to their ink and shrunk (bench/real_world_sets.tight_crop): a 5 whose
# bar came off, a 5 in two pieces, a 9 and a 2 in pieces. uint8 grey, dark ink on white, row by row.
TIGHT = {
    "five16": (16, "fffffffffffffffffffffffffffffffffffffffffeffffded3d4c9c4aa909b8dfffffefcfdea751d090c000000001256"
               "ffffffffffd80f000000285362b7dafffffff8501493bb52a6e3eefafcfffffdfef66b0023cbfffffffffffffffbfdfeffd71700"
               "44c4fffffcfefefefefffffffdf3882000075beafffeffffffffffffffffffe271310022e7ffffffffffffffe8fffeffffcf2f00"
               "77fffcffffffffff73d5ffffffffa50262fffcffffffffff027ff2f0edb6240091fffdffffffffff270032411c002493ffffffff"
               "ffffffffb92904001371e6fffeffffffffffffffffdec4b3cefffffbffffffffffffffffffffffffffffffffffffffffffffffff"),
    "five8": (8, "ffffffffffffffffffdfc95360544671af45d6bcdbebeaeb8f216dceffffffffffd8bb4a99fefbfec7fbd6448dfffcff5140439e"
              "fffeffffffffffffffffffff"),
    "nine8": (8, "ffe84200189efeffff5d2ea14f6cfeffff4d95bc49aaffffffab0000644cddffffffbedbffb1aefffffeefbfffbb7fffffffdb0853"
              "4278fffffeff8d020fddff"),
    "two8": (8, "fffefef7790f18a3fffdffda27a66964fffffffcfff51a63fefcfcf8ff9720e2fffffffffb42a5ffea74818a291decff52527d00"
             "46641e929d31468cffffb79a"),
}


@pytest.mark.parametrize("crop", [None, (20, 8, 104, 130)])
def test_a_five_with_a_detached_bar_reads_as_predict_answers(shipped, crop):
    data = drawn(FIVE_DETACHED_BAR)
    if crop is not None:  # cropped tight to the ink: wider than tall pieces, two groups
        from io import BytesIO

        data = encode(Image.open(BytesIO(data)).crop(crop))
    predicted = shipped.predict_one(data)
    assert predicted.digit == 5
    assert shipped.read(data).number == "5"


@pytest.mark.parametrize("name", sorted(TIGHT))
def test_a_tight_crop_in_pieces_reads_as_predict_answers(shipped, name):
    side, hexed = TIGHT[name]
    data = encode(Image.fromarray(np.frombuffer(bytes.fromhex(hexed), np.uint8).reshape(side, side)))
    predicted = shipped.predict_one(data)
    assert shipped.read(data).number == str(predicted.digit)


def test_one_piece_reading_is_predicts_digit(shipped):
    image = np.full((300, 300), 255, np.uint8)
    image[60:240, 140:152] = 0      # a 1
    image[8:12, 8:12] = 0           # a speck in the corner: predict leaves it out
    data = encode(Image.fromarray(image))
    assert shipped.read(data).number == str(shipped.predict_one(data).digit) == "1"


def test_a_faint_pencil_digit_only_the_coarse_pass_finds_reads_as_predict_answers(shipped):
    from digitlab.inference.decode import load_image
    from digitlab.inference.preprocess import extract_ink

    # A faint pencil 1 in a 982x737 phone photo (bench/real_world_sets.pencil_photo): at full scale its
    # line is under the contrast floor; predict's coarse pass, where noise averages out, finds it.
    data = (Path(__file__).parent / "images" / "faint_pencil_1.jpg").read_bytes()
    assert extract_ink(load_image(data)[0]).mask is None
    assert shipped.predict_one(data).digit == 1
    assert shipped.read(data).number == "1"


def test_a_narrow_pair_of_ones_stays_two_digits(shipped):
    strokes = [[(x + dx, y) for x, y in ONE[0]] for dx in (30, 62)]
    reading = shipped.read(drawn(strokes, size=(100, 140)))
    assert reading.number == "11"


WIDE = {
    "seven": [[(10, 20), (150, 20), (90, 100)]],                              # a long bar over its stem
    "open four": [[(20, 20), (25, 75), (95, 75)], [(95, 20), (100, 90), (125, 92)]],  # like a "u"
}


@pytest.mark.parametrize("name", sorted(WIDE))
def test_a_digit_wider_than_tall_reads_as_predict_answers(shipped, name):
    """Cut where its strokes meet, such a digit falls into a short part and a tall one whose columns
    touch: one digit, as predict reads it, not two."""
    data = drawn(WIDE[name], size=(200, 110))
    predicted = shipped.predict_one(data)
    assert predicted.digit == {"seven": 7, "open four": 4}[name]
    assert shipped.read(data).number == str(predicted.digit)


PAIRS = {  # two digits of unequal height with a gap between them: narrower than one wide digit
    "14": ([[(20, 10), (20, 115)], [(90, 40), (65, 85), (125, 85)], [(110, 55), (112, 115)]], (160, 125)),
    "70": ([[(15, 15), (75, 15), (40, 115)], [(120, 50), (100, 80), (120, 112), (140, 80), (120, 50)]], (170, 125)),
    "12": ([[(20, 10), (20, 115)], [(60, 60), (85, 45), (105, 60), (60, 112), (115, 112)]], (140, 125)),
}


@pytest.mark.parametrize("number", sorted(PAIRS))
def test_two_digits_with_a_gap_between_them_stay_two(shipped, number):
    strokes, size = PAIRS[number]
    assert shipped.read(drawn(strokes, size=size)).number == number
