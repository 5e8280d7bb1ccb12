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

Two array worlds. Every function here works on JAX arrays (the API: jit, vmap
and grad safe) and on NumPy arrays (host statistics such as the command line's
exact ``int64`` count tables, scored in float64 without importing JAX):
:func:`array_module` picks ``numpy`` when no input is a JAX array, so one
chain serves both and the command line cannot drift from the API.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxseg import _validation as v
from jaxseg._lazy import is_jax_array, jnp

if TYPE_CHECKING:
    import jax

#: Labelled mass (in pixels) at or below which a class of soft statistics is absent.
MIN_MASS = 1e-6
#: Denominators at or below this are treated as zero: ``1 / d**2`` stays finite in float32.
DEN_FLOOR = 1e-12


def array_module(*xs: Any) -> Any:
    """``numpy`` when no argument is a JAX array or tracer, else ``jax.numpy``."""
    return jnp if any(is_jax_array(x) for x in xs) else np


@dataclasses.dataclass(frozen=True)
class HostStats:
    """Per-class statistics as NumPy float64 arrays ``[..., C]`` (the Statistics protocol).

    Built from exact host counts; every score function accepts it and then
    computes on the host in float64, returning NumPy values.
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray
    counted_classes: np.ndarray
    exclusive: bool = True
    soft: bool = False

    @classmethod
    def from_table(cls, counts: Any, *, ignored: Any = ()) -> HostStats:
        """From an exact count table ``[..., C, C]`` or ``[..., C, C + 1]``.

        Rows are labels, columns predictions; an optional last column counts void
        predictions (ids outside ``[0, C)`` at valid pixels), which are false
        negatives of the label's class and false positives of none. Classes whose
        id is in ``ignored`` are not counted in averages.
        """
        counts = np.asarray(counts)
        if not np.issubdtype(counts.dtype, np.integer):
            raise TypeError(f"`counts` must hold integers; got dtype {counts.dtype}.")
        if counts.ndim < 2 or counts.shape[-1] - counts.shape[-2] not in (0, 1):
            raise ValueError(
                f"`counts` must have shape [..., C, C] or [..., C, C+1]; got {counts.shape}."
            )
        c = counts.shape[-2]
        counts = counts.astype(np.int64)
        tp = np.diagonal(counts[..., :c], axis1=-2, axis2=-1)
        support = counts.sum(axis=-1)  # void predictions included
        predicted = counts[..., :c].sum(axis=-2)
        total = support.sum(axis=-1, keepdims=True)
        fn, fp = support - tp, predicted - tp
        tn = total - tp - fp - fn
        counted = v.counted_mask(c, v.class_ids_in_range(tuple(ignored), c))
        return cls(*(x.astype(np.float64) for x in (tp, fp, fn, tn)), counted)

    @classmethod
    def from_class_counts(cls, counts: Any, *, ignored: Any = ()) -> HostStats:
        """From exact per-class counts ``[..., 4, C]`` (no ``C x C`` table).

        Rows are ``labels`` (support, void predictions included),
        ``predictions`` (at valid pixels), ``hits`` and ``void``, the layout of
        ``ClassCounts.counts_to_numpy()``: ``tp = hits``, ``fp = predictions -
        hits``, ``fn = labels - hits``, ``tn = N - tp - fp - fn`` with ``N`` the
        sum of the labels row. The statistics equal :meth:`from_table`'s on the
        table the counts summarise.
        """
        counts = np.asarray(counts)
        if not np.issubdtype(counts.dtype, np.integer):
            raise TypeError(f"`counts` must hold integers; got dtype {counts.dtype}.")
        if counts.ndim < 2 or counts.shape[-2] != 4:
            raise ValueError(f"`counts` must have shape [..., 4, C]; got {counts.shape}.")
        labels, predicted, tp = (counts[..., k, :].astype(np.int64) for k in range(3))
        fn, fp = labels - tp, predicted - tp
        tn = labels.sum(axis=-1, keepdims=True) - tp - fp - fn
        c = counts.shape[-1]
        counted = v.counted_mask(c, v.class_ids_in_range(tuple(ignored), c))
        return cls(*(x.astype(np.float64) for x in (tp, fp, fn, tn)), counted)


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
    xp = array_module(num, den, smooth)
    d = den + smooth
    ok = d > DEN_FLOOR
    if skip is not None:
        ok = ok & ~skip
    return xp.where(ok, (num + smooth) / xp.where(ok, d, 1.0), 0.0)


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
    xp = array_module(class_weights)
    include = xp.broadcast_to(xp.asarray(keep), shape)
    if class_weights is not None:
        include = include & xp.broadcast_to(class_weights != 0, shape)
    return include


def class_average(
    per_class: jax.Array,
    include: jax.Array,
    *,
    average: str | None,
    class_weights: jax.Array | None = None,
    support: jax.Array | None = None,
    none_value: float = math.nan,
) -> jax.Array:
    """Combine per-class values over the last axis.

    ``average=None`` returns ``per_class`` with NaN where not included;
    ``"macro"`` the ``class_weights``-weighted mean of the included classes;
    ``"weighted"`` the same with each weight multiplied by ``support``.
    Where no class is included the result is ``none_value``.
    (``"micro"`` pools statistics before the ratio: see :func:`micro`.)
    """
    xp = array_module(per_class, include, class_weights)
    if average is None:
        return xp.where(include, per_class, np.nan)
    w = xp.ones(per_class.shape[-1:], per_class.dtype) if class_weights is None else class_weights
    w = xp.broadcast_to(w, per_class.shape)
    if average == "weighted":
        if support is None:
            raise ValueError('`average="weighted"` needs the label support of each class.')
        w = w * support
    w = xp.where(include, w, 0.0)
    total = xp.sum(w, axis=-1)
    value = xp.sum(w * xp.where(include, per_class, 0.0), axis=-1)
    ok = total > 0
    return xp.where(ok, value / xp.where(ok, total, 1.0), none_value)


def class_scores(
    num: jax.Array,
    den: jax.Array,
    empty_mask: jax.Array,
    *,
    smooth: Any,
    empty: float,
) -> tuple[jax.Array, jax.Array]:
    """Per-class ``(num + s) / (den + s)`` with the empty rule.

    Returns ``(scores, left_out)``: empty classes score ``empty``; they are
    ``left_out`` of averages when ``empty`` is NaN. With ``smooth > 0`` no class
    is empty.
    """
    xp = array_module(num, den, smooth)
    if isinstance(smooth, int | float):
        if smooth > 0:
            empty_mask = xp.zeros_like(empty_mask)
    else:
        empty_mask = empty_mask & ~(smooth > 0)
    score = ratio(num, den, smooth=smooth, skip=empty_mask)
    score = xp.where(empty_mask, xp.asarray(empty, score.dtype), score)
    left_out = empty_mask if math.isnan(empty) else xp.zeros_like(empty_mask)
    return score, left_out


def micro(
    stats: tuple[jax.Array, ...],
    include: jax.Array,
    weights: jax.Array | None,
    terms: Callable[..., tuple[jax.Array, jax.Array]],
    *,
    soft: bool,
    smooth: Any,
    empty: float,
) -> jax.Array:
    """Pool ``sum_c w_c stat_c`` over included classes, then one ratio (micro average).

    Emptiness is decided on the unweighted pooled statistics, so that weights
    (Sudre's ``1 / T²`` can be tiny) never turn labelled mass into "nothing".
    """
    xp = array_module(*stats, include, weights)
    w = xp.ones(include.shape[-1:], stats[0].dtype) if weights is None else weights
    w = xp.where(include, xp.broadcast_to(w, include.shape), 0.0)
    ptp, pfp, pfn, ptn = (xp.sum(w * x, axis=-1) for x in stats)
    num, den = terms(ptp, pfp, pfn, ptn)
    tp, fp, fn = (xp.sum(xp.where(include, x, 0.0), axis=-1) for x in stats[:3])
    return class_scores(num, den, empty_classes(tp, fp, fn, soft=soft), smooth=smooth, empty=empty)[
        0
    ]


def safe_power(x: jax.Array, gamma: Any) -> jax.Array:
    """``x ** gamma`` for ``x >= 0`` with a finite gradient at ``x = 0``."""
    if isinstance(gamma, int | float) and gamma == 1:
        return x
    xp = array_module(x, gamma)
    if isinstance(gamma, int | float) and gamma == 0:
        return xp.ones_like(x)
    pos = x > 0
    return xp.where(pos, xp.where(pos, x, 1.0) ** gamma, 0.0)
