"""Opt-in checked mode: value problems become errors instead of counts.

Inside ``jit`` a value cannot raise, so by default out-of-range labels are
counted in the state's ``invalid`` count (and left out of losses) and NaN
logits propagate. :func:`checked` runs a function under
:func:`jax.experimental.checkify.checkify` with a trace-time flag set; while the
flag is set, jaxseg's entry points add ``checkify`` checks for those value
problems. The flag is a JAX user context, part of the ``jit`` cache key, so a
function traced with checks never reuses a trace without them (or the other
way round), and code outside :func:`checked` traces no check at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
from jax.experimental import checkify

F = TypeVar("F", bound=Callable[..., Any])

_CHECKING = jax.make_user_context(default_value=False)


def enabled() -> bool:
    """Whether the function being traced runs under :func:`checked`."""
    return bool(_CHECKING.value)


def check_labels(labels: jax.Array, invalid: jax.Array, num_classes: int) -> None:
    """Under :func:`checked`: fail if any considered label lies outside ``[0, num_classes)``.

    ``invalid`` marks the labels that are neither ignored nor masked out and are
    out of range (see :func:`jaxseg._kernels.label_validity`).
    """
    if not enabled():
        return
    # min / max in the labels' own dtype: a cast to int32 would show uint32 values
    # >= 2**31 as negative; integer JAX arrays never exceed 32 bits unless x64 is on,
    # and then int64 / uint64 hold their own values.
    info = jnp.iinfo(labels.dtype)
    low = jnp.min(jnp.where(invalid, labels, jnp.asarray(info.max, labels.dtype)))
    high = jnp.max(jnp.where(invalid, labels, jnp.asarray(info.min, labels.dtype)))
    checkify.check(
        ~jnp.any(invalid),
        f"jaxseg: {{count}} label(s) outside the class range [0, {num_classes}) that are "
        "neither ignored nor masked out; their values range over [{low}, {high}]. "
        "Pass them in `ignore_index` or mask them with `where`.",
        count=jnp.sum(invalid, dtype=jnp.int32),
        low=low,
        high=high,
    )


def check_not_nan(x: jax.Array, name: str) -> None:
    """Under :func:`checked`: fail if ``x`` (logits or probabilities) holds a NaN."""
    if not enabled():
        return
    nans = jnp.isnan(x)
    checkify.check(
        ~jnp.any(nans),
        f"jaxseg: `{name}` of shape {tuple(x.shape)} contains {{count}} NaN value(s).",
        count=jnp.sum(nans, dtype=jnp.int32),
    )


def check_counts(limbs: jax.Array, operation: str) -> None:
    """Under :func:`checked`: fail if a normal-form count reached ``2**48``.

    ``limbs`` holds counts in the layout of :mod:`jaxseg._counts` (trailing axis
    of three 16-bit limbs); the top limb stays below ``2**16`` exactly while the
    count is below ``2**48``, the documented limit of exactness.
    """
    if not enabled():
        return
    top = limbs[..., 2]
    over = top >= jnp.uint32(1 << 16)
    checkify.check(
        ~jnp.any(over),
        f"jaxseg: a count reached 2**48 in `{operation}` ({{count}} cell(s)); counts are "
        "guaranteed exact only below 2**48 per cell. Read the counts out (`to_numpy`) "
        "and restart from `empty` before that.",
        count=jnp.sum(over, dtype=jnp.int32),
    )


def check_psum_size(size: Any, limit: int) -> None:
    """Fail if a ``psum`` sums more than ``limit`` members.

    A static size (the usual case: ``lax.psum(1, axis_name)`` is a Python int)
    raises ``ValueError`` at trace time, checked mode or not; a traced size is
    checked under :func:`checked` only.
    """
    message = (
        "jaxseg: `psum` over {size} members; counts are exact under one `psum` of at most "
        f"{limit} members. Sum in stages (e.g. `psum` within hosts, then across) or "
        "gather the states and call `reduce`."
    )
    if isinstance(size, int):
        if size > limit:
            raise ValueError(message.format(size=size))
        return
    if enabled():
        checkify.check(size <= limit, message, size=size)


def checked(fn: F) -> F:
    """Run ``fn`` with value checks: bad labels and NaN logits raise instead of counting.

    Returns a function with the signature of ``fn`` that traces ``fn`` under
    :func:`jax.experimental.checkify.checkify` while jaxseg's value checks are
    switched on, runs it, and raises if a check failed:

    * an integer label that is neither in ``ignore_index`` nor masked out by
      ``where`` lies outside ``[0, C)`` (the message gives the count and the
      range of the offending values);
    * logits or probabilities passed to jaxseg contain NaN;
    * ``merge`` / ``+`` / ``reduce`` / ``psum`` of count states produce a count of
      ``2**48`` or more (the documented limit of exactness), or a ``psum`` runs
      over more than 65,536 members.

    ``fn`` may be jitted or call ``jax.jit``, ``vmap``, ``scan`` inside; pass a
    jitted function for speed. Without :func:`checked` no check is traced at
    all, so ordinary (jitted) calls pay nothing.

    Args:
      fn: any function that calls jaxseg.

    Returns:
      The checked function; it raises ``jax.experimental.checkify.JaxRuntimeError``
      (a ``ValueError``) on the first failed check.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxseg
      >>> @jaxseg.checked
      ... @jax.jit
      ... def update(logits, labels):
      ...     return jaxseg.ConfusionMatrix.from_logits(logits, labels, ignore_index=255)
      >>> logits = jnp.zeros((4, 3))
      >>> update(logits, jnp.array([0, 0, 2, 255])).to_numpy()
      array([[2, 0, 0],
             [0, 0, 0],
             [1, 0, 0]])
      >>> try:
      ...     update(logits, jnp.array([0, 7, 9, 255]))
      ... except ValueError as e:
      ...     print(str(e).split(";")[1])
       their values range over [7, 9]. Pass them in `ignore_index` or mask them with `where`. ...

    References:
      JAX documentation, "The checkify transformation".
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _CHECKING(True):
            err, out = checkify.checkify(fn, errors=checkify.user_checks)(*args, **kwargs)
        err.throw()
        return out

    return wrapper  # type: ignore[return-value]
