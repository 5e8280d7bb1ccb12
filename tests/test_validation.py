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
    with pytest.raises(
        TypeError, match=r"scores take statistics .*Statistics protocol.*; got ndarray"
    ):
        jaxseg.iou(np.ones((3, 3)))
    with pytest.raises(TypeError, match=r"`empty` must be a number or NaN; got 'zero'"):
        jaxseg.iou(CM, empty="zero")


def test_static_errors_raise_under_jit_too():
    with pytest.raises(ValueError, match=r"`average` must be one of"):
        jax.jit(lambda s: jaxseg.iou(s, average="bad"))(CM)
    with pytest.raises(TypeError, match=r"`labels` must hold integer class ids"):
        jax.jit(ConfusionMatrix.from_logits)(LOGITS, LABELS.astype(jnp.float32))


@pytest.mark.parametrize(
    "index",
    [np.array(255), jnp.array(255), np.int64(255), np.uint8(255), np.array([255, 0])],
    ids=["numpy-0d", "jax-0d", "numpy-scalar", "numpy-uint8", "numpy-1d"],
)
def test_ignore_index_as_integer_array(index):
    labels = jnp.array([[0, 1, 255], [3, 255, 2]])
    want = ConfusionMatrix.from_logits(LOGITS, labels, ignore_index=tuple(np.atleast_1d(index)))
    got = ConfusionMatrix.from_logits(LOGITS, labels, ignore_index=index)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    assert got.ignore_classes == want.ignore_classes


def test_ignore_index_traced_or_float_array():
    with pytest.raises(TypeError, match=r"`ignore_index` must be static .*got a traced array"):
        jax.jit(lambda i: ConfusionMatrix.from_logits(LOGITS, LABELS, ignore_index=i))(255)
    with pytest.raises(TypeError, match=r"`ignore_index` must be None, an int or a tuple of ints"):
        ConfusionMatrix.from_logits(LOGITS, LABELS, ignore_index=np.array(2.0))


@pytest.mark.parametrize(
    ("bad", "error", "msg"),
    [
        ("balanced", TypeError, r"got 'balanced'"),
        (["a", "b", "c", "d"], TypeError, r"one weight per class; got an array .* dtype <U1"),
        ([True, False, True, True], TypeError, r"one weight per class; got an array .* dtype bool"),
        ([1.0, 2.0], ValueError, r"shape \(4,\), one weight per class; got shape \(2,\)"),
        (np.ones((4, 1)), ValueError, r"shape \(4,\), one weight per class; got shape \(4, 1\)"),
        (2.0, ValueError, r"shape \(4,\), one weight per class; got shape \(\)"),
        ([1.0, -1.0, 1.0, 1.0], ValueError, r"finite and >= 0; got \[ 1\. -1\.  1\.  1\.\]"),
        ([1.0, np.nan, 1.0, 1.0], ValueError, r"finite and >= 0; got \[ 1\. nan  1\.  1\.\]"),
        (jnp.array([1.0, jnp.inf, 1.0, 1.0]), ValueError, r"finite and >= 0"),
    ],
)
def test_bad_class_weights(bad, error, msg):
    with pytest.raises(error, match=r"`class_weights` must .*" + msg):
        jaxseg.lovasz_softmax_loss(LOGITS, LABELS, class_weights=bad)


def test_class_weights_traced_are_checked_statically_only():
    loss = jax.jit(lambda w: jaxseg.lovasz_softmax_loss(LOGITS, LABELS, class_weights=w))
    assert loss(jnp.ones(4)).shape == (2,)
    with pytest.raises(ValueError, match=r"`class_weights` must have shape \(4,\)"):
        loss(jnp.ones(3))


@pytest.mark.parametrize("bad", ["0.5", True, np.array(["0.5"] * 4), None])
def test_threshold_type(bad):
    y = jnp.zeros((2, 3, 4), jnp.int32)
    with pytest.raises(TypeError, match=r"`threshold` must be a probability in \[0, 1\]"):
        BinaryStats.from_logits(LOGITS, y, threshold=bad)
    with pytest.raises(TypeError, match=r"`threshold` must be a probability in \[0, 1\]"):
        BinaryStats.configure(4, threshold=bad)


@pytest.mark.parametrize("good", [True, False, np.bool_(True), np.bool_(False)])
def test_check_bool_accepts_bools(good):
    from jaxseg._validation import check_bool

    got = check_bool("squared", good)
    assert got is bool(good)


@pytest.mark.parametrize("bad", ["yes", 1, 0, 1.5, None, np.array(True), jnp.array(True)])
def test_check_bool_rejects_everything_else(bad):
    from jaxseg._validation import check_bool

    with pytest.raises(TypeError, match=r"`log` must be a bool \(True or False\); got"):
        check_bool("log", bad)


# -- states built by hand --------------------------------------------------------


def _limbs(*shape, dtype=jnp.uint32):
    return jnp.zeros((*shape, 3), dtype)


@pytest.mark.parametrize(
    ("counts", "invalid", "msg"),
    [
        ((3, 3, 3), (3,), r"`counts` must have shape \(\.\.\., 4, 4, 3\); got \(3, 3, 3\)"),
        ((4, 4, 3), (2,), r"`invalid` must have shape \(\.\.\., 3\); got \(2,\)"),
        (
            (2, 4, 4, 3),
            (3, 3),
            r"leaves must share their batch shapes .* `counts` has \(2,\) and `invalid` has \(3,\)",
        ),
    ],
)
def test_confusion_matrix_of_the_wrong_shape(counts, invalid, msg):
    counts, invalid = jnp.zeros(counts, jnp.uint32), jnp.zeros(invalid, jnp.uint32)
    with pytest.raises(ValueError, match=r"ConfusionMatrix " + msg):
        ConfusionMatrix(counts=counts, invalid=invalid, num_classes=4)


def test_binary_stats_of_the_wrong_shape_or_dtype():
    with pytest.raises(
        ValueError,
        match=r"BinaryStats `counts` must have shape \(\.\.\., 4, 2, 3\); got \(2, 4, 3\)",
    ):
        BinaryStats(counts=_limbs(2, 4), invalid=_limbs(), num_classes=2)
    with pytest.raises(TypeError, match=r"BinaryStats `counts` must be uint32 limbs; got int32"):
        BinaryStats(counts=_limbs(4, 2, dtype=jnp.int32), invalid=_limbs(), num_classes=2)
    with pytest.raises(TypeError, match=r"ConfusionMatrix `invalid` must be uint32 limbs"):
        ConfusionMatrix(counts=_limbs(2, 2), invalid=np.zeros(3), num_classes=2)


@pytest.mark.parametrize("cls", [ConfusionMatrix, BinaryStats])
def test_hand_built_states_survive_pytree_transforms(cls):
    s = cls.empty(3)
    leaves, treedef = jax.tree_util.tree_flatten(s)
    # JAX and checkpoint libraries unflatten with arbitrary objects as leaves
    assert jax.tree_util.tree_unflatten(treedef, [object()] * len(leaves)) is not None
    assert jax.tree_util.tree_unflatten(treedef, [None] * len(leaves)) is not None
    shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), s)
    assert jax.eval_shape(lambda a: a + a, shapes).counts.shape == s.counts.shape
    restored = jax.tree_util.tree_map(np.asarray, s)  # as a checkpoint restore hands it back
    assert (restored + s).counts.shape == s.counts.shape
    assert jax.tree_util.tree_map(lambda x: x.shape, s).counts == s.counts.shape
    assert jax.jit(lambda a: a + a)(s).counts.shape == s.counts.shape
    batched = jax.vmap(lambda _: s)(jnp.arange(2))
    assert batched.reduce().counts.shape == s.counts.shape
    _, stacked = jax.lax.scan(lambda c, _: (c + s, c), s, length=2)
    assert stacked.batch_shape == (2,)
    grads = jax.grad(lambda a: 0.0, allow_int=True)(s)  # float0 cotangents
    assert grads.counts.shape == s.counts.shape


# -- BinaryStats layout ------------------------------------------------------------


def test_binary_stats_volume_without_channel_axis():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32)  # [D, H, W], one channel
    labels = jnp.asarray(rng.integers(0, 2, size=(3, 4, 5)))
    got = BinaryStats.from_logits(logits, labels, channel_axis=None)
    want = BinaryStats.from_logits(logits[..., None], labels[..., None])
    assert got.num_classes == 1
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    where = labels == 1
    got = BinaryStats.from_predictions(logits > 0, labels, channel_axis=None, where=where)
    want = BinaryStats.from_predictions(logits[..., None] > 0, labels[..., None], where=where)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_binary_stats_channels_first():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(2, 3, 4, 5)), jnp.float32)  # [N, C, H, W]
    labels = jnp.asarray(rng.integers(0, 2, size=(2, 3, 4, 5)))
    element_where = jnp.asarray(rng.random((2, 3, 4, 5)) > 0.3)
    pixel_where = jnp.asarray(rng.random((2, 4, 5)) > 0.3)
    for where, moved in ((None, None), (element_where, jnp.moveaxis(element_where, 1, -1))):
        got = BinaryStats.from_logits(logits, labels, channel_axis=1, where=where)
        want = BinaryStats.from_logits(
            jnp.moveaxis(logits, 1, -1), jnp.moveaxis(labels, 1, -1), where=moved
        )
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    got = BinaryStats.from_logits(logits, labels, channel_axis=1, where=pixel_where)
    want = BinaryStats.from_logits(
        jnp.moveaxis(logits, 1, -1), jnp.moveaxis(labels, 1, -1), where=pixel_where
    )
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_binary_stats_layout_errors():
    volume = jnp.zeros((3, 4, 5))
    labels = jnp.zeros((3, 4, 5), jnp.int32)
    with pytest.raises(ValueError, match=r"`channel_axis` 3 is out of range for 3 axes"):
        BinaryStats.from_logits(volume, labels, channel_axis=3)
    with pytest.raises(TypeError, match=r"`channel_axis` must be an int or None; got 'last'"):
        BinaryStats.from_logits(volume, labels, channel_axis="last")
    Metric = BinaryStats.configure(1)
    with pytest.raises(ValueError, match=r"pass `channel_axis=None` to `configure`"):
        Metric.from_model_output(logits=volume, labels=labels)
    state = BinaryStats.configure(1, channel_axis=None).from_model_output(
        logits=volume, labels=labels
    )
    assert state.num_classes == 1
    with pytest.raises(ValueError, match=r"`channel_axis=None`"):
        BinaryStats.empty(1).merge(BinaryStats.from_logits(volume, labels))
