"""BoundaryStats against a per-class NumPy mask_to_boundary reference; DistanceStats algebra."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from tests import reference_distance as R


def _data(n, h, w, c, seed, ignore=False):
    rng = np.random.default_rng(seed)
    label = R.random_maps(rng, (n, h, w), c, "blobs")
    pred = R.random_maps(rng, (n, h, w), c, "blobs")
    pred[rng.random(pred.shape) < 0.05] = c - 1  # speckle: thin bands everywhere
    if ignore:
        label[:, : h // 4, : w // 3] = 255
        label[:, -1, :2] = c  # out of range, not ignored: invalid
    return pred, label


# band widths d = 1 (ratio 0.02 clamped up to 1, with 150 classes), 3 and 8 (on odd shapes)
@pytest.mark.parametrize("h,w,c,ratio", [(12, 9, 150, 0.02), (23, 17, 3, 0.1), (21, 19, 5, 0.3)])
def test_counts_equal_reference(h, w, c, ratio):
    pred, label = _data(4, h, w, c, seed=h + c, ignore=True)
    kw = dict(num_classes=c, dilation_ratio=ratio, ignore_index=255)

    @jax.jit  # per-image states, their reduction and the pooled call: one compiled call
    def run(pred, label):
        state = jax.vmap(lambda p, g: jaxseg.BoundaryStats.from_predictions(p, g, **kw))(
            pred, label
        )
        return state, state.reduce(), jaxseg.BoundaryStats.from_predictions(pred, label, **kw)

    state, reduced, pooled = run(pred, label)
    want = np.stack(
        [R.boundary_counts(p, g, c, ratio, ignore=(255,)) for p, g in zip(pred, label, strict=True)]
    )
    np.testing.assert_array_equal(state.to_numpy(), want)
    np.testing.assert_array_equal(reduced.to_numpy(), want.sum(0))
    assert int(jax.device_get(reduced.num_invalid)) == int(np.sum(label == c))
    # pooled call over the batch equals the reduced per-image states
    np.testing.assert_array_equal(pooled.to_numpy(), want.sum(0))


# 3-D bands (jaxseg's extension): d = 1 and d = 2 on odd volumes, with ignored and invalid voxels
@pytest.mark.parametrize("shape,c,ratio", [((5, 7, 6), 3, 0.02), ((9, 8, 7), 4, 0.12)])
def test_3d_counts_equal_reference(shape, c, ratio):
    rng = np.random.default_rng(sum(shape))
    label = R.random_maps(rng, (3, *shape), c, "blobs")
    pred = R.random_maps(rng, (3, *shape), c, "blobs")
    pred[rng.random(pred.shape) < 0.05] = c - 1
    label[:, 0, :2, :3] = 255
    label[:, -1, -1, -1] = c  # out of range, not ignored: invalid
    kw = dict(num_classes=c, dilation_ratio=ratio, ignore_index=255, spatial_dims=3)

    @jax.jit  # per-volume states, the pooled call and the 2-D default: one compiled call
    def run(pred, label):
        state = jax.vmap(lambda p, g: jaxseg.BoundaryStats.from_predictions(p, g, **kw))(
            pred, label
        )
        per_slice = jaxseg.BoundaryStats.from_predictions(
            pred, label, num_classes=c, dilation_ratio=ratio, ignore_index=255
        )
        pooled = jaxseg.BoundaryStats.from_predictions(pred, label, **kw)
        return state, state.reduce().num_invalid, pooled, per_slice

    state, num_invalid, pooled, per_slice = run(pred, label)
    want = np.stack(
        [R.boundary_counts(p, g, c, ratio, ignore=(255,)) for p, g in zip(pred, label, strict=True)]
    )
    np.testing.assert_array_equal(state.to_numpy(), want)
    assert int(jax.device_get(num_invalid)) == 3
    # leading axes are pooled; the band never crosses from one volume to the next
    np.testing.assert_array_equal(pooled.to_numpy(), want.sum(0))
    # the 2-D default still reads the last two axes: per-slice bands, other counts
    assert not np.array_equal(per_slice.to_numpy(), want.sum(0))


def test_3d_configure_and_errors():
    rng = np.random.default_rng(3)
    label = R.random_maps(rng, (2, 5, 7, 6), 3, "blobs")
    metric = jaxseg.BoundaryStats.configure(3, spatial_dims=3)

    @jax.jit  # both forms in one compiled call
    def run(label):
        got = metric.empty().merge(metric.from_model_output(jax.nn.one_hot(label, 3), label))
        return got, jaxseg.BoundaryStats.from_predictions(
            label, label, num_classes=3, spatial_dims=3
        )

    got, want = run(label)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    with pytest.raises(ValueError, match="`spatial_dims`"):
        jaxseg.BoundaryStats.from_predictions(label, label, num_classes=3, spatial_dims=4)
    with pytest.raises(ValueError, match=r"\[\.\.\., D, H, W\]"):
        jaxseg.BoundaryStats.from_predictions(
            label[0, 0], label[0, 0], num_classes=3, spatial_dims=3
        )


# the tests below share one shape, so the band counts compile once per batch size
_H = _W = 16


def test_scores_on_the_state():
    pred, label = _data(2, _H, _W, 3, seed=7)

    @jax.jit  # the state and every score in one compiled call
    def run(pred, label):
        s = jaxseg.BoundaryStats.from_predictions(pred, label, num_classes=3)
        scores = [f(s, average=None) for f in (jaxseg.iou, jaxseg.dice)]
        scores += [f(s, average=None) for f in (jaxseg.precision, jaxseg.recall)]
        return s, scores, s.compute()

    s, (iou, dice, precision, recall), computed = run(pred, label)
    tp, fp, fn, _ = (x.astype(np.float64) for x in s.to_numpy())
    np.testing.assert_allclose(iou, tp / (tp + fp + fn), rtol=1e-6)
    np.testing.assert_allclose(dice, 2 * tp / (2 * tp + fp + fn), rtol=1e-6)
    np.testing.assert_allclose(precision, tp / (tp + fp), rtol=1e-6)
    np.testing.assert_allclose(recall, tp / (tp + fn), rtol=1e-6)
    np.testing.assert_allclose(computed, np.mean(tp / (tp + fp + fn)), rtol=1e-6)


def test_algebra_and_errors():
    pred, label = _data(4, _H, _W, 3, seed=8)
    upd = jax.jit(lambda p, g: jaxseg.BoundaryStats.from_predictions(p, g, num_classes=3))
    a, b = upd(pred[:2], label[:2]), upd(pred[2:], label[2:])
    empty = jaxseg.BoundaryStats.empty(3)
    np.testing.assert_array_equal((empty + a).to_numpy(), a.to_numpy())
    np.testing.assert_array_equal((a + b).to_numpy(), (b + a).to_numpy())
    np.testing.assert_array_equal((a + b).to_numpy(), upd(pred, label).to_numpy())
    with pytest.raises(ValueError, match="num_classes"):
        a.merge(jaxseg.BoundaryStats.empty(4))
    with pytest.raises(ValueError, match="`dilation_ratio`"):
        jaxseg.BoundaryStats.from_predictions(pred, label, num_classes=3, dilation_ratio=0)
    with pytest.raises(ValueError, match=r"\[\.\.\., H, W\]"):
        jaxseg.BoundaryStats.from_predictions(pred[0, 0], label[0, 0], num_classes=3)
    with pytest.raises(TypeError, match="`labels`"):
        jaxseg.BoundaryStats.from_predictions(pred, label.astype(np.float32), num_classes=3)


def test_clu_protocol():
    pred, label = _data(2, _H, _W, 3, seed=9)
    logits = jax.nn.one_hot(pred, 3)
    metric = jaxseg.BoundaryStats.configure(3, dilation_ratio=0.05)
    assert metric is jaxseg.BoundaryStats.configure(3, dilation_ratio=0.05)
    got = metric.empty().merge(metric.from_model_output(logits=logits, labels=label))
    want = jaxseg.BoundaryStats.from_predictions(pred, label, num_classes=3, dilation_ratio=0.05)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_distance_stats():
    values = np.array([[1.0, np.nan, 2.0], [3.0, np.inf, np.nan], [5.0, 1.0, np.inf]], np.float32)

    @jax.jit  # every form in one compiled call (eager, each state op dispatches alone)
    def run(values):
        whole = jaxseg.DistanceStats.from_values(values)
        parts = jax.vmap(lambda x: jaxseg.DistanceStats.from_values(x[None]))(values).reduce()
        states = (whole, parts, jaxseg.DistanceStats.empty(3) + whole)
        split = jaxseg.DistanceStats.from_values(values[:1]) + jaxseg.DistanceStats.from_values(
            values[1:]
        )
        return states, [s.compute() for s in states], split, split.sums, whole.sums

    states, computed, split, split_sums, whole_sums = run(values)
    for s, mean in zip(states, computed, strict=True):
        np.testing.assert_array_equal(s.to_numpy(), [[3, 1, 1], [0, 1, 1], [0, 1, 1]])
        np.testing.assert_allclose(mean, [3.0, 1.0, 2.0])
    np.testing.assert_array_equal(split.to_numpy(), states[0].to_numpy())
    np.testing.assert_allclose(split_sums, whole_sums)
    with pytest.raises(TypeError, match="`values`"):
        jaxseg.DistanceStats.from_values(jnp.zeros((2, 3), jnp.int32))
