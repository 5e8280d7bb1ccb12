"""Counting kernels: the hot inner loops behind the hard statistics.

Each kernel returns exact int32 counts for one call (exact below ``2**31``
pixels per call); callers turn them into wide limbs (:mod:`jaxseg._counts`).
The implementation is picked at trace time, per backend, from measurements in
``benchmarks/`` (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg import _checked


def label_validity(
    labels: jax.Array,
    num_classes: int,
    ignore_index: tuple[int, ...],
    where: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Split pixels into ``counted`` and ``invalid``.

    A pixel is *considered* when ``where`` is true and its label is not ignored.
    Among those, labels outside ``[0, num_classes)`` are *invalid*: they are
    counted separately and never used as an index.

    Returns:
      ``(in_range, invalid)`` boolean arrays of ``labels.shape``.
    """
    considered = jnp.ones(labels.shape, jnp.bool_) if where is None else where
    for i in ignore_index:
        considered = considered & (labels != i)
    in_range = (labels >= 0) & (labels < num_classes)
    invalid = considered & ~in_range
    _checked.check_labels(labels, invalid, num_classes)  # traced only under `jaxseg.checked`
    return considered & in_range, invalid


def replicated_sharding(x: jax.Array) -> jax.sharding.NamedSharding | None:
    """A replicated output sharding when ``x`` is sharded over explicit mesh axes.

    Under ``jax.sharding.AxisType.Explicit`` a scatter (``bincount``) whose input
    is sharded cannot infer its output sharding; the counts are wanted
    replicated (XLA sums the per-shard counts). Elsewhere returns ``None``.
    """
    sharding = jax.typeof(x).sharding
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or jax.sharding.AxisType.Explicit not in tuple(mesh.axis_types):
        return None
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def argmax_classes(logits: jax.Array) -> jax.Array:
    """Index of the largest logit along the last axis, as int32."""
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def confusion_counts(
    preds: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    ignore_index: tuple[int, ...],
    where: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Exact ``[C, C]`` int32 confusion counts (rows labels) and the invalid count.

    One ``bincount`` over ``label * C + pred`` with a dump bin for pixels that
    do not count; predictions outside ``[0, C)`` are invalid too.
    """
    c = num_classes
    ok, invalid = label_validity(labels, c, ignore_index, where)
    pred_ok = (preds >= 0) & (preds < c)
    invalid = invalid | (ok & ~pred_ok)
    ok = ok & pred_ok
    index = jnp.where(ok, labels.astype(jnp.int32) * c + preds.astype(jnp.int32), c * c)
    flat = index.reshape(-1)
    counts = jnp.bincount(flat, length=c * c + 1, out_sharding=replicated_sharding(flat))
    counts = counts[: c * c]
    return counts.reshape(c, c).astype(jnp.int32), jnp.sum(invalid, dtype=jnp.int32)


def binary_counts(
    preds: jax.Array,
    labels: jax.Array,
    *,
    ignore_index: tuple[int, ...],
    where: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Per-class ``[4, C]`` int32 counts ``(tp, fp, fn, tn)`` and the invalid count.

    ``preds`` is boolean ``[..., C]``; ``labels`` are 0/1 integers of the same shape.
    """
    ok, invalid = label_validity(labels, 2, ignore_index, where)
    pos = labels == 1
    axes = tuple(range(preds.ndim - 1))

    def count(mask):
        return jnp.sum(mask, axis=axes, dtype=jnp.int32)

    tp = count(ok & preds & pos)
    fp = count(ok & preds & ~pos)
    fn = count(ok & ~preds & pos)
    tn = count(ok & ~preds & ~pos)
    return jnp.stack([tp, fp, fn, tn]), jnp.sum(invalid, dtype=jnp.int32)
