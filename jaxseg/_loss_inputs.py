"""The setup shared by every loss family: logits, targets, masks, pooled axes.

Loss modules (:mod:`jaxseg._losses`, :mod:`jaxseg._lovasz`,
:mod:`jaxseg._cross_entropy`, :mod:`jaxseg._topology`) call these so that
``axis``, ``class_weights``, ``ignore_index`` and ``where`` mean the same thing
in every loss.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxseg import _validation as v
from jaxseg._soft import SoftStats, pool_axes, prepare_targets

ArrayLike = jax.typing.ArrayLike

__all__ = [
    "dense_targets",
    "float_logits",
    "loss_inputs",
    "pool_axes",
    "prepare_targets",
    "region_stats",
]


def float_logits(logits: ArrayLike) -> jax.Array:
    """Checked logits, cast to float32 (bf16 / fp16 inputs accumulate in float32)."""
    return v.check_logits(jnp.asarray(logits)).astype(jnp.float32)


def loss_inputs(
    logits: ArrayLike, *, axis: Any, ignore_index: Any, class_weights: Any
) -> tuple[jax.Array, jax.Array | None, tuple[int, ...], tuple[int, ...]]:
    """The opening of every loss: ``(x, class_weights, axes, ignored)``.

    ``x`` the float32 logits ``[..., C]``, ``class_weights`` checked ``[C]`` (or
    ``None``), ``axes`` the pooled per-pixel axes, ``ignored`` the sorted ignored ids.
    """
    x = float_logits(logits)
    cw = v.check_class_weights(class_weights, x.shape[-1])
    axes = pool_axes(axis, x.ndim - 1)
    return x, cw, axes, v.normalize_ignore_index(ignore_index)


def dense_targets(
    x: jax.Array,
    labels: ArrayLike,
    *,
    exclusive: bool,
    ignored: tuple[int, ...],
    where: ArrayLike | None,
) -> tuple[jax.Array, jax.Array]:
    """Float targets of ``x.shape`` and the valid mask (:func:`prepare_targets` of ``labels``)."""
    labels = v.as_int_array(labels, "labels")
    y, valid, _ = prepare_targets(x, labels, exclusive=exclusive, ignore_index=ignored, where=where)
    return y, valid


def region_stats(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    exclusive: bool,
    axis: Any,
    ignore_index: Any,
    where: ArrayLike | None,
    class_weights: Any,
    squared: bool = False,
) -> tuple[SoftStats, jax.Array | None, tuple[jax.Array, jax.Array] | None]:
    """Soft statistics of ``softmax`` / ``sigmoid(logits)`` pooled over ``axis``.

    Returns ``(stats, class_weights, squared_terms)``; with ``squared`` the
    V-Net terms ``(sum p y, sum p² + sum y²)`` per class, else ``None``.
    """
    x, cw, axes, ignored = loss_inputs(
        logits, axis=axis, ignore_index=ignore_index, class_weights=class_weights
    )
    if not squared:
        activation = "softmax" if exclusive else "sigmoid"
        stats = SoftStats.from_logits(
            x, labels, activation=activation, axis=axes, ignore_index=ignore_index, where=where
        )
        return stats, cw, None
    # one activation for both the statistics and the V-Net terms
    probs = jax.nn.softmax(x, axis=-1) if exclusive else jax.nn.sigmoid(x)
    stats = SoftStats.from_probabilities(
        probs, labels, axis=axes, exclusive=exclusive, ignore_index=ignore_index, where=where
    )
    y, valid = dense_targets(x, labels, exclusive=exclusive, ignored=ignored, where=where)
    p = jnp.where(valid[..., None] if exclusive else valid, probs, 0.0)
    product = jnp.sum(p * y, axis=axes)
    squares = jnp.sum(p * p, axis=axes) + jnp.sum(y * y, axis=axes)
    return stats, cw, (product, squares)
