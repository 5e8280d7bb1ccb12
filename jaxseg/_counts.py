"""Exact, wide integer counts (and wide-range float sums) without ``jax_enable_x64``.

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

Float sums that may exceed the float32 range (a dataset's sum of distances near
``3e38``) are stored as *wide sums*: a trailing axis of two floats, a mantissa
``m`` with ``0.5 <= |m| < 1`` (or 0) and an integer exponent ``e``, value
``m * 2**e`` (:func:`wide_from_values`, :func:`wide_add`, :func:`wide_sum`,
:func:`wide_psum`). Adding aligns the exponents to the larger one first, so no
intermediate overflows; the rounding is that of one float add per merge.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

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


def difference(total: jax.Array, *parts: jax.Array) -> jax.Array:
    """Exact ``total - sum(parts)`` of normal-form limbs; the result must be non-negative."""
    out = total.astype(jnp.int32)
    for part in parts:
        out = out - part.astype(jnp.int32)
    return normalize_signed(out)


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


#: Largest count :func:`from_host` accepts: the documented limit of exactness.
MAX_COUNT = 1 << 48


def from_host(values: Any, name: str) -> np.ndarray:
    """Concrete host integers -> checked ``uint64`` NumPy counts (below ``2**48``).

    Raises ``TypeError`` for tracers and non-integer dtypes and ``ValueError``
    for negative counts or counts of ``2**48`` or more, naming the argument.
    """
    if isinstance(values, jax.core.Tracer):
        raise TypeError(
            f"`{name}` must be concrete host counts (a NumPy array or numbers), not a traced "
            "value: build the state outside `jit`, or merge states inside it."
        )
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):  # ragged or unconvertible
        raise TypeError(f"`{name}` must hold integers; got {type(values).__name__}.") from None
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"`{name}` must hold integers; got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.signedinteger) and np.any(arr < 0):
        raise ValueError(f"`{name}` must be non-negative; got minimum {int(arr.min())}.")
    if arr.size and int(arr.max()) >= MAX_COUNT:
        raise ValueError(
            f"`{name}` counts must be below 2**48 (the limit of exactness); "
            f"got maximum {int(arr.max())}."
        )
    return arr.astype(np.uint64)


# -- wide-range float sums: (mantissa, exponent) on a trailing axis of 2 ----------------

#: A wide sum has this many floats on its trailing axis.
WIDE_PARTS = 2


_ZERO_EXP = -(1 << 20)  # the exponent of a zero mantissa: far below every other value


def _exponent(parts: jax.Array) -> jax.Array:
    """Integer exponents of wide sums, with zeros far below every other value."""
    return jnp.where(parts[..., 0] == 0, _ZERO_EXP, parts[..., 1].astype(jnp.int32))


def _wide(m: jax.Array, e: jax.Array) -> jax.Array:
    """Normalise ``m * 2**e`` (``e`` int32) to ``0.5 <= |m| < 1`` (zero: ``(0, 0)``)."""
    frac, shift = jnp.frexp(m)
    exp = jnp.where(frac == 0, 0, e + shift)
    return jnp.stack([frac, exp.astype(m.dtype)], axis=-1)


def wide_from_values(x: jax.Array, axis: int) -> jax.Array:
    """Wide sums of finite floats ``x`` over ``axis``: no overflow whatever the sum."""
    _, e = jnp.frexp(x)
    top = jnp.max(jnp.where(x == 0, _ZERO_EXP, e), axis=axis, keepdims=True, initial=_ZERO_EXP)
    top = jnp.where(top == _ZERO_EXP, 0, top)  # all zeros (or no values)
    m = jnp.sum(jnp.ldexp(x, -top), axis=axis)  # each term below 1 in magnitude
    return _wide(m, jnp.squeeze(top, axis))


def wide_add(a: jax.Array, b: jax.Array) -> jax.Array:
    ea, eb = _exponent(a), _exponent(b)
    e = jnp.maximum(ea, eb)
    m = jnp.ldexp(a[..., 0], ea - e) + jnp.ldexp(b[..., 0], eb - e)
    return _wide(m, e)


def wide_sum(parts: jax.Array, axis: int) -> jax.Array:
    """Sum wide sums over ``axis`` (not the trailing parts axis)."""
    e_all = _exponent(parts)
    e = jnp.max(e_all, axis=axis, keepdims=True)
    m = jnp.sum(jnp.ldexp(parts[..., 0], e_all - e), axis=axis)
    return _wide(m, jnp.squeeze(e, axis))


def wide_psum(parts: jax.Array, axis_name: Any) -> jax.Array:
    """Sum wide sums over a named mapped axis: one ``pmax`` and one ``psum``."""
    e_own = _exponent(parts)
    e = lax.pmax(e_own, axis_name)
    return _wide(lax.psum(jnp.ldexp(parts[..., 0], e_own - e), axis_name), e)


def wide_value(parts: jax.Array, divisor: jax.Array | None = None) -> jax.Array:
    """The float value of wide sums, divided by ``divisor`` first if given.

    Dividing before scaling keeps a mean finite even when the sum is not
    representable; without a divisor a sum beyond the float range is ``inf``.
    """
    m = parts[..., 0] if divisor is None else parts[..., 0] / divisor
    return jnp.ldexp(m, parts[..., 1].astype(jnp.int32))
