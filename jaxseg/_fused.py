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

How the passes are written (measured with ``benchmarks/``; XLA:CPU hands
elementwise-and-reduce chains to its YNNPACK fusions, which vectorise ``exp``
several times better than plain loop fusions but stop at ``select``):

* no ``where`` over ``[..., C]`` inside a reduction: an ignored pixel gets the
  shift ``+inf``, so ``exp(x - shift)`` is ``0`` there for any finite logit;
* the labelled entries are read by a flat gather and the one-hot part of a
  gradient is added by a flat scatter (``[pixels]`` work), not by a
  ``[pixels, C]`` comparison;
* the backward pass recomputes ``exp(x - shift)`` behind an optimisation
  barrier, so XLA cannot merge it with the forward pass's identical ``exp``
  and keep all the probabilities alive in between;
* on CPU, a per-class weighting inside a reduction goes into the exponent
  (``exp(x + log b - shift)``), not into a product, for tens of classes and more.

No step loops over the classes in Python: the graphs, and the compile times,
do not grow with ``C``.

Consequence: a NaN or ``+inf`` logit in an ignored pixel can make the loss or
its gradient NaN (as in torch; which one depends on the backend's ``exp``);
finite values there, however large, are left out exactly.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp


def _lse(x: jax.Array) -> jax.Array:
    """Per-pixel log-sum-exp ``[...]`` of the logits, stable for any finite values."""
    big = jnp.finfo(x.dtype).max
    m = jnp.clip(jnp.max(x, axis=-1), -big, big)  # all -inf -> -big; keeps the fusion select-free
    return m + jnp.log(jnp.sum(jnp.exp(x - m[..., None]), axis=-1))


def _shift(lse: jax.Array, valid: jax.Array) -> jax.Array:
    """``lse`` where valid, ``+inf`` elsewhere: ``exp(x - shift)`` is the masked softmax."""
    return jnp.where(valid, lse, jnp.inf)


def _onehot(labels: jax.Array, valid: jax.Array, c: int) -> jax.Array:
    iota = jax.lax.broadcasted_iota(jnp.int32, (*labels.shape, c), labels.ndim)
    return (labels[..., None] == iota) & valid[..., None]


def _expand(g: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    return jnp.expand_dims(g, axes) if axes else g


#: Flat ``[pixels * C]`` indices must fit int32 (XLA's index type here); larger
#: inputs take the ``[..., C]`` fallbacks.
FLAT_INDEX_LIMIT = 2**31


def _flat_index(labels: jax.Array, c: int) -> jax.Array | None:
    """``i * C + labels_i`` over the flattened pixels, or ``None`` past the limit.

    Unsigned, so that indexing skips the wrap-around of negative indices.
    """
    if labels.size * c >= FLAT_INDEX_LIMIT:
        return None
    return jnp.arange(labels.size, dtype=jnp.uint32) * c + labels.reshape(-1).astype(jnp.uint32)


def _gather_rows(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[..., labels]`` per pixel (labels already sanitised)."""
    index = _flat_index(labels, x.shape[-1])
    if index is None:
        return jnp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]
    return x.reshape(-1).at[index].get(mode="promise_in_bounds").reshape(labels.shape)


def _add_at_labels(
    dx: jax.Array, labels: jax.Array, values: jax.Array, method: str | None = None
) -> jax.Array:
    """``dx[..., labels] += values`` per pixel.

    On CPU a flat scatter (``[pixels]`` work); elsewhere a compare-and-select
    that fuses into the elementwise kernel producing ``dx``. ``method``
    (``"scatter"`` or ``"select"``) forces one, for tests.
    """
    c = dx.shape[-1]
    index = _flat_index(labels, c)

    def select():
        hot = _onehot(labels, jnp.ones(labels.shape, jnp.bool_), c)
        return dx + jnp.where(hot, values[..., None], 0.0)

    def scatter():
        flat = (
            dx.reshape(-1)
            .at[index]
            .add(
                values.reshape(-1),
                mode="promise_in_bounds",
                indices_are_sorted=True,
                unique_indices=True,
            )
        )
        return flat.reshape(dx.shape)

    if index is None or method == "select":
        return select()
    if method == "scatter":
        return scatter()
    return jax.lax.platform_dependent(cpu=scatter, default=select)


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
    values: jax.Array | None,
    labels: jax.Array,
    valid: jax.Array,
    axes: tuple[int, ...],
    c: int,
    method: str | None = None,
) -> jax.Array:
    """``sum_i v_i values_i [labels_i = c]`` over ``axes`` -> float32 ``[non-pooled..., C]``.

    ``values=None`` counts pixels. On CPU one ``bincount`` over ``group * C + label``
    (a scatter-add into a tiny table); elsewhere a compare-and-sum reduction,
    since float scatter-adds serialise on GPUs. ``method`` (``"scatter"`` or
    ``"reduce"``) forces one, for tests.
    """
    kept = tuple(n for d, n in enumerate(labels.shape) if d not in axes)
    w = jnp.ones(labels.shape, jnp.float32) if values is None else values

    def reduce_onehot():
        onehot = _onehot(labels, valid, c)
        return jnp.sum(jnp.where(onehot, w[..., None], 0.0), axis=axes)

    if not axes or method == "reduce":
        return reduce_onehot()

    def scatter():
        gid, groups = _group_index(labels.shape, axes)
        index = jnp.where(valid, gid * c + labels, groups * c).reshape(-1)
        out = jnp.bincount(index, weights=w.reshape(-1), length=groups * c + 1)
        return out[:-1].reshape((*kept, c)).astype(jnp.float32)

    if method == "scatter":
        return scatter()
    return jax.lax.platform_dependent(cpu=scatter, default=reduce_onehot)


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
    shift = _shift(_lse(x), valid)
    # tp gathers one probability per pixel; P is a single fused reduction of exp.
    p_y = jnp.exp(_gather_rows(x, labels) - shift)
    tp = class_sums(p_y, labels, valid, axes, c)
    total = jnp.sum(jnp.exp(x - shift[..., None]), axis=axes)
    return (tp, total), (x, labels, shift, p_y)


#: ``sum_c b_c p_ic`` by two exp-sums (see :func:`_weighted_prob_sums`) from this many
#: classes on; below, the plain product-sum (Dice ``value_and_grad`` on a 2-core CPU:
#: the product 1.4x faster at C=19; the exp-sums 1.2x faster at C=64, 1.9x at C=150,
#: 2.1x at C=1000).
EXP_WEIGHTS_MIN_CLASSES = 32


def _weighted_prob_sums(
    x: jax.Array, shift: jax.Array, b: jax.Array, method: str | None = None
) -> jax.Array:
    """``s_i = sum_c b_c exp(x_ic - shift_i)`` for per-class weights ``b`` (broadcast).

    Written as ``sum_c exp(x_ic + log b+_c - shift_i) - sum_c exp(x_ic + log b-_c - shift_i)``
    with ``b+ = max(b, 0)``, ``b- = max(-b, 0)`` (``log 0 = -inf`` drops a class):
    XLA:CPU keeps a sum of ``exp`` of a broadcast sum in its vectorised reduction, but
    not a sum of a broadcast product (measured at ``C = 1000``: 47 against 365 ms for
    one ``[65536, 1000]`` sweep). The weights of the region losses are ``dL/dP >= 0``,
    so the second sum is usually all zeros and there is no cancellation. ``method``
    (``"exp"`` or ``"product"``) forces one, for tests; by default the exp-sums on
    CPU from ``EXP_WEIGHTS_MIN_CLASSES`` classes on, the product elsewhere.
    """

    def product():
        return jnp.sum(b * jnp.exp(x - shift[..., None]), axis=-1)

    def exp_sums():
        pos = jnp.log(jnp.maximum(b, 0.0))
        neg = jnp.log(jnp.maximum(-b, 0.0))
        return jnp.sum(jnp.exp(x + pos - shift[..., None]), axis=-1) - jnp.sum(
            jnp.exp(x + neg - shift[..., None]), axis=-1
        )

    if method == "product" or (method is None and x.shape[-1] < EXP_WEIGHTS_MIN_CLASSES):
        return product()
    if method == "exp":
        return exp_sums()
    return jax.lax.platform_dependent(cpu=exp_sums, default=product)


def _label_sums_bwd(axes, res, cot):
    # dx_ic = p_ic (b_c - s_i) + [y_i = c] a_c p_ic,  s_i = a_{y_i} p_{i y_i} + sum_c b_c p_ic
    x, labels, shift, p_y = res
    g_tp, g_total = cot
    c = x.shape[-1]
    b = _expand(g_total, axes)
    gid, groups = _group_index(labels.shape, axes)
    a_y = g_tp.reshape(groups * c).at[gid * c + labels].get(mode="promise_in_bounds")
    x, shift = jax.lax.optimization_barrier((x, shift))  # recompute p; do not keep it
    s = a_y * p_y + _weighted_prob_sums(x, shift, b)
    p = jnp.exp(x - shift[..., None])
    dx = _add_at_labels(p * (b - s[..., None]), labels, a_y * p_y)
    return dx, None, None


softmax_label_sums.defvjp(_label_sums_fwd, _label_sums_bwd)


# -- cross-entropy ------------------------------------------------------------------


@partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def cross_entropy_sums(
    x: jax.Array,
    labels: jax.Array,
    valid: jax.Array,
    weights: jax.Array,
    smoothing: jax.Array,
    axes: tuple[int, ...],
    smoothed: bool = True,
) -> jax.Array:
    """``sum_i v_i l_i`` over ``axes`` (see the module docstring for ``l_i``).

    Args:
      x: float32 logits ``[..., C]``.
      labels: int32 sanitised labels ``[...]``.
      valid: bool ``[...]``.
      weights: float32 class weights ``[C]`` (constants: no gradient).
      smoothing: float32 scalar label smoothing ``e`` (constant).
      axes: pooled per-pixel axes (static); ``()`` gives per-pixel terms.
      smoothed: static; ``False`` promises ``e = 0`` and skips the smoothing terms.

    Returns:
      float32 ``[non-pooled...]``.
    """
    return _ce_fwd(x, labels, valid, weights, smoothing, axes, smoothed)[0]


def _ce_fwd(x, labels, valid, weights, smoothing, axes, smoothed):
    c = x.shape[-1]
    lse = _lse(x)
    w_y = weights.at[labels].get(mode="promise_in_bounds")
    e = smoothing if smoothed else jnp.zeros((), jnp.float32)
    per_pixel = (1.0 - e) * w_y * (lse - _gather_rows(x, labels))
    if smoothed:  # (e / C) sum_c w_c (lse - x_c)
        per_pixel = per_pixel + (e / c) * (
            jnp.sum(weights) * lse - jnp.sum(jnp.broadcast_to(weights, x.shape) * x, axis=-1)
        )
    per_pixel = jnp.where(valid, per_pixel, 0.0)
    out = jnp.sum(per_pixel, axis=axes) if axes else per_pixel
    return out, (x, labels, valid, weights, e, _shift(lse, valid), w_y)


def _ce_bwd(axes, smoothed, res, g):
    # dx_ic = gv_i [((1 - e) w_y + (e / C) W) p_ic - (e / C) w_c - (1 - e) w_y [y_i = c]]
    x, labels, valid, weights, e, shift, w_y = res
    c = x.shape[-1]
    gv = jnp.where(valid, _expand(g, axes), 0.0)
    hard = gv * (1.0 - e) * w_y
    x, shift = jax.lax.optimization_barrier((x, shift))  # keep the select out of the exp pass
    p = jnp.exp(x - shift[..., None])
    if smoothed:
        soft = gv * (e / c)
        dx = (hard + soft * jnp.sum(weights))[..., None] * p - soft[..., None] * jnp.broadcast_to(
            weights, x.shape
        )
    else:
        dx = hard[..., None] * p
    dx = _add_at_labels(dx, labels, -hard)
    return dx, None, None, jnp.zeros_like(weights), jnp.zeros_like(e)


cross_entropy_sums.defvjp(_ce_fwd, _ce_bwd)
