"""SoftStats: hard counts on one-hot inputs, the L1 form for soft labels, masks, activations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxseg
from jaxseg import BinaryStats, ConfusionMatrix, SoftStats
from tests import reference as ref

RNG = np.random.default_rng(0)
C = 4
LOGITS = RNG.normal(size=(2, 5, 6, C)).astype(np.float32)
LABELS = RNG.integers(-1, C + 1, (2, 5, 6)).astype(np.int32)
LABELS[0, 0, :3] = 255
WHERE = RNG.random((2, 5, 6)) < 0.8
ALL = (0, 1, 2)  # pool every pixel axis (the default keeps the batch axis, as the losses)


def test_one_hot_probabilities_equal_hard_counts():
    onehot = np.eye(C, dtype=np.float32)[np.argmax(LOGITS, -1)]
    kw = dict(ignore_index=(255, -1, 2), where=WHERE)
    pool = dict(axis=ALL)
    soft = jax.jit(lambda p, y: SoftStats.from_probabilities(p, y, **kw, **pool))(onehot, LABELS)
    hard = ConfusionMatrix.from_logits(LOGITS, LABELS, **kw)
    for name in ("tp", "fp", "fn", "tn"):
        np.testing.assert_array_equal(getattr(soft, name), getattr(hard, name), err_msg=name)
    assert float(soft.invalid) == float(hard.num_invalid) > 0
    for score in (jaxseg.iou, jaxseg.dice, jaxseg.recall):
        np.testing.assert_array_equal(score(soft, average=None), score(hard, average=None))
    # sigmoid channels: one-hot probabilities against 0/1 labels equal BinaryStats
    y = RNG.integers(0, 2, LOGITS.shape).astype(np.int32)
    soft_b = SoftStats.from_probabilities(
        (LOGITS > 0).astype(np.float32), y, exclusive=False, axis=ALL
    )
    hard_b = BinaryStats.from_logits(LOGITS, y)
    for name in ("tp", "fp", "fn", "tn"):
        np.testing.assert_array_equal(getattr(soft_b, name), getattr(hard_b, name), err_msg=name)


def test_against_reference_with_soft_labels_and_mask():
    probs = jax.nn.softmax(LOGITS, -1)
    targets = jax.nn.softmax(2 * RNG.normal(size=LOGITS.shape), -1).astype(np.float32)
    s = SoftStats.from_probabilities(probs, targets, where=WHERE, axis=ALL)
    want = ref.soft_stats(probs, targets, WHERE[..., None])
    for k, name in enumerate(("tp", "fp", "fn", "tn")):
        np.testing.assert_allclose(getattr(s, name), want[k], rtol=1e-5, atol=1e-5)


def test_l1_form_is_maximal_at_p_equal_y():
    y = jax.nn.softmax(jnp.asarray(RNG.normal(size=(50, C)), jnp.float32), -1)

    def score(p):
        return jaxseg.dice(SoftStats.from_probabilities(p, y, axis=0), average="macro")

    best = float(score(y))
    np.testing.assert_allclose(best, 1.0, rtol=1e-6)
    for t in (0.5, 0.9):
        other = t * y + (1 - t) * jax.nn.softmax(jnp.asarray(RNG.normal(size=(50, C))), -1)
        assert float(score(other.astype(jnp.float32))) < best
    # the product form sum(p*y) would prefer a sharpened p over p = y
    sharp = jax.nn.one_hot(jnp.argmax(y, -1), C)
    assert float(score(sharp)) < best


def test_ignore_index_equals_where_and_slicing():
    probs = jax.nn.softmax(LOGITS, -1)
    ig = SoftStats.from_probabilities(probs, LABELS, ignore_index=(255, -1, 4), axis=ALL)
    valid = (LABELS != 255) & (LABELS != -1) & (LABELS != 4)
    wh = SoftStats.from_probabilities(probs, jnp.where(valid, LABELS, 0), where=valid, axis=ALL)
    sl = SoftStats.from_probabilities(probs[valid], LABELS[valid], axis=0)
    for name in ("tp", "fp", "fn", "tn"):
        np.testing.assert_allclose(getattr(ig, name), getattr(wh, name), rtol=1e-6)
        np.testing.assert_allclose(getattr(ig, name), getattr(sl, name), rtol=1e-5)
    assert float(ig.invalid) == 0
    # the ignored class 4 is out of range here; an in-range ignored class is left out
    ig2 = SoftStats.from_probabilities(probs, LABELS, ignore_index=(255, -1, 1), axis=ALL)
    assert np.isnan(np.asarray(jaxseg.iou(ig2, average=None))[1])
    e = SoftStats.empty(C, ignore_index=(255, -1, 1))
    np.testing.assert_allclose((e + ig2).tp, ig2.tp)


def test_exclusive_and_sigmoid_activations():
    s = SoftStats.from_logits(LOGITS, LABELS, ignore_index=(255, -1), axis=ALL)
    t = SoftStats.from_probabilities(
        jax.nn.softmax(LOGITS, -1), LABELS, ignore_index=(255, -1), axis=ALL
    )
    np.testing.assert_allclose(s.tp, t.tp, rtol=1e-6)
    assert s.exclusive and jaxseg.pixel_accuracy(s).shape == ()
    y = RNG.integers(0, 2, LOGITS.shape).astype(np.int32)
    g = SoftStats.from_logits(LOGITS, y, activation="sigmoid", axis=ALL)
    h = SoftStats.from_probabilities(jax.nn.sigmoid(LOGITS), y, exclusive=False, axis=ALL)
    assert not g.exclusive
    np.testing.assert_allclose(g.fp, h.fp, rtol=1e-6)
    want = ref.soft_stats(jax.nn.sigmoid(LOGITS), y, True)
    np.testing.assert_allclose(g.tn, want[3], rtol=1e-5)


def test_axis_pooling_merge_reduce_and_grad():
    s = SoftStats.from_logits(LOGITS, LABELS, ignore_index=(255, -1))  # default: per example
    assert s.tp.shape == (2, C) and s.batch_shape == (2,)
    np.testing.assert_allclose(
        s.tp, SoftStats.from_logits(LOGITS, LABELS, axis=(1, 2), ignore_index=(255, -1)).tp
    )
    whole = SoftStats.from_logits(LOGITS, LABELS, ignore_index=(255, -1), axis=ALL)
    np.testing.assert_allclose(s.reduce().tp, whole.tp, rtol=1e-5)
    halves = SoftStats.from_logits(LOGITS[:1], LABELS[:1], ignore_index=(255, -1), axis=ALL) + (
        SoftStats.from_logits(LOGITS[1:], LABELS[1:], ignore_index=(255, -1), axis=ALL)
    )
    np.testing.assert_allclose(halves.fp, whole.fp, rtol=1e-5)

    def loss(x):
        stats = SoftStats.from_logits(x, LABELS, where=WHERE, ignore_index=-1, axis=ALL)
        return 1 - jaxseg.dice(stats)

    g = jax.grad(loss)(jnp.asarray(LOGITS))
    assert np.all(np.isfinite(g))
    # masked-out and invalid pixels get exactly zero gradient
    dead = ~WHERE | (LABELS == -1) | (LABELS >= C)
    assert np.all(np.asarray(g)[dead] == 0)
