"""The one class-wise chain behind every ratio score and region loss.

Statistics → per-class ratio → class average:

1. :func:`empty_classes` decides which classes have nothing to score.
2. :func:`ratio` turns a per-class numerator and denominator into a score,
   ``(num + s) / (den + s)``, with every division guarded (double ``where``) so
   that neither the value nor the gradient can overflow, whatever the
   denominator.
3. :func:`class_average` combines per-class values with the include mask
   (counted classes, ``include_background``, non-zero ``class_weights``), the
   class weights and the ``average`` mode.

:mod:`jaxseg._scores` composes these into the public scores, and the region
losses (:mod:`jaxseg._losses`) apply a per-class transform (``1 - s``,
``-ln s``, ``(1 - s) ** gamma``) to the same per-class scores before the same
class average, so ``dice_loss == 1 - dice(SoftStats...)`` is an identity.

Empty classes. Hard counts (a confusion matrix, binary counts) call a class
*empty* when ``tp + fp + fn == 0``. Soft statistics (sums of probabilities)
call a class empty when its labelled mass ``tp + fn`` is negligible (at most
:data:`MIN_MASS`, a millionth of a pixel): a softmax never puts exactly zero
mass on a class, so "nothing predicted" never happens, and a class absent from
the labels would otherwise score exactly 0 whatever the prediction — a
constant in the loss with no gradient. With ``smooth > 0`` nothing is empty:
the formula gives every class a finite score.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import _validation as v

#: Labelled mass (in pixels) at or below which a class of soft statistics is absent.
MIN_MASS = 1e-6
#: Denominators at or below this are treated as zero: ``1 / d**2`` stays finite in float32.
DEN_FLOOR = 1e-12

AVERAGES = (None, "micro", "macro", "weighted")


def is_soft(stats: Any) -> bool:
    """Whether the statistics are float sums of probabilities (never exactly zero)."""
    return bool(getattr(stats, "soft", False))


def empty_classes(tp: jax.Array, fp: jax.Array, fn: jax.Array, *, soft: bool) -> jax.Array:
    """Boolean ``[..., C]``: classes with nothing to score (see the module docstring)."""
    if soft:
        return (tp + fn) <= MIN_MASS
    return (tp + fp + fn) == 0


def ratio(
    num: jax.Array,
    den: jax.Array,
    *,
    smooth: Any = 0.0,
    skip: jax.Array | None = None,
) -> jax.Array:
    """``(num + s) / (den + s)``, 0 where ``den + s <= DEN_FLOOR`` or ``skip``.

    Entries that are skipped or whose denominator is (nearly) zero are never
    divided, so their gradient is exactly zero rather than ``0 * inf``.
    """
    d = den + smooth
    ok = d > DEN_FLOOR
    if skip is not None:
        ok = ok & ~skip
    return jnp.where(ok, (num + smooth) / jnp.where(ok, d, 1.0), 0.0)


def include_mask(
    counted: Any,
    shape: tuple[int, ...],
    *,
    class_weights: jax.Array | None = None,
    include_background: bool = True,
) -> jax.Array:
    """Classes that enter class averages: counted (not ignored), not the background
    when ``include_background=False``, and with a non-zero class weight."""
    keep = np.array(counted, np.bool_)
    if not v.check_bool("include_background", include_background):
        keep[0] = False
    include = jnp.broadcast_to(jnp.asarray(keep), shape)
    if class_weights is not None:
        include = include & jnp.broadcast_to(class_weights != 0, shape)
    return include


def class_average(
    per_class: jax.Array,
    include: jax.Array,
    *,
    average: str | None,
    class_weights: jax.Array | None = None,
    support: jax.Array | None = None,
    none_value: float = jnp.nan,
) -> jax.Array:
    """Combine per-class values over the last axis.

    ``average=None`` returns ``per_class`` with NaN where not included;
    ``"macro"`` the ``class_weights``-weighted mean of the included classes;
    ``"weighted"`` the same with each weight multiplied by ``support``.
    Where no class is included the result is ``none_value``.
    (``"micro"`` pools statistics before the ratio: see :func:`micro_ratio`.)
    """
    if average is None:
        return jnp.where(include, per_class, jnp.nan)
    w = jnp.ones(per_class.shape[-1:], per_class.dtype) if class_weights is None else class_weights
    w = jnp.broadcast_to(w, per_class.shape)
    if average == "weighted":
        if support is None:
            raise ValueError('`average="weighted"` needs the label support of each class.')
        w = w * support
    w = jnp.where(include, w, 0.0)
    total = jnp.sum(w, axis=-1)
    value = jnp.sum(w * jnp.where(include, per_class, 0.0), axis=-1)
    ok = total > 0
    return jnp.where(ok, value / jnp.where(ok, total, 1.0), none_value)


def micro_ratio(
    num: jax.Array,
    den: jax.Array,
    include: jax.Array,
    *,
    class_weights: jax.Array | None = None,
    smooth: Any = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """Pool ``sum_c w_c num_c / sum_c w_c den_c`` over included classes.

    Returns ``(score, nothing)``: the pooled ratio (with ``smooth``) and whether
    the pooled denominator was (nearly) zero.
    """
    w = jnp.ones(num.shape[-1:], num.dtype) if class_weights is None else class_weights
    w = jnp.where(include, jnp.broadcast_to(w, num.shape), 0.0)
    pooled_num = jnp.sum(w * num, axis=-1)
    pooled_den = jnp.sum(w * den, axis=-1)
    return ratio(pooled_num, pooled_den, smooth=smooth), pooled_den + smooth <= DEN_FLOOR


def safe_power(x: jax.Array, gamma: Any) -> jax.Array:
    """``x ** gamma`` for ``x >= 0`` with a finite gradient at ``x = 0``."""
    if isinstance(gamma, int | float) and gamma == 1:
        return x
    if isinstance(gamma, int | float) and gamma == 0:
        return jnp.ones_like(x)
    pos = x > 0
    return jnp.where(pos, jnp.where(pos, x, 1.0) ** gamma, 0.0)
