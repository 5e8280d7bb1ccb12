"""Numerics at the edges real training reaches: confident models (logit margins up
to 100), absent classes, soft teacher targets, tiny soft volumes, wide integers.

Each case compiles once: the margin is a traced argument and all margins of a
sweep run in one vmapped call.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg

C = 6
MARGINS = jnp.array([0.0, 1.0, 5.0, 20.0, 30.0, 40.0, 56.0, 60.0, 70.0, 87.0, 100.0])
PERFECT_FROM = 30.0  # margins at or above this must give loss <= 1e-6 on perfect predictions

RNG = np.random.default_rng(0)
# classes 3, 4, 5 never occur: absent classes in every image
LABELS = RNG.integers(0, 3, (2, 6, 7)).astype(np.int32)
LABELS[0, 0, :2] = 255
ONEHOT = np.eye(C, dtype=np.float32)[np.where(LABELS == 255, 0, LABELS)]
BINARY = RNG.integers(0, 2, (2, 6, 7, 3)).astype(np.int32)
BINARY[..., 2] = 0  # an absent channel

SOFTMAX_CASES = [
    ("dice_loss", {}),
    ("dice_loss", {"squared": True}),
    ("dice_loss", {"smooth": 1.0}),
    ("dice_loss", {"class_weights": [0.0, 1.0, 2.0, 1.0, 1.0, 3.0]}),
    ("iou_loss", {}),
    ("iou_loss", {"log": True}),
    ("fbeta_loss", {"beta": 2.0}),
    ("tversky_loss", {"alpha": 0.3, "beta": 0.7}),
    ("tversky_loss", {"alpha": 0.3, "beta": 0.7, "gamma": 0.75}),
    ("tversky_loss", {"gamma": 2.0}),
    ("generalized_dice_loss", {"weighting": "square"}),
    ("generalized_dice_loss", {"weighting": "simple"}),
    ("generalized_dice_loss", {"weighting": "uniform"}),
    ("lovasz_softmax_loss", {}),
    ("lovasz_softmax_loss", {"classes": "all"}),
    ("cross_entropy_loss", {}),
    ("cross_entropy_loss", {"label_smoothing": 0.1}),
    ("focal_loss", {"gamma": 2.0}),
]
SIGMOID_CASES = [
    ("sigmoid_dice_loss", {}),
    ("sigmoid_dice_loss", {"squared": True}),
    ("sigmoid_iou_loss", {"log": True}),
    ("sigmoid_tversky_loss", {"gamma": 0.75}),
    ("sigmoid_focal_loss", {}),
    ("lovasz_hinge_loss", {}),
]
# label smoothing puts mass on every class, so its optimum is not the one-hot prediction
NOT_ZERO_AT_OPTIMUM = {("cross_entropy_loss", "label_smoothing")}


def _sweep(fn, makers, labels):
    """Loss values and gradients for every margin and every logits maker, one compilation."""

    def one(m):
        return [jax.value_and_grad(lambda x: jnp.sum(fn(x, labels)))(make(m)) for make in makers]

    return jax.jit(jax.vmap(one))(MARGINS)


def _check(values, grads, name, kw, perfect=True):
    values, grads = np.asarray(values), np.asarray(grads)
    assert np.all(np.isfinite(values)), (name, kw, values)
    assert np.all(np.isfinite(grads)), (name, kw, "non-finite gradient")
    if perfect and not any((name, k) in NOT_ZERO_AT_OPTIMUM for k in kw):
        high = np.asarray(MARGINS) >= PERFECT_FROM
        assert np.all(values[high] <= 1e-6), (name, kw, values)


@pytest.mark.parametrize(("name", "kw"), SOFTMAX_CASES, ids=str)
def test_softmax_losses_margin_sweep(name, kw):
    fn = getattr(jaxseg, name)
    kwargs = {**kw, "ignore_index": 255}
    # perfect predictions at every margin, and confident but partly wrong ones: every
    # class predicted somewhere, absent ones included
    wrong = np.eye(C, dtype=np.float32)[RNG.integers(0, C, LABELS.shape)]
    makers = [lambda m: m * jnp.asarray(ONEHOT), lambda m: m * jnp.asarray(wrong)]
    (values, grads), (wrong_values, wrong_grads) = _sweep(
        lambda x, y: fn(x, y, **kwargs), makers, LABELS
    )
    _check(values, grads, name, kw)
    _check(wrong_values, wrong_grads, name, kw, perfect=False)


@pytest.mark.parametrize(("name", "kw"), SIGMOID_CASES, ids=str)
def test_sigmoid_losses_margin_sweep(name, kw):
    fn = getattr(jaxseg, name)
    signs = 2.0 * jnp.asarray(BINARY, jnp.float32) - 1.0
    ((values, grads),) = _sweep(lambda x, y: fn(x, y, **kw), [lambda m: m * signs], BINARY)
    _check(values, grads, name, kw)


@pytest.mark.parametrize(
    "name", ["dice_loss", "iou_loss", "tversky_loss", "generalized_dice_loss", "focal_loss"]
)
def test_soft_teacher_targets_and_low_precision(name):
    """Teacher probabilities at any margin as targets; bf16 student logits."""
    fn = getattr(jaxseg, name)

    def one(m):
        teacher = jax.nn.softmax(m * jnp.asarray(ONEHOT), axis=-1)
        student = (m * jnp.asarray(ONEHOT)).astype(jnp.bfloat16)
        value, grad = jax.value_and_grad(lambda x: jnp.sum(fn(x, teacher)))(student)
        return value, grad.astype(jnp.float32)

    values, grads = jax.jit(jax.vmap(one))(MARGINS)
    assert np.all(np.isfinite(np.asarray(values))) and np.all(np.isfinite(np.asarray(grads)))
    if name != "focal_loss":  # the student equals the teacher: region losses are 0
        assert np.all(np.asarray(values) <= 1e-5), values


def test_readme_recipe_nan_gradients_and_absent_class_offset():
    """CE + Dice, C = 19 with 9 classes absent: finite gradients at margins 56-87 and
    loss 0 on perfect predictions (the old rule gave 9/19 and NaN gradients)."""
    c = 19
    labels = np.random.default_rng(1).integers(0, 10, (2, 16, 16)).astype(np.int32)
    onehot = jnp.asarray(np.eye(c, dtype=np.float32)[labels])

    def step(m):
        def loss(x):
            return jnp.mean(jaxseg.cross_entropy_loss(x, labels) + jaxseg.dice_loss(x, labels))

        return jax.value_and_grad(loss)(m * onehot)

    values, grads = jax.jit(jax.vmap(step))(jnp.array([30.0, 56.0, 60.0, 70.0, 87.0, 100.0]))
    assert np.all(np.isfinite(np.asarray(grads)))
    np.testing.assert_array_less(np.asarray(values), 1e-6)
    # the single-pixel reproduction of the report
    x = jnp.zeros((1, 1, 2)).at[..., 0].set(60.0)
    y = jnp.zeros((1, 1), jnp.int32)
    value, g = jax.jit(jax.value_and_grad(lambda x: jaxseg.dice_loss(x, y)[0]))(x)
    assert np.all(np.isfinite(np.asarray(g)))
    assert float(value) == 0.0


TINY_VOLUMES = (1e-30, 1e-19, 1e-12, 1e-7)


def test_generalized_dice_tiny_soft_volume():
    """A class of negligible soft volume neither gives NaN nor pins the loss at 1.

    Every volume runs in one vmapped call per weighting (one compilation each).
    """
    ys = []
    for volume in TINY_VOLUMES:
        y = np.zeros((1, 8, 3), np.float32)
        y[0, :, 0] = 1.0
        y[0, 4:, 0] = 0.0
        y[0, 4:, 1] = 1.0
        y[0, 0, 2] = volume
        y[0, 0, 0] -= volume
        ys.append(y)
    ys = jnp.asarray(np.stack(ys))
    logits = jnp.log(jnp.maximum(ys, 1e-30))  # predictions = targets
    for weighting in ("square", "simple"):

        def one(x, y, w=weighting):
            def loss(x):
                return jaxseg.generalized_dice_loss(x, y, weighting=w)[0]

            return jax.value_and_grad(loss)(x)

        losses, grads = jax.jit(jax.vmap(one))(logits, ys)
        losses, grads = np.asarray(losses), np.asarray(grads)
        for i, volume in enumerate(TINY_VOLUMES):
            assert np.isfinite(losses[i]), (weighting, volume)
            assert losses[i] < 1e-4, (weighting, volume, float(losses[i]))
            assert np.all(np.isfinite(grads[i])), (weighting, volume)


# -- loss == 1 - score: one chain ---------------------------------------------------

IDENTITY_CASES = [
    ("dice_loss", "dice", {}),
    ("dice_loss", "dice", {"smooth": 1.0, "class_weights": [1.0, 0.0, 2.0, 1.0, 1.0, 0.5]}),
    ("iou_loss", "iou", {"smooth": 0.5}),
    ("fbeta_loss", "fbeta", {"beta": 2.0}),
    ("tversky_loss", "tversky", {"alpha": 0.2, "beta": 0.8, "smooth": 1e-3}),
    ("generalized_dice_loss", "generalized_dice", {"weighting": "simple"}),
]


@pytest.mark.parametrize(("loss_name", "score_name", "kw"), IDENTITY_CASES, ids=str)
@pytest.mark.parametrize("soft_labels", [False, True])
def test_region_loss_is_one_minus_score_of_soft_stats(loss_name, score_name, kw, soft_labels):
    x = jnp.asarray(RNG.normal(size=(*LABELS.shape, C)) * 3, jnp.float32)
    if soft_labels:
        labels = jax.nn.softmax(jnp.asarray(RNG.normal(size=x.shape)) * 2, -1)
        ign = {}
    else:
        labels = LABELS
        ign = {"ignore_index": 255}
    loss = getattr(jaxseg, loss_name)(x, labels, **kw, **ign)
    stats = jaxseg.SoftStats.from_logits(x, labels, **ign)
    score_kw = {k: v for k, v in kw.items()}
    if score_name == "generalized_dice":
        score_kw["empty"] = 1.0
    score = getattr(jaxseg, score_name)(stats, **score_kw)
    np.testing.assert_allclose(loss, 1.0 - score, rtol=1e-6, atol=1e-6)


def test_sigmoid_loss_is_one_minus_score_of_sigmoid_stats():
    x = jnp.asarray(RNG.normal(size=BINARY.shape) * 3, jnp.float32)
    loss = jaxseg.sigmoid_dice_loss(x, BINARY, smooth=0.5)
    stats = jaxseg.SoftStats.from_logits(x, BINARY, activation="sigmoid")
    np.testing.assert_allclose(loss, 1.0 - jaxseg.dice(stats, smooth=0.5), rtol=1e-6)


def test_loss_flags_must_be_bools():
    x, y = jnp.zeros((1, 2, 3)), jnp.zeros((1, 2), jnp.int32)
    with pytest.raises(TypeError, match=r"`squared` must be a bool \(True or False\); got 'yes'"):
        jaxseg.dice_loss(x, y, squared="yes")
    with pytest.raises(TypeError, match=r"`log` must be a bool \(True or False\); got 1.5"):
        jaxseg.iou_loss(x, y, log=1.5)
    with pytest.raises(TypeError, match="`include_background` must be a bool"):
        jaxseg.iou(jaxseg.ConfusionMatrix.empty(2), include_background="no")


def test_class_weights_from_wide_host_counts_are_exact():
    counts = np.array([2_500_000_000, 400_000_000, 1_000_000, 0], np.int64)
    n = counts.astype(np.float64)
    present = n > 0
    total, k = n.sum(), present.sum()
    p = np.where(present, n / total, 1.0)
    want = {
        "inverse": np.where(present, total / (k * np.where(present, n, 1.0)), 0.0),
        "median": np.where(present, np.median(p[present]) / p, 0.0),
        "enet": np.where(present, 1.0 / np.log(1.02 + p), 0.0),
    }
    for scheme, w in want.items():
        got = jaxseg.class_weights_from_counts(counts, scheme=scheme)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(got), w, rtol=1e-6, err_msg=scheme)


def test_include_background_versus_ignore_index():
    """Foreground IoU: include_background=False keeps the background pixels (their
    false positives count); ignore_index=0 drops them and IoU becomes recall."""
    rng = np.random.default_rng(5)
    labels = (rng.random((4, 32, 32)) < 0.3).astype(np.int32)
    preds = np.where(rng.random(labels.shape) < 0.8, labels, 1 - labels)
    cm = jaxseg.ConfusionMatrix.from_predictions(preds, labels, num_classes=2)
    fg = float(jaxseg.iou(cm, include_background=False))
    tp = np.sum((preds == 1) & (labels == 1))
    fp = np.sum((preds == 1) & (labels == 0))
    fn = np.sum((preds == 0) & (labels == 1))
    np.testing.assert_allclose(fg, tp / (tp + fp + fn), rtol=1e-6)
    dropped = jaxseg.ConfusionMatrix.from_predictions(preds, labels, num_classes=2, ignore_index=0)
    np.testing.assert_allclose(float(jaxseg.iou(dropped)), tp / (tp + fn), rtol=1e-6)
    assert float(jaxseg.iou(dropped)) > fg + 0.1
    # every score takes it; per class the background is reported as NaN
    for score in (jaxseg.dice, jaxseg.precision, jaxseg.specificity, jaxseg.balanced_accuracy):
        per_class = np.asarray(score(cm, average=None, include_background=False))
        assert math.isnan(per_class[0]) and not math.isnan(per_class[1])
    np.testing.assert_allclose(
        float(jaxseg.pixel_accuracy(cm, include_background=False)), tp / (tp + fn), rtol=1e-6
    )
