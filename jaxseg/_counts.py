"""Exact, wide integer counts without ``jax_enable_x64``.

A count is stored as ``NUM_LIMBS = 3`` limbs of 16 bits in ``uint32`` words,
on a trailing axis: ``value = l0 + l1 * 2**16 + l2 * 2**32``. In normal form
``l0, l1 < 2**16`` and ``l2 < 2**16`` while the value is below ``2**48``.

Why this works everywhere:

* Adding two normal-form counts limb-wise gives limbs below ``2**17``; any sum of
  up to 65,536 normal-form counts (``lax.psum``, ``jnp.sum`` over a stacked
  axis, a compiler-inserted all-reduce) stays below ``2**32``, so a plain
  ``uint32`` add never wraps. :func:`normalize` then moves the carries up.
* A single counting call produces int32 counts (exact below ``2**31`` pixels per
  call); :func:`from_int` splits them into limbs.
* Readout to the host (:func:`to_int64_numpy`) is exact in ``int64``; readout to
  the device as floating point (:func:`to_float`) is exact up to ``2**24`` in
  float32 and up to ``2**53`` in float64.

The same representation is used with and without x64, so states built under
either setting merge, psum and checkpoint alike.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LIMB_BITS = 16
NUM_LIMBS = 3
LIMB_MASK = (1 << LIMB_BITS) - 1
#: Normal-form counts that can be summed in one ``uint32`` add without wrapping.
MAX_SUMMANDS = 1 << LIMB_BITS


def zeros(shape: tuple[int, ...]) -> jax.Array:
    return jnp.zeros((*shape, NUM_LIMBS), jnp.uint32)


def from_int(counts: jax.Array) -> jax.Array:
    """Non-negative int32 (or smaller) counts -> normal-form limbs ``[..., 3]``."""
    u = counts.astype(jnp.uint32)
    return jnp.stack([u & LIMB_MASK, u >> LIMB_BITS, jnp.zeros_like(u)], axis=-1)


def normalize(limbs: jax.Array) -> jax.Array:
    """Propagate carries so that the two low limbs are below ``2**16``."""
    l0, l1, l2 = limbs[..., 0], limbs[..., 1], limbs[..., 2]
    l1 = l1 + (l0 >> LIMB_BITS)
    l2 = l2 + (l1 >> LIMB_BITS)
    return jnp.stack([l0 & LIMB_MASK, l1 & LIMB_MASK, l2], axis=-1)


def normalize_signed(limbs: jax.Array) -> jax.Array:
    """Normalise int32 limbs that may be negative (from exact subtraction).

    The represented value must be non-negative; arithmetic shifts floor, so the
    low limbs end in ``[0, 2**16)`` and the borrow lands in the top limb.
    """
    l0, l1, l2 = limbs[..., 0], limbs[..., 1], limbs[..., 2]
    l1 = l1 + (l0 >> LIMB_BITS)
    l2 = l2 + (l1 >> LIMB_BITS)
    out = jnp.stack([l0 & LIMB_MASK, l1 & LIMB_MASK, l2], axis=-1)
    return out.astype(jnp.uint32)


def add(a: jax.Array, b: jax.Array) -> jax.Array:
    return normalize(a + b)


def sum_limbs(limbs: jax.Array, axis: int | tuple[int, ...]) -> jax.Array:
    """Exact sum of normal-form counts over ``axis`` (not the limb axis).

    Sums of more than ``MAX_SUMMANDS`` terms are done in normalised chunks.
    """
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % (limbs.ndim - 1) for a in axes)
    if not axes:
        return limbs
    moved = jnp.moveaxis(limbs, axes, tuple(range(len(axes))))
    flat = moved.reshape((-1, *moved.shape[len(axes) :]))
    while flat.shape[0] > MAX_SUMMANDS:
        n = flat.shape[0]
        chunks = -(-n // MAX_SUMMANDS)
        pad = chunks * MAX_SUMMANDS - n
        flat = jnp.pad(flat, [(0, pad)] + [(0, 0)] * (flat.ndim - 1))
        flat = normalize(flat.reshape((chunks, MAX_SUMMANDS, *flat.shape[1:])).sum(1))
    return normalize(flat.sum(0, dtype=jnp.uint32))


def to_float(limbs: jax.Array, dtype=None) -> jax.Array:
    """Counts as floating point (float64 under x64, else float32)."""
    if dtype is None:
        dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    limbs = normalize(limbs)
    f = limbs.astype(dtype)
    return (f[..., 2] * float(1 << LIMB_BITS) + f[..., 1]) * float(1 << LIMB_BITS) + f[..., 0]


def to_int64_numpy(limbs) -> np.ndarray:
    """Exact host readout as ``int64`` (wraps only above ``2**63``)."""
    arr = np.asarray(jax.device_get(limbs)).astype(np.int64)
    return (arr[..., 2] << (2 * LIMB_BITS)) + (arr[..., 1] << LIMB_BITS) + arr[..., 0]


def from_python_int(values, shape=None) -> jax.Array:
    """Host integers (any size below ``2**48``) -> normal-form limbs; for tests and I/O."""
    arr = np.asarray(values, dtype=np.uint64)
    if shape is not None:
        arr = arr.reshape(shape)
    parts = [(arr >> np.uint64(LIMB_BITS * k)) & np.uint64(LIMB_MASK) for k in range(2)]
    parts.append(arr >> np.uint64(2 * LIMB_BITS))
    if np.any(parts[2] >= np.uint64(1 << 32)):
        raise ValueError("counts must be below 2**64 to be stored in three limbs.")
    return jnp.asarray(np.stack(parts, axis=-1).astype(np.uint32))
