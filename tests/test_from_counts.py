"""ConfusionMatrix.from_counts and BinaryStats.from_counts: exact host counts in, same state out."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxseg
from jaxseg import BinaryStats, ConfusionMatrix

SCORES = (jaxseg.iou, jaxseg.dice, jaxseg.precision, jaxseg.recall)


def _leaves_equal(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_confusion_round_trip_and_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 5, (3, 9, 7)).astype(np.int32)
    preds = rng.integers(0, 5, (3, 9, 7)).astype(np.int32)
    preds[0, 0] = 255  # void predictions
    s = ConfusionMatrix.from_predictions(preds, labels, num_classes=4, ignore_index=-1)
    invalid = int(np.sum(labels == 4))
    assert invalid > 0 and s.void_to_numpy().sum() > 0
    back = ConfusionMatrix.from_counts(
        s.to_numpy(), void=s.void_to_numpy(), invalid=invalid, ignore_index=-1
    )
    _leaves_equal(back, s)
    for score in SCORES:
        np.testing.assert_array_equal(score(back, average=None), score(s, average=None))
    # batched states round-trip too
    per_image = jax.vmap(
        lambda p, y: ConfusionMatrix.from_predictions(p, y, num_classes=4, ignore_index=-1)
    )(preds, labels)
    invalid_per_image = np.sum(labels == 4, axis=(1, 2))
    back = ConfusionMatrix.from_counts(
        per_image.to_numpy(),
        void=per_image.void_to_numpy(),
        invalid=invalid_per_image,
        ignore_index=-1,
    )
    _leaves_equal(back, per_image)
    _leaves_equal(back.reduce(), s)


def test_confusion_counts_above_2_31_are_exact_without_x64():
    assert not jax.config.jax_enable_x64
    m = np.array([[2**47 + 3, 2**31 + 1], [5, 2**40 - 7]], np.int64)
    void = np.array([2**33 + 11, 0], np.int64)
    s = ConfusionMatrix.from_counts(m, void=void, invalid=2**35)
    np.testing.assert_array_equal(s.to_numpy(), m)
    np.testing.assert_array_equal(s.void_to_numpy(), void)
    assert int(jaxseg._counts.to_int64_numpy(s.invalid)) == 2**35
    # merging keeps them exact
    np.testing.assert_array_equal((s + s).to_numpy(), 2 * m)
    # scores from the exact counts, against float64 NumPy
    tp = np.diag(m).astype(np.float64)
    fp = m.sum(0) - np.diag(m)
    fn = m.sum(1) - np.diag(m) + void
    np.testing.assert_allclose(jaxseg.iou(s, average=None), tp / (tp + fp + fn), rtol=1e-6)
    # any integer dtype and plain Python ints
    small = [[3, 1], [0, 2]]
    for arr in (small, np.asarray(small, np.uint8), np.asarray(small, np.uint64)):
        np.testing.assert_array_equal(ConfusionMatrix.from_counts(arr).to_numpy(), small)


def test_confusion_from_counts_bad_input_is_named():
    good = np.eye(3, dtype=np.int64)
    with pytest.raises(ValueError, match=r"`matrix` must be non-negative"):
        ConfusionMatrix.from_counts(-good)
    with pytest.raises(TypeError, match=r"`matrix` must hold integers; got dtype float64"):
        ConfusionMatrix.from_counts(good.astype(np.float64))
    with pytest.raises(TypeError, match=r"`matrix` must hold integers; got dtype bool"):
        ConfusionMatrix.from_counts(good.astype(bool))
    with pytest.raises(
        ValueError, match=r"`matrix` must have shape \[\.\.\., C, C\]; got \(3, 2\)"
    ):
        ConfusionMatrix.from_counts(np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match=r"`matrix` must have shape \[\.\.\., C, C\]; got \(3,\)"):
        ConfusionMatrix.from_counts(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"`matrix` counts must be below 2\*\*48"):
        ConfusionMatrix.from_counts(good * 2**48)
    with pytest.raises(ValueError, match=r"`void` must have shape \(3,\); got \(2,\)"):
        ConfusionMatrix.from_counts(good, void=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"`invalid` must be non-negative"):
        ConfusionMatrix.from_counts(good, invalid=-1)
    with pytest.raises(TypeError, match=r"`invalid` must hold integers"):
        ConfusionMatrix.from_counts(good, invalid=1.5)
    with pytest.raises(TypeError, match=r"`matrix` must be concrete host counts"):
        jax.jit(ConfusionMatrix.from_counts)(good)


def test_binary_round_trip_and_errors():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (6, 5, 2)).astype(np.int32)  # 2 is invalid
    preds = rng.random((6, 5, 2)) < 0.5
    s = BinaryStats.from_predictions(preds, labels)
    invalid = int(np.sum(np.any(labels == 2, axis=-1)))
    back = BinaryStats.from_counts(s.to_numpy(), invalid=int(jax.device_get(s.num_invalid)))
    _leaves_equal(back, s)
    assert invalid >= 0
    for score in (*SCORES, jaxseg.specificity, jaxseg.balanced_accuracy):
        np.testing.assert_array_equal(score(back, average=None), score(s, average=None))
    rows = np.array([[2**40, 1], [3, 0], [0, 2**33], [7, 2**31 + 9]], np.int64)
    np.testing.assert_array_equal(BinaryStats.from_counts(rows).to_numpy(), rows)
    with pytest.raises(
        ValueError, match=r"`counts` must have shape \[\.\.\., 4, C\]; got \(3, 2\)"
    ):
        BinaryStats.from_counts(np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match=r"`counts` must be non-negative"):
        BinaryStats.from_counts(-rows)
    with pytest.raises(TypeError, match=r"`counts` must hold integers"):
        BinaryStats.from_counts(rows.astype(np.float32))
