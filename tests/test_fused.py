"""The fused softmax reductions behind the losses: fallbacks, masking and memory."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import _fused

C = 5


def _data(seed: int, shape=(2, 7, 9)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(*shape, C)).astype(np.float32) * 3
    labels = rng.integers(0, C, size=shape).astype(np.int32)
    labels[rng.random(shape) < 0.2] = 255
    return jnp.asarray(logits), jnp.asarray(labels)


LOSSES = {
    "dice": lambda x, y: jaxseg.dice_loss(x, y, ignore_index=255),
    "tversky": lambda x, y: jaxseg.tversky_loss(x, y, alpha=0.3, beta=0.7, ignore_index=255),
    "ce": lambda x, y: jaxseg.cross_entropy_loss(x, y, ignore_index=255),
    "ce smoothed weighted": lambda x, y: jaxseg.cross_entropy_loss(
        x, y, ignore_index=255, label_smoothing=0.2, class_weights=[1.0, 2.0, 0.5, 1.0, 3.0]
    ),
}


def _value_and_grad(name, x, y):
    return jax.jit(jax.value_and_grad(lambda a: jnp.sum(LOSSES[name](a, y))))(x)


@pytest.mark.parametrize("name", list(LOSSES))
def test_flat_index_fallback_is_identical(name, monkeypatch):
    """Inputs too large for flat int32 indices take the [..., C] paths: same numbers."""
    x, y = _data(0)
    v1, g1 = _value_and_grad(name, x, y)
    monkeypatch.setattr(_fused, "FLAT_INDEX_LIMIT", 1)
    v2, g2 = _value_and_grad(name, x, y)
    np.testing.assert_allclose(v2, v1, rtol=1e-6)
    np.testing.assert_allclose(g2, g1, rtol=1e-5, atol=1e-7)


def test_add_at_labels_paths_agree():
    rng = np.random.default_rng(3)
    dx = jnp.asarray(rng.normal(size=(4, 6, C)).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, C, size=(4, 6)).astype(np.int32))
    values = jnp.asarray(rng.normal(size=(4, 6)).astype(np.float32))
    want = np.asarray(dx).copy()
    idx = np.asarray(labels)
    np.put_along_axis(
        want,
        idx[..., None],
        np.take_along_axis(want, idx[..., None], -1) + np.asarray(values)[..., None],
        -1,
    )
    for method in ("scatter", "select", None):
        got = jax.jit(lambda d, lab, v, m=method: _fused._add_at_labels(d, lab, v, m))(
            dx, labels, values
        )
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=str(method))


@pytest.mark.parametrize("name", list(LOSSES))
def test_finite_garbage_in_ignored_pixels_is_left_out(name):
    """Ignored pixels may hold any finite logits (here +-3e38): same loss, zero gradient."""
    x, y = _data(1)
    ignored = np.asarray(y) == 255
    rng = np.random.default_rng(2)
    garbage = np.where(rng.random(x.shape) < 0.5, 3e38, -3e38).astype(np.float32)
    x2 = jnp.where(jnp.asarray(ignored)[..., None], jnp.asarray(garbage), x)
    # one jitted function for both inputs (same shapes): one compilation, not two
    value_and_grad = jax.jit(jax.value_and_grad(lambda a: jnp.sum(LOSSES[name](a, y))))
    v1, g1 = value_and_grad(x)
    v2, g2 = value_and_grad(x2)
    np.testing.assert_allclose(v2, v1, rtol=1e-6)
    assert np.all(np.asarray(g2)[ignored] == 0.0)
    np.testing.assert_allclose(
        np.asarray(g2)[~ignored], np.asarray(g1)[~ignored], rtol=1e-5, atol=1e-8
    )


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="memory bound measured for XLA:CPU")
@pytest.mark.parametrize("name", ["dice", "ce", "dice+ce", "focal"])
def test_value_and_grad_keeps_no_pixels_by_classes_temporary(name):
    """The compiled value_and_grad needs far less scratch than one [pixels, C] buffer."""
    shape, c = (2, 64, 64), 19
    x = jnp.zeros((*shape, c), jnp.float32)
    y = jnp.zeros(shape, jnp.int32)

    def dice(a):
        return jnp.mean(jaxseg.dice_loss(a, y, ignore_index=255))

    def ce(a):
        return jnp.mean(jaxseg.cross_entropy_loss(a, y, ignore_index=255))

    def focal(a):
        return jnp.mean(jaxseg.focal_loss(a, y, gamma=2.0, ignore_index=255))

    fn = {"dice": dice, "ce": ce, "dice+ce": lambda a: dice(a) + ce(a), "focal": focal}[name]
    compiled = jax.jit(jax.value_and_grad(fn)).lower(x).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < 0.5 * x.size * 4, (temp, x.size * 4)


@pytest.mark.parametrize("axes", [(0, 1, 2), (1, 2), (0,), (2,)])
@pytest.mark.parametrize("weighted", [False, True])
def test_class_sums_paths_agree_with_numpy(axes, weighted):
    """The CPU bincount and the accelerator compare-and-sum give the same sums."""
    rng = np.random.default_rng(4)
    shape = (3, 5, 6)
    labels = rng.integers(0, C, size=shape).astype(np.int32)
    valid = rng.random(shape) < 0.8
    values = rng.random(shape).astype(np.float32) if weighted else None
    w = np.ones(shape, np.float32) if values is None else values
    onehot = (labels[..., None] == np.arange(C)) & valid[..., None]
    want = np.sum(np.where(onehot, w[..., None], 0.0), axis=axes)
    for method in ("scatter", "reduce", None):
        got = _fused.class_sums(
            None if values is None else jnp.asarray(values),
            jnp.asarray(labels),
            jnp.asarray(valid),
            axes,
            C,
            method,
        )
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=str(method))


def _large_c_data(c=1000, shape=(1, 4, 4)):
    """LVIS / ADE20K-full class counts on a tiny image: the large-C paths, cheaply."""
    rng = np.random.default_rng(c)
    logits = rng.normal(size=(*shape, c)).astype(np.float32) * 3
    labels = rng.integers(0, c, size=shape).astype(np.int32)
    labels[0, 0, :3] = 255
    return jnp.asarray(logits), jnp.asarray(labels)


def _optax_ce(a, y):
    import optax

    valid = y != 255
    per_pixel = optax.softmax_cross_entropy_with_integer_labels(a, jnp.where(valid, y, 0))
    return jnp.sum(jnp.where(valid, per_pixel, 0.0)) / jnp.sum(valid, dtype=jnp.float32)


def test_cross_entropy_at_1000_classes_matches_optax():
    x, y = _large_c_data()
    got = jax.jit(
        jax.value_and_grad(lambda a: jnp.sum(jaxseg.cross_entropy_loss(a, y, ignore_index=255)))
    )(x)
    want = jax.jit(jax.value_and_grad(lambda a: _optax_ce(a, y)))(x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-7)


def test_dice_at_1000_classes_matches_optax():
    import optax

    x, y = _large_c_data()
    clean = jnp.where(y == 255, 0, y)  # optax's Dice has no ignore
    hot = jax.nn.one_hot(clean, 1000)
    # ours (2TP + s) / (2TP + FP + FN + s) with s = 2 is optax's with smooth = 1
    got = jax.jit(jax.value_and_grad(lambda a: jnp.mean(jaxseg.dice_loss(a, clean, smooth=2.0))))(x)
    want = jax.jit(
        jax.value_and_grad(lambda a: jnp.mean(optax.losses.dice_loss(a, hot, smooth=1.0)))
    )(x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-3, atol=1e-9)


def test_focal_at_1000_classes_matches_dense_formula():
    """The fused focal path against ``-a_y (1 - p_y) ** gamma log p_y`` written densely."""
    x, y = _large_c_data()
    c = x.shape[-1]
    a = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, c).astype(np.float32))
    valid = y != 255
    safe = jnp.where(valid, y, 0)

    def dense(logits):
        logp = jax.nn.log_softmax(logits, axis=-1)
        hot = jax.nn.one_hot(safe, c) * valid[..., None].astype(jnp.float32)
        per_pixel = -jnp.sum(hot * a.reshape(1, 1, 1, c) * (-jnp.expm1(logp)) ** 2 * logp, axis=-1)
        return jnp.sum(per_pixel) / jnp.sum(jnp.where(valid, a[safe], 0.0))

    def ours(logits):
        return jnp.sum(jaxseg.focal_loss(logits, y, gamma=2.0, ignore_index=255, class_weights=a))

    got = jax.jit(jax.value_and_grad(ours))(x)
    want = jax.jit(jax.value_and_grad(dense))(x)
    x64, a64 = np.asarray(x, np.float64), np.asarray(a, np.float64)
    logp = x64 - np.log(np.sum(np.exp(x64 - x64.max(-1, keepdims=True)), -1, keepdims=True))
    logp -= x64.max(-1, keepdims=True)
    logp_y = np.take_along_axis(logp, np.asarray(safe)[..., None], -1)[..., 0]
    terms = -a64[np.asarray(safe)] * (1 - np.exp(logp_y)) ** 2 * logp_y
    v = np.asarray(valid)
    np.testing.assert_allclose(got[0], terms[v].sum() / a64[np.asarray(safe)][v].sum(), rtol=1e-5)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-7)


def test_weighted_prob_sums_paths_agree():
    """The exp-sum form of ``sum_c b_c p_c`` (signed, zero and tiny weights) equals the product."""
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(3, 4, 40)).astype(np.float32) * 3)
    shift = _fused._shift(_fused._lse(x), jnp.asarray(rng.random((3, 4)) < 0.8))
    b = rng.normal(size=(40,)).astype(np.float32)
    b[:5] = 0.0
    b[5:8] = 1e-30
    for weights in (b, np.abs(b)):
        got = _fused._weighted_prob_sums(x, shift, jnp.asarray(weights)[None, None], "exp")
        want = _fused._weighted_prob_sums(x, shift, jnp.asarray(weights)[None, None], "product")
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
