"""Fused softmax reductions with hand-written VJPs: the hot paths of the losses.

Differentiating ``softmax`` followed by a sum with plain autodiff keeps the
``[..., C]`` probabilities (and often the one-hot targets) alive between the
forward and backward passes and walks the logits several times. Both reductions
here save only the per-pixel log-sum-exp ``[...]`` and recompute
``p = exp(x - lse)`` in the backward pass, which then writes the gradient in one
fused sweep over the logits:

* region losses need ``tp_c = sum_i v_i p_ic [y_i = c]`` and
  ``P_c = sum_i v_i p_ic`` per pooled group; with cotangents ``a = dL/dtp`` and
  ``b = dL/dP`` the gradient is ``dx_i = v_i p_i ⊙ (g_i - <p_i, g_i>)`` with
  ``g_ic = a_c [y_i = c] + b_c``;
* cross-entropy needs ``sum_i v_i l_i`` with
  ``l_i = (1 - e) w_{y_i} (lse_i - x_{i y_i}) + (e / C) sum_c w_c (lse_i - x_ic)``,
  whose gradient is ``dx_i = v_i [(1 - e) w_{y_i} (p_i - onehot(y_i)) + (e / C) (W p_i - w)]``
  with ``W = sum_c w_c``.

Labels must already be sanitised (valid ids in ``[0, C)``, ``valid`` false
elsewhere); class weights are treated as constants.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


def _lse(x: jax.Array) -> jax.Array:
    """Per-pixel log-sum-exp ``[...]`` of the logits, stable for any finite values."""
    m = jnp.max(x, axis=-1, keepdims=True)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return (m + jnp.log(jnp.sum(jnp.exp(x - m), axis=-1, keepdims=True)))[..., 0]


def _onehot(labels: jax.Array, valid: jax.Array, c: int) -> jax.Array:
    iota = jax.lax.broadcasted_iota(jnp.int32, (*labels.shape, c), labels.ndim)
    return (labels[..., None] == iota) & valid[..., None]


def _expand(g: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    return jnp.expand_dims(g, axes) if axes else g


# -- region statistics ------------------------------------------------------------


def _group_index(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[jax.Array, int]:
    """Row-major index of each pixel's non-pooled coordinates, and the group count."""
    gid = jnp.zeros(shape, jnp.int32)
    stride = 1
    for d in reversed(range(len(shape))):
        if d in axes:
            continue
        gid = gid + jax.lax.broadcasted_iota(jnp.int32, shape, d) * stride
        stride *= shape[d]
    return gid, stride


def class_sums(
    values: jax.Array | None, labels: jax.Array, valid: jax.Array, axes: tuple[int, ...], c: int
) -> jax.Array:
    """``sum_i v_i values_i [labels_i = c]`` over ``axes`` -> float32 ``[non-pooled..., C]``.

    ``values=None`` counts pixels. On CPU one ``bincount`` over ``group * C + label``
    (a scatter-add into a tiny table); elsewhere a compare-and-sum reduction,
    since float scatter-adds serialise on GPUs.
    """
    kept = tuple(n for d, n in enumerate(labels.shape) if d not in axes)
    w = jnp.ones(labels.shape, jnp.float32) if values is None else values

    def reduce_onehot():
        onehot = _onehot(labels, valid, c)
        return jnp.sum(jnp.where(onehot, w[..., None], 0.0), axis=axes)

    if not axes:
        return reduce_onehot()

    def scatter():
        gid, groups = _group_index(labels.shape, axes)
        index = jnp.where(valid, gid * c + labels, groups * c).reshape(-1)
        out = jnp.bincount(index, weights=w.reshape(-1), length=groups * c + 1)
        return out[:-1].reshape((*kept, c)).astype(jnp.float32)

    return jax.lax.platform_dependent(cpu=scatter, default=reduce_onehot)


def _gather_rows(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[..., labels]`` per pixel (labels already sanitised)."""
    return jnp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def softmax_label_sums(
    x: jax.Array, labels: jax.Array, valid: jax.Array, axes: tuple[int, ...]
) -> tuple[jax.Array, jax.Array]:
    """``(tp, P)`` of ``softmax(x)`` against int labels, summed over ``axes``.

    Args:
      x: float32 logits ``[..., C]``.
      labels: int32 sanitised labels ``[...]``.
      valid: bool ``[...]``.
      axes: pooled per-pixel axes (static).

    Returns:
      ``tp, P``: float32 ``[non-pooled..., C]``.
    """
    return _label_sums_fwd(x, labels, valid, axes)[0]


def _label_sums_fwd(x, labels, valid, axes):
    c = x.shape[-1]
    lse = _lse(x)
    # tp gathers one probability per pixel; P is a single fused reduction of exp.
    p_y = jnp.where(valid, jnp.exp(_gather_rows(x, labels) - lse), 0.0)
    tp = class_sums(p_y, labels, valid, axes, c)
    total = jnp.sum(jnp.where(valid[..., None], jnp.exp(x - lse[..., None]), 0.0), axis=axes)
    return (tp, total), (x, labels, valid, lse)


def _label_sums_bwd(axes, res, cot):
    # dx_ic = v_i p_ic (a_c [y_i = c] + b_c - s_i),  s_i = a_{y_i} p_{i y_i} + sum_c b_c p_ic
    x, labels, valid, lse = res
    g_tp, g_total = cot
    c = x.shape[-1]
    a, b = _expand(g_tp, axes), _expand(g_total, axes)
    gid, groups = _group_index(labels.shape, axes)
    a_y = jnp.take(g_tp.reshape(groups * c), gid * c + labels)
    p_y = jnp.exp(_gather_rows(x, labels) - lse)
    s = a_y * p_y + jnp.sum(b * jnp.exp(x - lse[..., None]), axis=-1)
    p = jnp.exp(x - lse[..., None])
    onehot = _onehot(labels, valid, c)
    dx = p * (b - s[..., None]) + jnp.where(onehot, p * a, 0.0)
    return jnp.where(valid[..., None], dx, 0.0), None, None


softmax_label_sums.defvjp(_label_sums_fwd, _label_sums_bwd)


# -- cross-entropy ------------------------------------------------------------------


@partial(jax.custom_vjp, nondiff_argnums=(5,))
def cross_entropy_sums(
    x: jax.Array,
    labels: jax.Array,
    valid: jax.Array,
    weights: jax.Array,
    smoothing: jax.Array,
    axes: tuple[int, ...],
) -> jax.Array:
    """``sum_i v_i l_i`` over ``axes`` (see the module docstring for ``l_i``).

    Args:
      x: float32 logits ``[..., C]``.
      labels: int32 sanitised labels ``[...]``.
      valid: bool ``[...]``.
      weights: float32 class weights ``[C]`` (constants: no gradient).
      smoothing: float32 scalar label smoothing ``e`` (constant).
      axes: pooled per-pixel axes (static); ``()`` gives per-pixel terms.

    Returns:
      float32 ``[non-pooled...]``.
    """
    return _ce_fwd(x, labels, valid, weights, smoothing, axes)[0]


def _ce_fwd(x, labels, valid, weights, smoothing, axes):
    c = x.shape[-1]
    lse = _lse(x)
    onehot = _onehot(labels, valid, c)
    w = jnp.broadcast_to(weights, x.shape)
    x_y = jnp.sum(jnp.where(onehot, x, 0.0), axis=-1)
    w_y = jnp.sum(jnp.where(onehot, w, 0.0), axis=-1)
    per_pixel = (1.0 - smoothing) * w_y * (lse - x_y)
    smooth_term = jnp.sum(w * (lse[..., None] - x), axis=-1)
    per_pixel = per_pixel + jnp.where(smoothing > 0, (smoothing / c) * smooth_term, 0.0)
    per_pixel = jnp.where(valid, per_pixel, 0.0)
    out = jnp.sum(per_pixel, axis=axes) if axes else per_pixel
    return out, (x, labels, valid, weights, smoothing, lse)


def _ce_bwd(axes, res, g):
    x, labels, valid, weights, smoothing, lse = res
    c = x.shape[-1]
    p = jnp.exp(x - lse[..., None])
    onehot = _onehot(labels, valid, c)
    w = jnp.broadcast_to(weights, x.shape)
    w_y = jnp.sum(jnp.where(onehot, w, 0.0), axis=-1, keepdims=True)
    grad = (1.0 - smoothing) * w_y * (p - onehot.astype(jnp.float32))
    grad = grad + (smoothing / c) * (jnp.sum(weights) * p - w)
    scale = jnp.where(valid, _expand(g, axes), 0.0)[..., None]
    dx = jnp.where(valid[..., None], scale * grad, 0.0)
    return dx, None, None, jnp.zeros_like(weights), jnp.zeros_like(smoothing)


cross_entropy_sums.defvjp(_ce_fwd, _ce_bwd)
