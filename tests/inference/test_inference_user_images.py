"""Integration: real MNIST test digits rendered as people's own images, read by the shipped model.

The renderer (render.py) draws each digit dark on white, anywhere on a 400x400 canvas, bold or thin,
JPEG-compressed, under uneven light with a shadow and noise, on ruled or squared paper, small with a
fine pen in a large photo, or as RGBA on a transparent background. The label is the MNIST label.
"""

from __future__ import annotations

import numpy as np
import pytest

from render import naive_28, render_number_set, render_user_set

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shipped():
    from digitlab.inference.recognizer import Recognizer
    from digitlab.models.storage import pretrained_path

    if not (pretrained_path() / "model.json").exists():
        pytest.skip("no shipped pretrained model in src/digitlab/pretrained")
    return Recognizer.load()


def test_user_images_are_recognised_and_naive_preprocessing_is_not(mnist, shipped):
    rendered = render_user_set(mnist.x_test[:360], mnist.y_test[:360], 360, seed=1)
    labels = np.array([label for _, label, _ in rendered])
    predictions = shipped.predict([data for data, _, _ in rendered])
    assert all(p.error is None for p in predictions)
    ours = np.array([-1 if p.digit is None else p.digit for p in predictions])
    naive = shipped.predict_batch28(np.stack([naive_28(data) for data, _, _ in rendered])).argmax(axis=1)
    accuracy, naive_accuracy = float((ours == labels).mean()), float((naive == labels).mean())
    print(f"user images: recognizer {accuracy:.4f}, naive resize {naive_accuracy:.4f}")
    assert accuracy >= 0.985
    assert naive_accuracy < 0.5  # dark ink on white, off-centre: the naive input is not MNIST


def test_multi_digit_numbers_are_read(mnist, shipped):
    """The issue's goal is 95% of whole numbers; this build reads about 95% (94.7-95.0% over 300-1000
    numbers on seeds 1, 7 and 11, see bench/user_images.py; 95.0% on these 120, 96.7% with the right
    digit count). The misses are digits touching along a long contact and halves of a digit read
    as two. The floor (6 more misses than now) catches regressions without pretending the goal is met."""
    numbers = render_number_set(mnist.x_test[5000:], mnist.y_test[5000:], 120, seed=2)
    read = [shipped.read(data).number for data, _ in numbers]
    accuracy = float(np.mean([r == truth for r, (_, truth) in zip(read, numbers)]))
    digits = float(np.mean([len(r) == len(t) for r, (_, t) in zip(read, numbers)]))
    print(f"numbers of 3-6 digits read whole: {accuracy:.4f} (right digit count {digits:.4f})")
    assert accuracy >= 0.9 and digits >= 0.93
