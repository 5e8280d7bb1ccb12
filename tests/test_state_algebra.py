"""One algebra for every state: per-leaf kinds, the Statistics protocol, DistanceStats."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import _state

STATES = (
    lambda: jaxseg.ConfusionMatrix.empty(3),
    lambda: jaxseg.BinaryStats.empty(3),
    lambda: jaxseg.SoftStats.empty(3),
    lambda: jaxseg.BoundaryStats.empty(3),
    lambda: jaxseg.DistanceStats.empty(3),
)


@pytest.mark.parametrize("make", STATES)
def test_every_state_sits_on_the_shared_algebra(make):
    state = make()
    cls = type(state)
    assert isinstance(state, _state.StateAlgebra)
    for method in ("merge", "__add__", "reduce", "psum"):
        assert getattr(cls, method) is getattr(_state.StateAlgebra, method), (cls, method)
    kinds = {
        f.name: f.metadata.get("kind")
        for f in dataclasses.fields(state)
        if not f.metadata.get("static")
    }
    assert kinds and set(kinds.values()) <= set(_state.LEAF_KINDS), kinds
    # pytree leaves are exactly the kinded fields
    assert len(jax.tree.leaves(state)) == len(kinds)


def test_statistics_protocol():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, (2, 8, 8)).astype(np.int32)
    p = rng.integers(0, 3, (2, 8, 8)).astype(np.int32)

    @jax.jit  # one compiled call (eager calls compile every op on its own)
    def build(p, y):
        cm = jaxseg.ConfusionMatrix.from_predictions(p, y, num_classes=3)
        states = [
            cm,
            jaxseg.BinaryStats.from_predictions(p == 1, (y == 1).astype(jnp.int32)),
            jaxseg.SoftStats.from_probabilities(jax.nn.one_hot(p, 3), y),
            jaxseg.BoundaryStats.from_predictions(p, y, num_classes=3),
        ]
        return states, (cm.tp, cm.fp, cm.fn, cm.tn), jaxseg.iou(cm, average=None)

    states, stats, iou = build(p, y)
    for s in states:
        assert isinstance(s, _state.Statistics)
    assert not isinstance(jaxseg.DistanceStats.empty(3), _state.Statistics)

    @dataclasses.dataclass
    class Mine:  # a user's own statistics
        tp: np.ndarray
        fp: np.ndarray
        fn: np.ndarray
        tn: np.ndarray
        counted_classes: np.ndarray

    mine = Mine(*(np.asarray(x) for x in stats), np.ones(3, bool))
    assert isinstance(mine, _state.Statistics)
    np.testing.assert_allclose(jaxseg.iou(mine, average=None), iou)


# -- DistanceStats -----------------------------------------------------------------


def _mean_ref(values):
    x = np.asarray(values, np.float64).reshape(-1, np.shape(values)[-1])
    finite = np.isfinite(x)
    with np.errstate(invalid="ignore"):
        return np.where(finite, x, 0).sum(0) / finite.sum(0)


def test_distance_stats_no_classes_is_a_named_error():
    with pytest.raises(ValueError, match=r"`values` must have at least one class.*\(4, 0\)"):
        jaxseg.DistanceStats.from_values(np.zeros((4, 0), np.float32))
    none = jaxseg.DistanceStats.from_values(np.zeros((0, 2), np.float32))  # no images
    np.testing.assert_array_equal(none.to_numpy(), np.zeros((3, 2)))
    assert np.isnan(np.asarray(none.compute())).all()


def test_distance_stats_has_no_invalid_count():
    s = jaxseg.DistanceStats.from_values(np.array([[1.0, np.nan]], np.float32))
    assert not hasattr(s, "num_invalid")
    np.testing.assert_array_equal(s.num_nan, [0, 1])


def test_distance_stats_huge_values_do_not_overflow():
    rng = np.random.default_rng(0)
    values = rng.uniform(1e38, 3.4e38, (50, 2)).astype(np.float32)
    values[::7, 1] = np.inf
    want = _mean_ref(values)

    @jax.jit  # one compiled call for the whole batch and the per-image states
    def run(values):
        whole = jaxseg.DistanceStats.from_values(values)
        per_image = jax.vmap(lambda x: jaxseg.DistanceStats.from_values(x[None]))(values)
        return whole, whole.compute(), per_image.compute(), per_image.reduce().compute()

    whole, whole_mean, per_image, reduced = run(values)
    np.testing.assert_allclose(whole_mean, want, rtol=1e-5)
    one_each = np.where(np.isfinite(values), values, np.nan).astype(np.float64)
    np.testing.assert_allclose(per_image, one_each, rtol=1e-6)
    np.testing.assert_allclose(reduced, want, rtol=1e-5)
    # a jitted merge loop, one row at a time
    merge = jax.jit(lambda s, row: s.merge(jaxseg.DistanceStats.from_values(row[None])))
    looped = jaxseg.DistanceStats.empty(2)
    for row in values:
        looped = merge(looped, row)
    np.testing.assert_allclose(jax.jit(jaxseg.DistanceStats.compute)(looped), want, rtol=1e-5)
    np.testing.assert_array_equal(looped.to_numpy(), whole.to_numpy())


def test_distance_stats_mixed_magnitudes_and_exact_counts():
    rng = np.random.default_rng(1)
    values = (10.0 ** rng.uniform(-3, 30, (40, 3))).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan
    small = np.array([[1e-3, 0.0, 2.5]], np.float32)

    @jax.jit  # one compiled call (eager calls compile every op on its own)
    def run(values, small):
        f = jaxseg.DistanceStats.from_values
        whole = f(values)
        states = (whole, f(values[:13]) + f(values[13:]), jaxseg.DistanceStats.empty(3) + whole)
        small_mean = (f(small) + jaxseg.DistanceStats.empty(3)).compute()
        return [(s, s.compute()) for s in states], small_mean

    states, small_mean = run(values, small)
    for s, mean in states:
        np.testing.assert_allclose(mean, _mean_ref(values), rtol=1e-5)
        np.testing.assert_array_equal(s.to_numpy()[1], np.isnan(values).sum(0))
    np.testing.assert_allclose(small_mean, small[0], rtol=1e-6)


def test_distance_stats_bad_leaves_are_named():
    s = jaxseg.DistanceStats.empty(2)
    with pytest.raises(ValueError, match="DistanceStats `counts` must have shape"):
        dataclasses.replace(s, counts=jnp.zeros((3, 3, 3), jnp.uint32))
