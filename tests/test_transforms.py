"""Transform sweep, metrics side: eager == jit, and vmap == the batched call, on every branch."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import BinaryStats, ConfusionMatrix, SoftStats

RNG = np.random.default_rng(0)
B, H, W, C = 3, 4, 5, 4
LOGITS = jnp.asarray(RNG.normal(size=(B, H, W, C)), jnp.float32)
LABELS = jnp.asarray(RNG.integers(-1, C + 1, (B, H, W)), jnp.int32)
PREDS = jnp.asarray(RNG.integers(0, C, (B, H, W)), jnp.int32)
WHERE = jnp.asarray(RNG.random((B, H, W)) < 0.8)
BIN = jnp.asarray(RNG.integers(0, 2, (B, H, W, C)), jnp.int32)


def _all(x):
    return tuple(range(x.ndim - 1))


CONSTRUCTORS = {
    "cm_logits": lambda x, y, p, m, b: ConfusionMatrix.from_logits(x, y),
    "cm_logits_ignore_where": lambda x, y, p, m, b: ConfusionMatrix.from_logits(
        x, y, ignore_index=(-1, 1), where=m
    ),
    "cm_preds": lambda x, y, p, m, b: ConfusionMatrix.from_predictions(p, y, num_classes=C),
    "cm_preds_ignore_where": lambda x, y, p, m, b: ConfusionMatrix.from_predictions(
        p, y, num_classes=C, ignore_index=-1, where=m
    ),
    "binary": lambda x, y, p, m, b: BinaryStats.from_logits(x, b),
    "binary_threshold_where": lambda x, y, p, m, b: BinaryStats.from_logits(
        x, b, threshold=jnp.array([0.2, 0.4, 0.6, 0.8]), where=m
    ),
    "binary_preds": lambda x, y, p, m, b: BinaryStats.from_predictions(x > 0, b),
    # SoftStats keeps the first axis by default (as the losses); pool every pixel axis here
    "soft_softmax": lambda x, y, p, m, b: SoftStats.from_logits(
        x, y, ignore_index=-1, where=m, axis=_all(x)
    ),
    "soft_sigmoid": lambda x, y, p, m, b: SoftStats.from_logits(
        x, b, activation="sigmoid", axis=_all(x)
    ),
    "soft_probs_float": lambda x, y, p, m, b: SoftStats.from_probabilities(
        jax.nn.softmax(x), jax.nn.one_hot(p, C), where=m, axis=_all(x)
    ),
}


def _leaves_equal(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_constructors_eager_jit_vmap(name):
    fn = CONSTRUCTORS[name]
    args = (LOGITS, LABELS, PREDS, WHERE, BIN)
    eager = fn(*args)
    jitted = jax.jit(fn)
    _leaves_equal(eager, jitted(*args))
    per_image = jax.jit(jax.vmap(fn))(*args)  # jitted: an eager vmap dispatches every op
    assert per_image.batch_shape == (B,)
    _leaves_equal(per_image.reduce(), eager)
    # each image alone, jitted (one compile for the image shape; eager == jit is above)
    for i in range(B):
        _leaves_equal(jax.tree.map(lambda t, i=i: t[i], per_image), jitted(*(a[i] for a in args)))


def _score_calls():
    calls = {}
    for name in ("iou", "dice", "precision", "recall"):
        for average in (None, "micro", "macro", "weighted"):
            for empty in (math.nan, 0.0):
                calls[f"{name}-{average}-{empty}"] = functools.partial(
                    getattr(jaxseg, name), average=average, empty=empty
                )
    calls["fbeta"] = functools.partial(jaxseg.fbeta, beta=2.0, average="weighted")
    calls["tversky"] = functools.partial(jaxseg.tversky, alpha=0.7, beta=0.3, average=None)
    calls["pixel_accuracy"] = jaxseg.pixel_accuracy
    calls["mean_accuracy"] = jaxseg.mean_accuracy
    calls["fw_iou"] = functools.partial(jaxseg.frequency_weighted_iou, empty=1.0)
    for weighting in ("square", "simple", "uniform"):
        calls[f"gd-{weighting}"] = functools.partial(jaxseg.generalized_dice, weighting=weighting)
    return calls


@pytest.mark.parametrize(
    "state_name", ["cm_logits_ignore_where", "binary_threshold_where", "soft_softmax"]
)
def test_scores_eager_jit_vmap(state_name):
    per_image = jax.jit(jax.vmap(CONSTRUCTORS[state_name]))(LOGITS, LABELS, PREDS, WHERE, BIN)
    calls = _score_calls()

    # the batched call on a batched state against vmap over the images, in one jit
    def every_score(s):
        return {k: f(s) for k, f in calls.items()}

    batched, vmapped = jax.jit(lambda s: (every_score(s), jax.vmap(every_score)(s)))(per_image)
    for k in calls:
        np.testing.assert_allclose(batched[k], vmapped[k], rtol=1e-6, err_msg=k)
    for k in ("iou-None-nan", "dice-macro-0.0", "gd-square"):  # eager == jit
        np.testing.assert_allclose(calls[k](per_image), batched[k], rtol=1e-6, err_msg=k)
    whole = per_image.reduce()
    cw = jax.jit(lambda s: jaxseg.class_weights_from_counts(s, scheme="median"))(whole)
    np.testing.assert_allclose(cw, jaxseg.class_weights_from_counts(whole, scheme="median"))


@pytest.mark.parametrize("scheme", ["inverse", "inverse_sqrt", "median", "enet"])
def test_class_weights_jit_vmap(scheme):
    counts = jnp.asarray(RNG.integers(0, 1000, (3, 6)), jnp.float32).at[1, 2].set(0)
    fn = functools.partial(jaxseg.class_weights_from_counts, scheme=scheme)
    v = jax.jit(jax.vmap(fn))(counts)
    jitted = jax.jit(fn)
    for i in range(3):
        eager = fn(counts[i])
        np.testing.assert_allclose(v[i], eager, rtol=1e-6)
        np.testing.assert_allclose(jitted(counts[i]), eager, rtol=1e-6)


def test_checked_under_jit_and_vmap():
    fn = jaxseg.checked(jax.jit(jax.vmap(CONSTRUCTORS["cm_logits_ignore_where"])))
    labels = jnp.clip(LABELS, 0, C - 1)
    _leaves_equal(
        fn(LOGITS, labels, PREDS, WHERE, BIN).reduce(),
        ConfusionMatrix.from_logits(LOGITS, labels, ignore_index=(-1, 1), where=WHERE),
    )
