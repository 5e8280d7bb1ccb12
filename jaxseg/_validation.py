"""Static argument checks shared by every public function.

Everything here runs at trace time on Python values, shapes and dtypes only, so
it works identically eagerly and under ``jit``/``vmap``/``grad``. Value checks
(label ranges, NaN logits) cannot raise inside ``jit``; they are counted (see
``ConfusionMatrix.invalid``) or turned into errors by :func:`jaxseg.checked`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from jaxseg._lazy import is_jax_array, jax, jnp

AVERAGES = (None, "micro", "macro", "weighted")


def _show(value: Any) -> str:
    if isinstance(value, np.ndarray) or is_jax_array(value):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    return repr(value)


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if not any(value is a or (a is not None and value == a) for a in allowed):
        raise ValueError(f"`{name}` must be one of {list(allowed)}; got {_show(value)}.")
    return value


def check_average(average: Any) -> str | None:
    if average is not None and not isinstance(average, str):
        raise ValueError(f"`average` must be one of {list(AVERAGES)}; got {_show(average)}.")
    return check_choice("average", average, AVERAGES)


def check_nonnegative(name: str, value: Any) -> float:
    """A non-negative Python scalar hyperparameter."""
    if isinstance(value, np.integer | np.floating):
        value = value.item()
    if (isinstance(value, np.ndarray) or is_jax_array(value)) and value.ndim == 0:
        try:
            value = float(value)
        except jax.errors.ConcretizationTypeError:
            return value  # traced scalar: cannot be checked statically
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a non-negative number; got {_show(value)}.")
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"`{name}` must be finite and >= 0; got {value!r}.")
    return value


def check_positive(name: str, value: Any) -> float:
    value = check_nonnegative(name, value)
    if isinstance(value, int | float) and value <= 0:
        raise ValueError(f"`{name}` must be > 0; got {value!r}.")
    return value


def check_num_classes(num_classes: Any) -> int:
    try:
        if isinstance(num_classes, bool | np.bool_):
            raise TypeError
        n = operator.index(num_classes)
    except TypeError:
        raise TypeError(
            f"`num_classes` must be a positive int; got {_show(num_classes)}."
        ) from None
    if n < 1:
        raise ValueError(f"`num_classes` must be a positive int; got {n}.")
    return n


def _is_traced(value: Any) -> bool:
    return is_jax_array(value) and isinstance(value, jax.core.Tracer)


def normalize_ignore_index(ignore_index: Any) -> tuple[int, ...]:
    """``None``, an int, or an iterable of ints -> a sorted tuple of unique ints.

    Integer NumPy scalars and concrete integer arrays (0-d or 1-d, NumPy or JAX)
    count as ints. The ids decide the traced program, so they must be static: a
    traced array raises ``TypeError``.
    """
    if ignore_index is None:
        return ()
    expected = "`ignore_index` must be None, an int or a tuple of ints"
    if _is_traced(ignore_index):
        raise TypeError(
            "`ignore_index` must be static (None, an int or a tuple of ints, known at trace "
            f"time); got a traced array of shape {tuple(ignore_index.shape)}. Pass it as a "
            "Python value, or mark the argument static in `jax.jit`."
        )
    if isinstance(ignore_index, bool | np.bool_):
        raise TypeError(f"{expected}; got {ignore_index!r}.")
    items: Iterable[Any]
    if isinstance(ignore_index, jax.Array | np.ndarray | np.generic):
        arr = np.asarray(ignore_index)
        if arr.ndim > 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{expected}; got {_show(ignore_index)}.")
        items = arr.reshape(-1).tolist()
    elif isinstance(ignore_index, Iterable) and not isinstance(ignore_index, str | bytes):
        items = list(ignore_index)
    else:
        items = [ignore_index]
    out = []
    for item in items:
        if _is_traced(item):
            return normalize_ignore_index(item)  # the "must be static" error
        try:
            if isinstance(item, bool | np.bool_):
                raise TypeError
            out.append(operator.index(item))
        except TypeError:
            raise TypeError(f"{expected}; got {_show(ignore_index)}.") from None
    return tuple(sorted(set(out)))


def check_bool(name: str, value: Any) -> bool:
    """A static flag: a Python ``bool`` or a NumPy ``bool_``, returned as ``bool``.

    Truthy stand-ins (``1``, ``"yes"``, arrays) raise ``TypeError``: a flag that
    changes the traced program must be known at trace time and unambiguous.
    """
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(f"`{name}` must be a bool (True or False); got {_show(value)}.")


def check_int_labels(labels: jax.Array, name: str = "labels") -> jax.Array:
    if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_):
        raise TypeError(
            f"`{name}` must hold integer class ids; got dtype {labels.dtype}. "
            "Cast with `.astype(jnp.int32)`, or pass one-hot / soft labels of shape "
            "`logits.shape` where a loss accepts them."
        )
    if labels.dtype == jnp.bool_:
        return labels.astype(jnp.int32)  # comparisons with int ids need an int dtype
    return labels


def check_same_shape(a_name: str, a: jax.Array, b_name: str, b: jax.Array) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"`{a_name}` and `{b_name}` must have the same shape; "
            f"got {tuple(a.shape)} and {tuple(b.shape)}."
        )


def check_logits(logits: jax.Array, name: str = "logits") -> jax.Array:
    if logits.ndim < 1:
        raise ValueError(f"`{name}` must have a trailing class axis; got a scalar.")
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be floating point; got dtype {logits.dtype}.")
    if logits.shape[-1] < 1:
        raise ValueError(f"`{name}` must have at least one class; got shape {logits.shape}.")
    from jaxseg import _checked

    _checked.check_not_nan(logits, name)  # traced only under `jaxseg.checked`
    return logits


def check_labels_for_logits(logits: jax.Array, labels: jax.Array) -> None:
    """Integer labels must have shape ``logits.shape[:-1]``."""
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            "`labels` must have shape `logits.shape[:-1]` = "
            f"{tuple(logits.shape[:-1])} for integer labels (or `logits.shape` for "
            f"one-hot / soft labels); got {tuple(labels.shape)}."
        )


def broadcast_where(where: Any, shape: tuple[int, ...], name: str = "where") -> jax.Array | None:
    """Check and broadcast a boolean mask to ``shape``."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"`{name}` must be a boolean mask; got dtype {where.dtype}.")
    try:
        return jnp.broadcast_to(where, shape)
    except ValueError:
        raise ValueError(
            f"`{name}` must broadcast to the per-pixel shape {tuple(shape)}; "
            f"got shape {tuple(where.shape)}."
        ) from None


def channel_where(where: Any, shape: tuple[int, ...]) -> jax.Array | None:
    """A mask for independent channels ``[..., C]``.

    ``where`` either has the full ``shape`` (one flag per element) or broadcasts
    to the per-pixel shape ``shape[:-1]`` (one flag per pixel, shared by channels).
    """
    if where is None:
        return None
    w = jnp.asarray(where)
    if tuple(w.shape) == tuple(shape):
        return broadcast_where(w, shape)
    per_pixel = broadcast_where(w, shape[:-1])
    return jnp.broadcast_to(per_pixel[..., None], shape)


def class_ids_in_range(ids: tuple[int, ...], num_classes: int) -> tuple[int, ...]:
    """The ids that are classes (inside ``[0, num_classes)``), e.g. ignored classes."""
    return tuple(i for i in ids if 0 <= i < num_classes)


def counted_mask(num_classes: int, ignore_classes: tuple[int, ...]) -> np.ndarray:
    """Static boolean mask ``[C]``: classes that enter class averages."""
    mask = np.ones(num_classes, bool)
    mask[list(ignore_classes)] = False
    return mask


def check_class_weights(class_weights: Any, num_classes: int) -> jax.Array | None:
    """``None`` or ``C`` finite non-negative numbers -> float32 ``[C]``.

    Shape and dtype are checked always; the values only when they are concrete
    (a traced array passes through unchecked).
    """
    if class_weights is None:
        return None
    expected = (
        f"`class_weights` must be None or {num_classes} finite non-negative numbers, "
        "one weight per class"
    )
    if isinstance(class_weights, str | bytes):
        raise TypeError(f"{expected}; got {class_weights!r}.")
    if isinstance(class_weights, jax.Array):
        w = class_weights
    else:
        try:
            w = np.asarray(class_weights)
        except (TypeError, ValueError):  # ragged or unconvertible
            raise TypeError(f"{expected}; got {class_weights!r}.") from None
    if w.dtype == np.bool_ or not (
        np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)
    ):
        raise TypeError(f"{expected}; got {_show(w)}.")
    if tuple(w.shape) != (num_classes,):
        raise ValueError(
            f"`class_weights` must have shape ({num_classes},), one weight per class; "
            f"got shape {tuple(w.shape)}."
        )
    if not _is_traced(w):
        host = np.asarray(w, np.float64)
        if not np.all(np.isfinite(host) & (host >= 0)):
            raise ValueError(f"`class_weights` must be finite and >= 0; got {host}.")
    return jnp.asarray(w).astype(jnp.float32)


def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """Normalise an int / tuple of ints to sorted non-negative axes of ``ndim``."""
    if isinstance(axis, int) and not isinstance(axis, bool):
        axis = (axis,)
    try:
        axes = tuple(operator.index(a) for a in axis)
    except TypeError:
        raise TypeError(f"`{name}` must be an int or a tuple of ints; got {axis!r}.") from None
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"`{name}` entry {a} is out of range for {ndim} per-pixel axes "
                f"(the class axis is not counted)."
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"`{name}` has repeated axes: {axis!r}.")
    return tuple(sorted(out))


def float_dtype() -> Any:
    """float64 when x64 is enabled, else float32."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


_INT32 = np.iinfo(np.int32)


def as_int_array(x: Any, name: str) -> jax.Array:
    """An integer array for the device, never wrapped by a narrowing cast.

    With ``jax_enable_x64`` off, ``jnp.asarray`` turns a NumPy ``int64`` /
    ``uint64`` array into int32 by wrapping (``2**32 + 1`` becomes 1). Such
    host arrays are saturated to the int32 range on the host first, so a value
    outside it stays out of range (an invalid label or a void prediction)
    instead of aliasing a class.
    """
    if isinstance(x, jax.Array):
        return x
    if not isinstance(x, np.ndarray | np.generic):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError):  # ragged nesting
            raise TypeError(f"`{name}` must be a numeric array; got {_show(x)}.") from None
    if x.dtype.kind not in "biuf":  # strings, bytes, objects, dates: JAX has no such arrays
        raise TypeError(
            f"`{name}` must hold numbers (integer class ids, or float targets where a loss "
            f"accepts them); got dtype {x.dtype}."
        )
    if x.dtype.kind not in "iu" or jax.config.jax_enable_x64:
        return jnp.asarray(x)
    if x.dtype.kind in "iu" and x.dtype.itemsize > 4:
        if x.dtype.kind == "u":
            x = np.minimum(x, np.uint64(_INT32.max)).astype(np.int32)
        else:
            x = np.clip(x, _INT32.min, _INT32.max).astype(np.int32)
    return jnp.asarray(x)
