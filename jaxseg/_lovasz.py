"""Lovász losses (Berman et al. 2018): convex surrogates of the Jaccard loss.

Both losses sort per-pixel errors within each pooled group and take the dot
product with the gradient of the Lovász extension of the Jaccard loss on the
sorted ground truth. Invalid pixels (ignored, masked by ``where``) keep the
static shape: they sort last with zero ground truth and zero error, so they
change nothing.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseg import _classwise as cw_
from jaxseg import _validation as v
from jaxseg._loss_inputs import dense_targets, loss_inputs

ArrayLike = jax.typing.ArrayLike
LOVASZ_CLASSES = ("present", "all")


def _group_last(x: jax.Array, axes: tuple[int, ...], pixel_ndim: int) -> jax.Array:
    """``[pixels..., C]`` -> ``[kept..., C, P]`` with the pooled axes flattened into P."""
    kept = tuple(a for a in range(pixel_ndim) if a not in axes)
    x = jnp.transpose(x, (*kept, pixel_ndim, *axes))
    shape = x.shape[: len(kept) + 1]
    pooled = math.prod(x.shape[len(kept) + 1 :])  # explicit: `-1` is ambiguous at size 0
    return x.reshape(*shape, pooled)


def _lovasz_grad(gt_sorted: jax.Array) -> jax.Array:
    """Gradient of the Lovász extension of the Jaccard loss at sorted ground truth."""
    gts = jnp.sum(gt_sorted, axis=-1, keepdims=True)
    intersection = gts - jnp.cumsum(gt_sorted, axis=-1)
    union = gts + jnp.cumsum(1.0 - gt_sorted, axis=-1)
    ok = union > 0
    jaccard = 1.0 - jnp.where(ok, intersection / jnp.where(ok, union, 1.0), 1.0)
    return jnp.concatenate([jaccard[..., :1], jnp.diff(jaccard, axis=-1)], axis=-1)


def _lovasz_dot(errors: jax.Array, gt: jax.Array, valid: jax.Array, hinge: bool) -> jax.Array:
    """``<sorted errors, lovasz_grad(sorted gt)>`` along the last axis.

    Errors are sorted in decreasing order; invalid entries sort last and count 0.
    """
    key = jnp.where(valid, -errors, jnp.inf)
    _, e_sorted, gt_sorted, ok_sorted = lax.sort(
        (key, errors, gt, valid.astype(jnp.float32)), dimension=errors.ndim - 1, num_keys=1
    )
    if hinge:
        e_sorted = jax.nn.relu(e_sorted)
    e_sorted = jnp.where(ok_sorted > 0, e_sorted, 0.0)
    return jnp.sum(e_sorted * _lovasz_grad(gt_sorted), axis=-1)


def lovasz_softmax_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    classes: str = "present",
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
) -> jax.Array:
    """Lovász-Softmax loss: a convex surrogate of ``1 - IoU`` per class.

    For class ``c`` in a pooled group, with ``p = softmax(logits)`` and errors
    ``e_i = |y_ic - p_ic|`` sorted in decreasing order (permutation ``π``)::

        loss_c = sum_k e_π(k) g_k,   g = gradient of the Lovász extension of
                                     the Jaccard loss at the sorted y_c

    averaged with ``class_weights`` over the classes present in the labels of
    the group (``classes="present"``; 0 if none) or over all counted classes
    (``classes="all"``). Berman's ``per_image=True`` is the default ``axis``
    (one value per image); his ``per_image=False`` is ``axis`` including the
    batch axis 0 — there is no separate ``per_image`` flag.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float targets ``logits.shape``.
      classes: ``"present"`` (default) or ``"all"``.
      axis: per-pixel axes pooled into one sorted set. Default ``None``: all but
        the first (batch) axis.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` weights of the class average (normalised).

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).
      Zero-size axes are fine: an empty batch gives an empty loss, a group with
      no pixels gives 0 (and zero gradients).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> jaxseg.lovasz_softmax_loss(logits, labels)
      Array([0.3595143], dtype=float32)

    References:
      Berman, Rannen Triki & Blaschko, "The Lovász-Softmax loss: a tractable
      surrogate for the optimization of the intersection-over-union measure in
      neural networks", CVPR 2018.
    """
    v.check_choice("classes", classes, LOVASZ_CLASSES)
    x, cw, axes, ignored = loss_inputs(
        logits, axis=axis, ignore_index=ignore_index, class_weights=class_weights
    )
    c, nd = x.shape[-1], x.ndim - 1
    y, valid = dense_targets(x, labels, exclusive=True, ignored=ignored, where=where)
    p = jax.nn.softmax(x, axis=-1)
    valid_c = jnp.broadcast_to(valid[..., None], x.shape)
    errors = jnp.where(valid_c, jnp.abs(y - p), 0.0)
    e, g, ok = (_group_last(a, axes, nd) for a in (errors, y, valid_c))
    per_class = _lovasz_dot(e, g, ok, hinge=False)
    include = cw_.include_mask(
        v.counted_mask(c, v.class_ids_in_range(ignored, c)),
        per_class.shape,
        class_weights=cw,
    )
    if classes == "present":
        include = include & (jnp.sum(g, axis=-1) > cw_.MIN_MASS)
    return cw_.class_average(per_class, include, average="macro", class_weights=cw, none_value=0.0)


def lovasz_hinge_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
) -> jax.Array:
    """Lovász hinge loss: binary Lovász surrogate of ``1 - IoU`` per channel.

    For channel ``c`` in a pooled group, with signs ``s = 2 y - 1`` and hinge
    errors ``e_i = 1 - x_ic s_i`` sorted in decreasing order::

        loss_c = sum_k relu(e_π(k)) g_k,   g = Lovász gradient at the sorted y_c

    averaged over channels with ``class_weights``. The default ``axis`` is
    Berman's ``per_image=True``; include axis 0 for ``per_image=False``.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: 0/1 integers or float targets of ``logits.shape``.
      axis: per-pixel axes pooled into one sorted set. Default ``None``: all but
        the first (batch) axis.
      ignore_index: integer label value(s) to leave out (e.g. 255).
      where: boolean mask, per pixel (``logits.shape[:-1]``) or per element.
      class_weights: ``[C]`` weights of the channel average (normalised).

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).
      Zero-size axes are fine: an empty batch gives an empty loss, a group with
      no pixels gives 0 (and zero gradients).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0], [-1.0], [0.5]]])
      >>> labels = jnp.array([[[1], [0], [1]]])
      >>> jaxseg.lovasz_hinge_loss(logits, labels)
      Array([0.25], dtype=float32)

    References:
      Berman, Rannen Triki & Blaschko, CVPR 2018.
    """
    x, cw, axes, ignored = loss_inputs(
        logits, axis=axis, ignore_index=ignore_index, class_weights=class_weights
    )
    c, nd = x.shape[-1], x.ndim - 1
    y, valid = dense_targets(x, labels, exclusive=False, ignored=ignored, where=where)
    errors = jnp.where(valid, 1.0 - x * (2.0 * y - 1.0), 0.0)
    e, g, ok = (_group_last(a, axes, nd) for a in (errors, y, valid))
    per_class = _lovasz_dot(e, g, ok, hinge=True)
    include = cw_.include_mask(np.ones(c, np.bool_), per_class.shape, class_weights=cw)
    return cw_.class_average(per_class, include, average="macro", class_weights=cw, none_value=0.0)
