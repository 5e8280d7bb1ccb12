"""Bad input raises at trace time, naming the argument and showing the value (DESIGN 4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import BinaryStats, ConfusionMatrix, SoftStats

LOGITS = jnp.zeros((2, 3, 4))
LABELS = jnp.zeros((2, 3), jnp.int32)
CM = ConfusionMatrix.from_logits(LOGITS, LABELS)


def test_float_labels_where_ints_are_needed():
    msg = r"`labels` must hold integer class ids; got dtype float32"
    with pytest.raises(TypeError, match=msg):
        ConfusionMatrix.from_logits(LOGITS, LABELS.astype(jnp.float32))
    with pytest.raises(TypeError, match=msg):
        SoftStats.from_logits(LOGITS, LABELS.astype(jnp.float32))
    with pytest.raises(TypeError, match=r"`preds` must hold integer class ids; got dtype float32"):
        ConfusionMatrix.from_predictions(LABELS.astype(jnp.float32), LABELS, num_classes=4)


def test_labels_shape_must_be_logits_shape_without_classes():
    with pytest.raises(
        ValueError, match=r"`labels` must have shape `logits.shape\[:-1\]` = \(2, 3\)"
    ):
        ConfusionMatrix.from_logits(LOGITS, jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match=r"got \(3, 2\)"):
        SoftStats.from_logits(LOGITS, jnp.zeros((3, 2), jnp.int32))


def test_preds_labels_shape_mismatch():
    with pytest.raises(
        ValueError, match=r"`preds` and `labels` must have the same shape; got \(2, 3\) and \(3,\)"
    ):
        ConfusionMatrix.from_predictions(LABELS, jnp.zeros(3, jnp.int32), num_classes=4)
    with pytest.raises(ValueError, match=r"`logits` and `labels` must have the same shape"):
        BinaryStats.from_logits(LOGITS, LABELS)


@pytest.mark.parametrize("name", ["beta", "alpha"])
def test_negative_hyperparameters(name):
    fn = jaxseg.fbeta if name == "beta" else jaxseg.tversky
    with pytest.raises(ValueError, match=rf"`{name}` must be finite and >= 0; got -1.0"):
        fn(CM, **{name: -1.0})
    with pytest.raises(TypeError, match=rf"`{name}` must be a non-negative number; got 'x'"):
        fn(CM, **{name: "x"})


def test_unknown_average():
    msg = r"`average` must be one of \[None, 'micro', 'macro', 'weighted'\]; got 'mean'"
    with pytest.raises(ValueError, match=msg):
        jaxseg.iou(CM, average="mean")
    with pytest.raises(ValueError, match=r"got 1"):
        jaxseg.dice(CM, average=1)


def test_unknown_scheme_and_weighting():
    msg = r"`scheme` must be one of \['inverse', 'inverse_sqrt', 'median', 'enet'\]; got 'log'"
    with pytest.raises(ValueError, match=msg):
        jaxseg.class_weights_from_counts(jnp.ones(3), scheme="log")
    with pytest.raises(ValueError, match=r"`weighting` must be one of .*; got 'cubic'"):
        jaxseg.generalized_dice(CM, weighting="cubic")
    with pytest.raises(ValueError, match=r"`activation` must be one of .*; got 'relu'"):
        SoftStats.from_logits(LOGITS, LABELS, activation="relu")


def test_class_weights_counts_wrong_rank():
    with pytest.raises(ValueError, match=r"counts of shape \[C\]; got shape \(2, 2\)"):
        jaxseg.class_weights_from_counts(jnp.ones((2, 2)))
    batched = jax.vmap(ConfusionMatrix.from_logits)(LOGITS, LABELS)
    with pytest.raises(ValueError, match=r"dataset-level state; call `.reduce\(\)` first"):
        jaxseg.class_weights_from_counts(batched)


@pytest.mark.parametrize("bad", [0, -3])
def test_num_classes_not_positive(bad):
    with pytest.raises(ValueError, match=rf"`num_classes` must be a positive int; got {bad}"):
        ConfusionMatrix.empty(bad)


@pytest.mark.parametrize("bad", [2.0, "3", None, True])
def test_num_classes_not_int(bad):
    with pytest.raises(TypeError, match=r"`num_classes` must be a positive int; got"):
        ConfusionMatrix.from_predictions(LABELS, LABELS, num_classes=bad)


@pytest.mark.parametrize("bad", [2.5, "255", True, (1, 2.0)])
def test_bad_ignore_index_type(bad):
    with pytest.raises(TypeError, match=r"`ignore_index` must be None, an int or a tuple of ints"):
        ConfusionMatrix.from_logits(LOGITS, LABELS, ignore_index=bad)


def test_float_labels_with_ignore_index_in_soft_stats():
    with pytest.raises(ValueError, match=r"`ignore_index` applies to integer labels"):
        SoftStats.from_logits(LOGITS, jnp.zeros((2, 3, 4)), ignore_index=255)


def test_threshold_shape_and_range():
    y = jnp.zeros((2, 3, 4), jnp.int32)
    with pytest.raises(
        ValueError, match=r"`threshold` must be a scalar or have shape \(4,\); got shape \(3,\)"
    ):
        BinaryStats.from_logits(LOGITS, y, threshold=jnp.ones(3) / 2)
    with pytest.raises(ValueError, match=r"`threshold` must lie in \[0, 1\]; got 1.5"):
        BinaryStats.from_logits(LOGITS, y, threshold=1.5)
    with pytest.raises(ValueError, match=r"`threshold` must lie in \[0, 1\]"):
        BinaryStats.from_logits(LOGITS, y, threshold=[0.5, 0.5, -0.1, 0.5])


def test_merge_different_states():
    with pytest.raises(
        ValueError, match=r"cannot merge states with different `num_classes`: 4 and 3"
    ):
        CM.merge(ConfusionMatrix.empty(3))
    with pytest.raises(
        TypeError, match=r"can only merge BinaryStats with BinaryStats; got ConfusionMatrix"
    ):
        BinaryStats.empty(4).merge(CM)
    with pytest.raises(ValueError, match=r"cannot merge states with different `num_classes`"):
        SoftStats.empty(3) + SoftStats.empty(4)
    with pytest.raises(TypeError, match=r"can only merge SoftStats with SoftStats"):
        SoftStats.empty(4) + CM


def test_where_not_bool_or_not_broadcastable():
    with pytest.raises(TypeError, match=r"`where` must be a boolean mask; got dtype int32"):
        ConfusionMatrix.from_logits(LOGITS, LABELS, where=jnp.ones((2, 3), jnp.int32))
    with pytest.raises(
        ValueError,
        match=r"`where` must broadcast to the per-pixel shape \(2, 3\); got shape \(2,\)",
    ):
        ConfusionMatrix.from_logits(LOGITS, LABELS, where=jnp.ones(2, bool))
    with pytest.raises(ValueError, match=r"`where` must broadcast"):
        SoftStats.from_logits(LOGITS, LABELS, where=np.ones((3, 3), bool))


def test_reduce_unbatched_state():
    with pytest.raises(
        ValueError, match=r"`reduce` folds a leading batch axis, but this state is not batched"
    ):
        CM.reduce()
    with pytest.raises(ValueError, match=r"`reduce` folds a leading batch axis"):
        SoftStats.empty(3).reduce()


def test_logits_checks():
    with pytest.raises(TypeError, match=r"`logits` must be floating point; got dtype int32"):
        ConfusionMatrix.from_logits(LABELS, LABELS)
    with pytest.raises(ValueError, match=r"`logits` must have a trailing class axis; got a scalar"):
        ConfusionMatrix.from_logits(jnp.float32(1.0), LABELS)


def test_scores_need_a_state_and_valid_empty():
    with pytest.raises(TypeError, match=r"scores take a statistics state .*; got ndarray"):
        jaxseg.iou(np.ones((3, 3)))
    with pytest.raises(TypeError, match=r"`empty` must be a number or NaN; got 'zero'"):
        jaxseg.iou(CM, empty="zero")


def test_static_errors_raise_under_jit_too():
    with pytest.raises(ValueError, match=r"`average` must be one of"):
        jax.jit(lambda s: jaxseg.iou(s, average="bad"))(CM)
    with pytest.raises(TypeError, match=r"`labels` must hold integer class ids"):
        jax.jit(ConfusionMatrix.from_logits)(LOGITS, LABELS.astype(jnp.float32))
