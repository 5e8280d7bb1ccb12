"""Labels and predictions of non-numeric dtypes are refused by name at every entry point."""

from __future__ import annotations

import numpy as np
import pytest

import jaxseg

STRINGS = np.array([["a", "b"], ["b", "a"]])
OBJECTS = np.array([[0, None], [1, 0]], dtype=object)
INTS = np.array([[0, 1], [1, 0]], np.int32)
LOGITS = np.zeros((2, 2, 2), np.float32)


def _batch(x):
    """A leading batch axis for arrays and nested lists alike."""
    return [x] if isinstance(x, list) else x[None]


# (call, the argument that gets the bad array)
CALLS = {
    "ConfusionMatrix.from_predictions/labels": (
        lambda bad: jaxseg.ConfusionMatrix.from_predictions(INTS, bad, num_classes=2),
        "labels",
    ),
    "ConfusionMatrix.from_predictions/preds": (
        lambda bad: jaxseg.ConfusionMatrix.from_predictions(bad, INTS, num_classes=2),
        "preds",
    ),
    "ConfusionMatrix.from_logits": (
        lambda bad: jaxseg.ConfusionMatrix.from_logits(LOGITS, bad),
        "labels",
    ),
    "BinaryStats.from_predictions": (
        lambda bad: jaxseg.BinaryStats.from_predictions(LOGITS, np.stack([bad, bad], -1)),
        "labels",
    ),
    "BoundaryStats.from_predictions": (
        lambda bad: jaxseg.BoundaryStats.from_predictions(INTS, bad, num_classes=2),
        "labels",
    ),
    "SoftStats.from_logits": (lambda bad: jaxseg.SoftStats.from_logits(LOGITS, bad), "labels"),
    "dice_loss": (lambda bad: jaxseg.dice_loss(LOGITS[None], _batch(bad)), "labels"),
    "cross_entropy_loss": (
        lambda bad: jaxseg.cross_entropy_loss(LOGITS[None], _batch(bad)),
        "labels",
    ),
    "hausdorff_distance/labels": (
        lambda bad: jaxseg.hausdorff_distance(INTS[None], _batch(bad), num_classes=2),
        "labels",
    ),
    "hausdorff_distance/predictions": (
        lambda bad: jaxseg.hausdorff_distance(_batch(bad), INTS[None], num_classes=2),
        "predictions",
    ),
}


@pytest.mark.parametrize("bad", [STRINGS, STRINGS.astype("S1"), OBJECTS, STRINGS.tolist()])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_non_numeric_labels_name_the_argument(call, bad):
    fn, name = CALLS[call]
    with pytest.raises(TypeError, match=f"`{name}`"):
        fn(bad)
