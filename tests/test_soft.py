"""SoftStats: hard counts on one-hot inputs, the L1 form for soft labels, masks, activations.

Each test computes in one jitted call (see ``_run_once``): eager calls compile every
operation on its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxseg
from jaxseg import BinaryStats, ConfusionMatrix, SoftStats
from tests import reference as ref
from tests.test_losses import _run_once

RNG = np.random.default_rng(0)
C = 4
LOGITS = RNG.normal(size=(2, 5, 6, C)).astype(np.float32)
LABELS = RNG.integers(-1, C + 1, (2, 5, 6)).astype(np.int32)
LABELS[0, 0, :3] = 255
WHERE = RNG.random((2, 5, 6)) < 0.8
ALL = (0, 1, 2)  # pool every pixel axis (the default keeps the batch axis, as the losses)
NAMES = ("tp", "fp", "fn", "tn")


def _softmax(x):
    """Softmax over the last axis in NumPy (test inputs, no compilation), as float32."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _stats(s):
    """The four statistics of a state (read inside the jitted call)."""
    return [getattr(s, name) for name in NAMES]


def test_one_hot_probabilities_equal_hard_counts():
    onehot = np.eye(C, dtype=np.float32)[np.argmax(LOGITS, -1)]
    kw = dict(ignore_index=(255, -1, 2), where=WHERE)
    scores = (jaxseg.iou, jaxseg.dice, jaxseg.recall)
    y = RNG.integers(0, 2, LOGITS.shape).astype(np.int32)

    def run(onehot, logits, labels, y):
        soft = SoftStats.from_probabilities(onehot, labels, **kw, axis=ALL)
        hard = ConfusionMatrix.from_logits(logits, labels, **kw)
        # sigmoid channels: one-hot probabilities against 0/1 labels equal BinaryStats
        soft_b = SoftStats.from_probabilities(
            (logits > 0).astype(jnp.float32), y, exclusive=False, axis=ALL
        )
        hard_b = BinaryStats.from_logits(logits, y)
        pairs = [(score(soft, average=None), score(hard, average=None)) for score in scores]
        return (
            (_stats(soft), _stats(hard), _stats(soft_b), _stats(hard_b)),
            (soft.invalid, hard.num_invalid),
            pairs,
        )

    (soft, hard, soft_b, hard_b), (invalid, num_invalid), pairs = _run_once(
        run, onehot, LOGITS, LABELS, y
    )
    for name, a, b in zip(NAMES, soft, hard, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert float(invalid) == float(num_invalid) > 0
    for score, (got, want) in zip(scores, pairs, strict=True):
        np.testing.assert_array_equal(got, want, err_msg=score.__name__)
    for name, a, b in zip(NAMES, soft_b, hard_b, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_against_reference_with_soft_labels_and_mask():
    targets = _softmax(2 * RNG.normal(size=LOGITS.shape))
    probs, stats = _run_once(
        lambda x, t: (
            p := jax.nn.softmax(x, -1),
            _stats(SoftStats.from_probabilities(p, t, where=WHERE, axis=ALL)),
        ),
        LOGITS,
        targets,
    )
    want = ref.soft_stats(probs, targets, WHERE[..., None])
    for k, name in enumerate(NAMES):
        np.testing.assert_allclose(stats[k], want[k], rtol=1e-5, atol=1e-5, err_msg=name)


def test_l1_form_is_maximal_at_p_equal_y():
    y = _softmax(RNG.normal(size=(50, C)))
    others = [_softmax(RNG.normal(size=(50, C))) for _ in (0.5, 0.9)]

    def run(y, others):
        def score(p):
            return jaxseg.dice(SoftStats.from_probabilities(p, y, axis=0), average="macro")

        mixed = [t * y + (1 - t) * o for t, o in zip((0.5, 0.9), others, strict=True)]
        # the product form sum(p*y) would prefer a sharpened p over p = y
        sharp = jax.nn.one_hot(jnp.argmax(y, -1), C)
        return score(y), [score(m) for m in mixed], score(sharp)

    best, mixed, sharp = _run_once(run, y, others)
    best = float(best)
    np.testing.assert_allclose(best, 1.0, rtol=1e-6)
    for other in mixed:
        assert float(other) < best
    assert float(sharp) < best


def test_ignore_index_equals_where_and_slicing():
    valid = (LABELS != 255) & (LABELS != -1) & (LABELS != 4)

    def run(logits, labels):
        probs = jax.nn.softmax(logits, -1)
        ig = SoftStats.from_probabilities(probs, labels, ignore_index=(255, -1, 4), axis=ALL)
        wh = SoftStats.from_probabilities(probs, jnp.where(valid, labels, 0), where=valid, axis=ALL)
        # the ignored class 4 is out of range here; an in-range ignored class is left out
        ig2 = SoftStats.from_probabilities(probs, labels, ignore_index=(255, -1, 1), axis=ALL)
        e = SoftStats.empty(C, ignore_index=(255, -1, 1))
        # the valid pixels sliced out (valid is a NumPy mask: static under jit)
        sl = SoftStats.from_probabilities(probs[valid], labels[valid], axis=0)
        return (
            _stats(sl),
            _stats(ig),
            _stats(wh),
            ig.invalid,
            jaxseg.iou(ig2, average=None),
            (e + ig2).tp,
            ig2.tp,
        )

    sl, ig, wh, invalid, iou2, merged_tp, tp2 = _run_once(run, LOGITS, LABELS)
    for k, name in enumerate(NAMES):
        np.testing.assert_allclose(ig[k], wh[k], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(ig[k], sl[k], rtol=1e-5, err_msg=name)
    assert float(invalid) == 0
    assert np.isnan(np.asarray(iou2)[1])
    np.testing.assert_allclose(merged_tp, tp2)


def test_exclusive_and_sigmoid_activations():
    y = RNG.integers(0, 2, LOGITS.shape).astype(np.int32)

    def run(logits, labels, y):
        s = SoftStats.from_logits(logits, labels, ignore_index=(255, -1), axis=ALL)
        t = SoftStats.from_probabilities(
            jax.nn.softmax(logits, -1), labels, ignore_index=(255, -1), axis=ALL
        )
        g = SoftStats.from_logits(logits, y, activation="sigmoid", axis=ALL)
        h = SoftStats.from_probabilities(jax.nn.sigmoid(logits), y, exclusive=False, axis=ALL)
        return (s, t.tp, jaxseg.pixel_accuracy(s)), (g, h.fp, jax.nn.sigmoid(logits))

    (s, t_tp, acc), (g, h_fp, sig) = _run_once(run, LOGITS, LABELS, y)
    np.testing.assert_allclose(s.tp, t_tp, rtol=1e-6)
    assert s.exclusive and acc.shape == ()
    assert not g.exclusive
    np.testing.assert_allclose(g.fp, h_fp, rtol=1e-6)
    want = ref.soft_stats(sig, y, True)
    np.testing.assert_allclose(g.tn, want[3], rtol=1e-5)


def test_axis_pooling_merge_reduce_and_grad():
    def run(logits, labels, where):
        kw = dict(ignore_index=(255, -1))
        s = SoftStats.from_logits(logits, labels, **kw)  # default: per example
        s12 = SoftStats.from_logits(logits, labels, axis=(1, 2), **kw)
        whole = SoftStats.from_logits(logits, labels, axis=ALL, **kw)
        halves = SoftStats.from_logits(logits[:1], labels[:1], axis=ALL, **kw) + (
            SoftStats.from_logits(logits[1:], labels[1:], axis=ALL, **kw)
        )

        def loss(x):
            stats = SoftStats.from_logits(x, labels, where=where, ignore_index=-1, axis=ALL)
            return 1 - jaxseg.dice(stats)

        return s, (s12.tp, s.reduce().tp, whole.tp, halves.fp, whole.fp), jax.grad(loss)(logits)

    s, (s12_tp, reduced_tp, whole_tp, halves_fp, whole_fp), g = _run_once(
        run, LOGITS, LABELS, WHERE
    )
    assert s.tp.shape == (2, C) and s.batch_shape == (2,)
    np.testing.assert_allclose(s.tp, s12_tp)
    np.testing.assert_allclose(reduced_tp, whole_tp, rtol=1e-5)
    np.testing.assert_allclose(halves_fp, whole_fp, rtol=1e-5)
    assert np.all(np.isfinite(g))
    # masked-out and invalid pixels get exactly zero gradient
    dead = ~WHERE | (LABELS == -1) | (LABELS >= C)
    assert np.all(np.asarray(g)[dead] == 0)
