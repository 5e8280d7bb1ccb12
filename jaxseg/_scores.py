"""Score functions: pure functions of per-class statistics.

Every score takes a statistics state (:class:`~jaxseg.ConfusionMatrix`,
:class:`~jaxseg.BinaryStats`, :class:`~jaxseg.SoftStats` or
:class:`~jaxseg.BoundaryStats`) and works on its per-class ``tp, fp, fn, tn``
through one chain (:mod:`jaxseg._classwise`): per-class ratio, then class
average. A batched (vmapped) state gives batched scores.

Shared rules:

* A class is *empty* when ``tp + fp + fn == 0`` (for soft statistics: when its
  labelled mass ``tp + fn`` is negligible, since a softmax never predicts
  exactly zero). Its per-class score is ``empty`` (default NaN) and, when
  ``empty`` is NaN, it is left out of the ``"macro"`` and ``"weighted"``
  averages; with a number it counts as that number. With ``smooth > 0`` no
  class is empty: the formula scores every class.
* A zero denominator for a class that is not empty (e.g. precision of a class
  never predicted) scores 0, as scikit-learn's ``zero_division=0``.
* Classes whose id is in the state's ``ignore_index`` are reported as NaN and
  left out of every average; ``include_background=False`` does the same for
  class 0 while its pixels still count (they remain false positives and false
  negatives of the other classes, unlike ``ignore_index=0``).
* ``average``: ``None`` per class ``[..., C]``; ``"micro"`` pools ``tp, fp, fn, tn``
  over counted classes before the ratio; ``"macro"`` is the mean over counted
  classes; ``"weighted"`` weighs classes by label support ``tp + fn``.
  ``class_weights`` multiply the weight of each class in every average.

All divisions are guarded (double ``where``), so scores are safe under ``grad``.

Statistics whose arrays are NumPy arrays (the command line's exact host counts,
:class:`jaxseg._classwise.HostStats`) are scored by the same functions on the
host in float64 and give NumPy values; JAX statistics give JAX arrays.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxseg import _classwise as cw_
from jaxseg import _validation as v
from jaxseg._lazy import jax, jnp

if TYPE_CHECKING:
    import jax

    from jaxseg._state import Statistics as Stats
else:
    Stats = Any  # jaxseg._state.Statistics (not imported: host scoring never imports JAX)
Terms = Callable[..., tuple[Any, Any]]


# -- ratio terms: (numerator, denominator) of each score ---------------------------


def iou_terms(tp, fp, fn, tn=None):
    """IoU (Jaccard) numerator and denominator: ``tp / (tp + fp + fn)``."""
    return tp, tp + fp + fn


def dice_terms(tp, fp, fn, tn=None):
    """Dice (F1) numerator and denominator: ``2 tp / (2 tp + fp + fn)``."""
    return 2 * tp, 2 * tp + fp + fn


def fbeta_terms(tp, fp, fn, tn=None, *, beta=1.0):
    """F-beta: ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)``."""
    b2 = beta * beta
    return (1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp


def tversky_terms(tp, fp, fn, tn=None, *, alpha=0.5, beta=0.5):
    """Tversky index: ``tp / (tp + alpha fp + beta fn)``."""
    return tp, tp + alpha * fp + beta * fn


def precision_terms(tp, fp, fn, tn=None):
    return tp, tp + fp


def recall_terms(tp, fp, fn, tn=None):
    return tp, tp + fn


def specificity_terms(tp, fp, fn, tn):
    return tn, tn + fp


def npv_terms(tp, fp, fn, tn):
    return tn, tn + fn


# -- the chain ----------------------------------------------------------------------


def _stats_of(stats: Stats) -> tuple[Any, Any, Any, Any, np.ndarray, Any]:
    """``tp, fp, fn, tn``, the counted-class mask and the array module to score with."""
    for name in ("tp", "fp", "fn", "tn", "counted_classes"):
        if not hasattr(stats, name):
            raise TypeError(
                "scores take statistics with per-class `tp`, `fp`, `fn`, `tn` and "
                "`counted_classes` (the jaxseg Statistics protocol: ConfusionMatrix, "
                f"BinaryStats, SoftStats, BoundaryStats); got {type(stats).__name__}."
            )
    # the exact count states derive all four from their limbs in one compiled call
    # (`_CountAlgebra._statistics`); reading the properties one by one would do it 4x
    four = getattr(stats, "_statistics", None)
    tp, fp, fn, tn = four() if four is not None else (stats.tp, stats.fp, stats.fn, stats.tn)
    xp = cw_.array_module(tp, fp, fn, tn)
    return tp, fp, fn, tn, np.asarray(stats.counted_classes), xp


def _class_weights(class_weights: Any, num_classes: int, xp: Any) -> Any:
    """Checked ``class_weights`` in the array module of the statistics (float64 on the host)."""
    cw = v.check_class_weights(class_weights, num_classes)
    if cw is not None and xp is np:
        cw = np.asarray(cw, np.float64)
    return cw


def _setup(stats: Stats, class_weights: Any, include_background: bool) -> tuple[Any, ...]:
    """``tp, fp, fn, tn``, checked class weights, the included-class mask, array module."""
    tp, fp, fn, tn, counted, xp = _stats_of(stats)
    cw = _class_weights(class_weights, tp.shape[-1], xp)
    include = cw_.include_mask(
        counted, tp.shape, class_weights=cw, include_background=include_background
    )
    return tp, fp, fn, tn, cw, include, xp


def _check_empty(empty: Any) -> float:
    if isinstance(empty, bool) or not isinstance(empty, int | float):
        raise TypeError(f"`empty` must be a number or NaN; got {empty!r}.")
    return float(empty)


def _reduce(
    stats: Stats,
    terms: Terms,
    average: str | None,
    empty: float,
    smooth: Any,
    class_weights: Any,
    include_background: bool,
) -> jax.Array:
    """The chain: statistics -> per-class ratio (smooth, empty rule) -> class average."""
    average = v.check_average(average)
    empty = _check_empty(empty)
    smooth = v.check_nonnegative("smooth", smooth)
    tp, fp, fn, tn, cw, include, _ = _setup(stats, class_weights, include_background)
    soft = cw_.is_soft(stats)
    if average == "micro":
        return cw_.micro(
            (tp, fp, fn, tn), include, cw, terms, soft=soft, smooth=smooth, empty=empty
        )
    num, den = terms(tp, fp, fn, tn)
    is_empty = cw_.empty_classes(tp, fp, fn, soft=soft)
    scores, left_out = cw_.class_scores(num, den, is_empty, smooth=smooth, empty=empty)
    return cw_.class_average(
        scores, include & ~left_out, average=average, class_weights=cw, support=tp + fn
    )


# -- public scores --------------------------------------------------------------
#
# Every ratio score takes the same keywords:
#   average            None | "micro" | "macro" (default) | "weighted"
#   empty              value of an empty class (NaN: left out of averages)
#   smooth             s >= 0 added to numerator and denominator
#   class_weights      [C] weights of the class average (a zero weight removes a class)
#   include_background False leaves class 0 out of averages, keeping its pixels


def iou(
    stats: Stats,
    *,
    average: str | None = "macro",
    empty: float = math.nan,
    smooth: float = 0.0,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Intersection over union (Jaccard index): ``IoU = (tp + s) / (tp + fp + fn + s)``.

    ``average="macro"`` on a dataset-level state is the usual mIoU; on a
    vmapped (per-image) state it gives one mIoU per image.

    Args:
      stats: a statistics state.
      average: ``None`` (per class, ``[..., C]``), ``"micro"``, ``"macro"``
        (default) or ``"weighted"`` (by label support ``tp + fn``).
      empty: value of an empty class (``tp + fp + fn == 0``); NaN (default)
        leaves it out of the averages. Unused when ``smooth > 0``.
      smooth: ``s >= 0`` added to numerator and denominator (default 0).
      class_weights: ``[C]`` weights of the class average (a zero weight
        removes a class).
      include_background: ``False`` leaves class 0 out of the averages (NaN
        per class) while its pixels still count; ``ignore_index=0`` would
        remove the pixels instead.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]`` (the state's batch shape).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 2]), jnp.array([0, 1, 2, 2]), num_classes=4)
      >>> jaxseg.iou(cm, average=None)  # class 3 is empty
      Array([1. , 0.5, 0.5, nan], dtype=float32)
      >>> jaxseg.iou(cm)
      Array(0.6666667, dtype=float32)
      >>> jaxseg.iou(cm, include_background=False)
      Array(0.5, dtype=float32)

    References:
      Jaccard, "The distribution of the flora in the alpine zone", 1912;
      Everingham et al., "The PASCAL Visual Object Classes Challenge", IJCV 2010.
    """
    return _reduce(stats, iou_terms, average, empty, smooth, class_weights, include_background)


def dice(
    stats: Stats,
    *,
    average: str | None = "macro",
    empty: float = math.nan,
    smooth: float = 0.0,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Dice coefficient, which equals the F1 score: ``(2 tp + s) / (2 tp + fp + fn + s)``.

    Dice = F1 = Tversky(0.5, 0.5), and per class ``Dice = 2 IoU / (1 + IoU)``
    (at ``s = 0``). On soft statistics, ``1 - dice(...)`` is
    :func:`jaxseg.dice_loss` with the same ``smooth`` and ``class_weights``.

    Args:
      stats: a statistics state.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN: left out of averages).
      smooth: ``s >= 0`` added to numerator and denominator.
      class_weights: ``[C]`` weights of the class average.
      include_background: ``False`` leaves class 0 out of the averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 2]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.dice(cm, average=None)
      Array([1.       , 0.6666667, 0.6666667], dtype=float32)

    References:
      Dice, "Measures of the amount of ecologic association between species", 1945;
      Sørensen, 1948.
    """
    return _reduce(stats, dice_terms, average, empty, smooth, class_weights, include_background)


def fbeta(
    stats: Stats,
    *,
    beta: float = 1.0,
    average: str | None = "macro",
    empty: float = math.nan,
    smooth: float = 0.0,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """F-beta score: ``((1 + b²) tp + s) / ((1 + b²) tp + b² fn + fp + s)``.

    ``beta > 1`` favours recall, ``beta < 1`` precision; ``beta = 1`` is Dice / F1.

    Args:
      stats: a statistics state.
      beta: non-negative weight of recall.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).
      smooth: ``s >= 0`` added to numerator and denominator.
      class_weights: ``[C]`` weights of the class average.
      include_background: ``False`` leaves class 0 out of the averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([1, 1, 1, 0]), jnp.array([1, 0, 0, 1]), num_classes=2)
      >>> jaxseg.fbeta(cm, beta=2.0, average=None)
      Array([0.        , 0.45454547], dtype=float32)

    References:
      van Rijsbergen, "Information Retrieval", 1979.
    """
    beta = v.check_nonnegative("beta", beta)
    terms = functools.partial(fbeta_terms, beta=beta)
    return _reduce(stats, terms, average, empty, smooth, class_weights, include_background)


def tversky(
    stats: Stats,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    average: str | None = "macro",
    empty: float = math.nan,
    smooth: float = 0.0,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Tversky index: ``(tp + s) / (tp + alpha fp + beta fn + s)``.

    ``alpha = beta = 0.5`` is Dice, ``alpha = beta = 1`` is IoU (at ``s = 0``).

    Args:
      stats: a statistics state.
      alpha: weight of false positives (>= 0).
      beta: weight of false negatives (>= 0).
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).
      smooth: ``s >= 0`` added to numerator and denominator.
      class_weights: ``[C]`` weights of the class average.
      include_background: ``False`` leaves class 0 out of the averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 2]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.tversky(cm, alpha=1.0, beta=1.0, average=None)  # = IoU
      Array([1. , 0.5, 0.5], dtype=float32)

    References:
      Tversky, "Features of similarity", Psychological Review 1977;
      Salehi et al., "Tversky loss function for image segmentation", 2017.
    """
    alpha = v.check_nonnegative("alpha", alpha)
    beta = v.check_nonnegative("beta", beta)
    terms = functools.partial(tversky_terms, alpha=alpha, beta=beta)
    return _reduce(stats, terms, average, empty, smooth, class_weights, include_background)


def precision(
    stats: Stats,
    *,
    average: str | None = "macro",
    empty: float = math.nan,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Precision (positive predictive value): ``tp / (tp + fp)``.

    A class that was never predicted but occurs in the labels scores 0.

    Args:
      stats: a statistics state.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).
      class_weights: ``[C]`` weights of the class average.
      include_background: ``False`` leaves class 0 out of the averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.precision(cm, average=None)
      Array([1.        , 0.33333334, 0.        ], dtype=float32)
    """
    return _reduce(stats, precision_terms, average, empty, 0.0, class_weights, include_background)


def recall(
    stats: Stats,
    *,
    average: str | None = "macro",
    empty: float = math.nan,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Recall (sensitivity, true positive rate, per-class accuracy): ``tp / (tp + fn)``.

    Args:
      stats: a statistics state.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).
      class_weights: ``[C]`` weights of the class average.
      include_background: ``False`` leaves class 0 out of the averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.recall(cm, average=None)
      Array([1., 1., 0.], dtype=float32)
    """
    return _reduce(stats, recall_terms, average, empty, 0.0, class_weights, include_background)


def specificity(
    stats: Stats,
    *,
    average: str | None = "macro",
    empty: float = math.nan,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Specificity (true negative rate), one class against the rest: ``tn / (tn + fp)``.

    Equals scikit-learn's ``recall_score(y_true == c, y_pred == c, pos_label=0)``
    for each class ``c``.

    Args:
      stats: a statistics state.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).
      class_weights: ``[C]`` weights of the class average.
      include_background: ``False`` leaves class 0 out of the averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.specificity(cm, average=None)
      Array([1.       , 0.3333333, 1.       ], dtype=float32)
    """
    return _reduce(stats, specificity_terms, average, empty, 0.0, class_weights, include_background)


def negative_predictive_value(
    stats: Stats,
    *,
    average: str | None = "macro",
    empty: float = math.nan,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Negative predictive value, one class against the rest: ``tn / (tn + fn)``.

    Equals scikit-learn's ``precision_score(y_true == c, y_pred == c, pos_label=0)``.

    Args:
      stats: a statistics state.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).
      class_weights: ``[C]`` weights of the class average.
      include_background: ``False`` leaves class 0 out of the averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.negative_predictive_value(cm, average=None)
      Array([1. , 1. , 0.5], dtype=float32)
    """
    return _reduce(stats, npv_terms, average, empty, 0.0, class_weights, include_background)


def balanced_accuracy(
    stats: Stats,
    *,
    average: str | None = "macro",
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Balanced accuracy: the mean recall over the classes that occur in the labels.

    For exclusive classes (confusion matrix, softmax statistics) it is
    ``mean_c tp_c / (tp_c + fn_c)`` over classes with label support, equal to
    scikit-learn's ``balanced_accuracy_score``; a class that only occurs in the
    predictions is left out (its recall is undefined), unlike
    :func:`mean_accuracy`, where it scores 0. For independent channels (binary /
    multilabel) it is per channel ``(recall + specificity) / 2``, the binary
    ``balanced_accuracy_score`` of that channel; a channel without positive
    labels has no recall and scores its specificity alone (and one without
    negatives its recall), as scikit-learn.

    Args:
      stats: a statistics state.
      average: ``None`` (per class), ``"macro"`` (default) or ``"weighted"``.
      class_weights: ``[C]`` weights of the class average.
      include_background: ``False`` leaves class 0 out of the averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.balanced_accuracy(cm)
      Array(0.6666667, dtype=float32)

    References:
      Brodersen et al., "The balanced accuracy and its posterior distribution", ICPR 2010.
    """
    average = v.check_average(average)
    if average == "micro":
        raise ValueError('`average` of balanced_accuracy must be None, "macro" or "weighted".')
    tp, fp, fn, tn, cw, include, xp = _setup(stats, class_weights, include_background)
    floor = cw_.MIN_MASS if cw_.is_soft(stats) else 0
    has_positives = (tp + fn) > floor
    per_class = cw_.ratio(tp, tp + fn, skip=~has_positives)
    defined = has_positives
    if not getattr(stats, "exclusive", True):
        # the mean of the defined rates: a channel without positive labels has no
        # recall, and scores its specificity alone (scikit-learn drops the NaN recall)
        has_negatives = (tn + fp) > floor
        specificity = cw_.ratio(tn, tn + fp, skip=~has_negatives)
        rates = xp.where(has_positives, 1.0, 0.0) + xp.where(has_negatives, 1.0, 0.0)
        per_class = cw_.ratio(per_class + specificity, rates)
        defined = has_positives | has_negatives
    return cw_.class_average(
        per_class, include & defined, average=average, class_weights=cw, support=tp + fn
    )


def _power_of_two_scale(total: Any, xp: Any) -> Any:
    """``2**-e`` with ``total * 2**-e`` in ``[0.5, 1)`` (1 for a zero total).

    MCC and kappa are scale-free; scaling every count by an exact power of two
    keeps products of dataset-size counts far from float32 overflow while
    preserving the equalities (``t == s``, ``tp == p``) that make the
    degenerate cases exactly zero. (Dividing by the total would not: XLA
    multiplies by the reciprocal, and ``47 * (1 / 47)`` is not 1 in float32.)
    """
    _, e = xp.frexp(total)
    return xp.ldexp(xp.ones_like(total), -e)


def _two_by_two(tp, fp, fn, tn, xp) -> tuple[Any, Any, Any, Any]:
    """One-vs-rest numerators and denominators of MCC and Cohen's kappa."""
    scale = _power_of_two_scale(tp + fp + fn + tn, xp)
    tp, fp, fn, tn = (x * scale for x in (tp, fp, fn, tn))
    cross = tp * tn - fp * fn
    mcc_den = xp.sqrt((tp + fp) * (tp + fn)) * xp.sqrt((tn + fp) * (tn + fn))
    kappa_den = (tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)
    return cross, mcc_den, 2 * cross, kappa_den


def _one_vs_rest(which: str, tp, fp, fn, tn, xp) -> tuple[Any, Any]:
    """Per-class (or pooled) one-vs-rest score and whether it is defined.

    MCC is 0 when its denominator is 0 (scikit-learn's ``matthews_corrcoef``);
    kappa is NaN when its denominator is 0 (``cohen_kappa_score``: a class that
    fills every pixel, predicted everywhere) and then left out of averages.
    """
    cross, mcc_den, kappa_num, kappa_den = _two_by_two(tp, fp, fn, tn, xp)
    if which == "mcc":
        return cw_.ratio(cross, mcc_den), xp.ones_like(cross, dtype=bool)
    defined = kappa_den > 0
    return xp.where(defined, cw_.ratio(kappa_num, kappa_den), np.nan), defined


def _multiclass_agreement(which: str, tp, fp, fn, xp) -> Any:
    """Gorodkin's multiclass MCC or Cohen's kappa of the whole matrix.

    With label support ``t_k``, predictions ``p_k`` (``k`` over every class
    column and one column of void predictions, whose ``t`` is 0),
    ``s = sum_k t_k`` and ``c = sum_k tp_k``, written without cancellation::

        cov = c s - sum_k t_k p_k = sum_k t_k (c - p_k)
        s² - sum_k t_k²  = sum_k t_k (s - t_k)       (likewise for p)
        s² - sum_k t_k p_k = sum_k t_k (s - p_k)     (kappa's denominator)

    so that one label class, or one predicted class, gives exactly 0 (MCC) and
    a one-class perfect prediction gives NaN (kappa), as scikit-learn.
    """
    t, p = tp + fn, tp + fp  # fn holds the void predictions of each label class
    s = xp.sum(t, axis=-1)
    void = xp.maximum(s - xp.sum(p, axis=-1), 0.0)  # predictions outside every class
    scale = _power_of_two_scale(s, xp)
    t, p, tp = (x * scale[..., None] for x in (t, p, tp))
    s, void = s * scale, void * scale
    c = xp.sum(tp, axis=-1)
    cov = xp.sum(t * (c[..., None] - p), axis=-1)
    var_t = xp.sum(t * (s[..., None] - t), axis=-1)
    var_p = xp.sum(p * (s[..., None] - p), axis=-1) + void * (s - void)
    one_sided = (var_t <= 0) | (var_p <= 0)  # one label class or one predicted class
    if which == "mcc":
        ok = ~one_sided
        den = xp.sqrt(xp.where(ok, var_t, 1.0)) * xp.sqrt(xp.where(ok, var_p, 1.0))
        return xp.where(ok, cov / den, 0.0)
    den = xp.sum(t * (s[..., None] - p), axis=-1)  # s² (1 - p_e)
    ok = den > 0
    kappa = xp.where(ok & ~one_sided, cov / xp.where(ok, den, 1.0), 0.0)
    return xp.where(ok, kappa, np.nan)


CORRELATION_AVERAGES = ("multiclass", None, "micro", "macro", "weighted")


def _agreement(
    stats: Stats,
    which: str,
    average: Any,
    class_weights: Any,
    include_background: bool,
) -> Any:
    """Shared body of :func:`matthews_corrcoef` and :func:`cohen_kappa`."""
    v.check_choice("average", average, CORRELATION_AVERAGES)
    tp, fp, fn, tn, cw, include, xp = _setup(stats, class_weights, include_background)
    if average == "multiclass":
        if not getattr(stats, "exclusive", True):
            raise ValueError(
                '`average="multiclass"` needs exclusive classes (a ConfusionMatrix or softmax '
                'statistics); use None, "micro" or "macro" for independent channels.'
            )
        if cw is not None or not v.check_bool("include_background", include_background):
            raise ValueError(
                '`average="multiclass"` is a statistic of the whole matrix; `class_weights` '
                "and `include_background=False` apply to the one-vs-rest averages only."
            )
        return _multiclass_agreement(which, tp, fp, fn, xp)
    if average == "micro":
        w = xp.ones(tp.shape[-1:], tp.dtype) if cw is None else cw
        w = xp.where(include, xp.broadcast_to(w, tp.shape), 0.0)
        pooled = (xp.sum(w * x, axis=-1) for x in (tp, fp, fn, tn))
        return _one_vs_rest(which, *pooled, xp)[0]
    per_class, defined = _one_vs_rest(which, tp, fp, fn, tn, xp)
    empty = cw_.empty_classes(tp, fp, fn, soft=cw_.is_soft(stats))
    return cw_.class_average(
        per_class, include & ~empty & defined, average=average, class_weights=cw, support=tp + fn
    )


def matthews_corrcoef(
    stats: Stats,
    *,
    average: str | None = "multiclass",
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Matthews correlation coefficient.

    ``average="multiclass"`` (default) is Gorodkin's multiclass MCC of the whole
    matrix, with ``t_k`` the label support, ``p_k`` the predictions of class
    ``k``, ``c = sum_k tp_k`` and ``s = sum_k t_k``::

        MCC = (c s - sum_k p_k t_k) / sqrt((s² - sum_k p_k²) (s² - sum_k t_k²))

    equal to scikit-learn's ``matthews_corrcoef``: 0 when undefined, which is
    whenever the labels or the predictions hold a single class (a
    background-only image predicted perfectly scores 0, not 1). The sums run
    over every class column, ignored class ids included (their predictions at
    valid pixels are a column of their own), plus one column of void
    predictions (ids outside ``[0, C)``), as scikit-learn sees a single void id
    such as 255; several distinct void ids are pooled into that one column.
    ``None``, ``"macro"``, ``"weighted"`` and ``"micro"`` use the one-vs-rest MCC
    of each class, ``(tp tn - fp fn) / sqrt((tp + fp)(tp + fn)(tn + fp)(tn + fn))``
    (the only form for independent channels), 0 when undefined; empty classes are
    left out.

    Args:
      stats: a statistics state.
      average: ``"multiclass"`` (default; exclusive classes only), ``None``,
        ``"micro"``, ``"macro"`` or ``"weighted"``.
      class_weights: ``[C]`` weights of the one-vs-rest class average.
      include_background: ``False`` leaves class 0 out of the one-vs-rest averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.matthews_corrcoef(cm)
      Array(0.5163978, dtype=float32)

    References:
      Matthews, "Comparison of the predicted and observed secondary structure of
      T4 phage lysozyme", 1975; Gorodkin, "Comparing two K-category assignments by a
      K-category correlation coefficient", 2004.
    """
    return _agreement(stats, "mcc", average, class_weights, include_background)


def cohen_kappa(
    stats: Stats,
    *,
    average: str | None = "multiclass",
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Cohen's kappa: agreement beyond chance between predictions and labels.

    With observed agreement ``p_o = sum_k tp_k / s`` and chance agreement
    ``p_e = sum_k p_k t_k / s²`` (notation of :func:`matthews_corrcoef`)::

        kappa = (p_o - p_e) / (1 - p_e)

    ``average="multiclass"`` (default) is the unweighted kappa of the whole
    matrix, equal to scikit-learn's ``cohen_kappa_score``: NaN when ``p_e = 1``
    (one class fills both labels and predictions, e.g. a background-only image
    predicted perfectly), 0 when only the labels or only the predictions hold a
    single class. The other averages use the one-vs-rest kappa of each class,
    ``2 (tp tn - fp fn) / ((tp + fp)(fp + tn) + (tp + fn)(fn + tn))``, NaN when
    its denominator is 0 (a class that fills every pixel and is predicted
    everywhere, as scikit-learn); NaN classes are left out of the averages.

    Args:
      stats: a statistics state.
      average: ``"multiclass"`` (default; exclusive classes only), ``None``,
        ``"micro"``, ``"macro"`` or ``"weighted"``.
      class_weights: ``[C]`` weights of the one-vs-rest class average.
      include_background: ``False`` leaves class 0 out of the one-vs-rest averages.

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.cohen_kappa(cm)
      Array(0.33333334, dtype=float32)

    References:
      Cohen, "A coefficient of agreement for nominal scales", 1960.
    """
    return _agreement(stats, "kappa", average, class_weights, include_background)


def pixel_accuracy(stats: Stats, *, include_background: bool = True) -> jax.Array:
    """Fraction of valid pixels classified correctly.

    For exclusive classes (confusion matrix, softmax statistics):
    ``sum_c tp_c / sum_c (tp_c + fn_c)``, which equals micro recall. For
    independent channels (binary / multilabel):
    ``sum_c (tp_c + tn_c) / sum_c (tp_c + fp_c + fn_c + tn_c)``.
    NaN when there is no valid pixel. ``include_background=False`` sums over
    the other classes only (the accuracy on foreground-labelled pixels).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.pixel_accuracy(cm)
      Array(0.5, dtype=float32)
    """
    tp, fp, fn, tn, counted, xp = _stats_of(stats)
    include = cw_.include_mask(counted, tp.shape, include_background=include_background)

    def pool(x):
        return xp.sum(xp.where(include, x, 0.0), axis=-1)

    if getattr(stats, "exclusive", True):
        num, den = pool(tp), pool(tp + fn)
    else:
        num, den = pool(tp + tn), pool(tp + fp + fn + tn)
    ok = den > 0
    return xp.where(ok, num / xp.where(ok, den, 1.0), np.nan)


def mean_accuracy(
    stats: Stats, *, empty: float = math.nan, include_background: bool = True
) -> jax.Array:
    """Mean per-class accuracy: the macro average of recall ``tp / (tp + fn)``.

    A class predicted but absent from the labels scores 0 here (the empty rule
    of the scores); :func:`balanced_accuracy` leaves it out instead.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.mean_accuracy(cm)
      Array(0.6666667, dtype=float32)
    """
    return recall(stats, average="macro", empty=empty, include_background=include_background)


def frequency_weighted_iou(
    stats: Stats, *, empty: float = math.nan, include_background: bool = True
) -> jax.Array:
    """Frequency-weighted IoU: ``sum_c f_c IoU_c`` with ``f_c`` the label frequency.

    ``f_c = (tp_c + fn_c) / sum_k (tp_k + fn_k)``; identical to
    ``iou(stats, average="weighted")``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.frequency_weighted_iou(cm)
      Array(0.33333334, dtype=float32)

    References:
      Long et al., "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015.
    """
    return iou(stats, average="weighted", empty=empty, include_background=include_background)


GD_WEIGHTINGS = ("square", "simple", "uniform")


def sudre_weights(
    support: jax.Array, include: jax.Array, weighting: str, *, soft: bool
) -> jax.Array:
    """Generalized Dice class weights from label support ``[..., C]``.

    ``"square"``: ``1 / T_c²``; ``"simple"``: ``1 / T_c``; ``"uniform"``: 1,
    with ``T_c`` the (soft) label volume. A class absent from the labels
    (``T_c = 0``, or a negligible soft volume) gets the largest weight of the
    present classes (MONAI's rule), or 1 if no class has labels. Classes not
    included get 0.
    """
    v.check_choice("weighting", weighting, GD_WEIGHTINGS)
    xp = cw_.array_module(support, include)
    present = include & (support > (cw_.MIN_MASS if soft else 0))
    safe = xp.where(present, support, 1.0)
    if weighting == "square":
        w = 1.0 / (safe * safe)
    elif weighting == "simple":
        w = 1.0 / safe
    else:
        w = xp.ones_like(support)
    w = xp.where(present, w, 0.0)
    fill = xp.max(w, axis=-1, keepdims=True)
    fill = xp.where(fill > 0, fill, 1.0)
    return xp.where(include, xp.where(present, w, fill), 0.0)


def generalized_dice(
    stats: Stats,
    *,
    weighting: str = "square",
    empty: float = math.nan,
    smooth: float = 0.0,
    class_weights: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Generalized Dice score (Sudre et al. 2017): Dice pooled with class weights.

    ``GD = (2 sum_c w_c tp_c + s) / (sum_c w_c (2 tp_c + fp_c + fn_c) + s)`` with
    ``w_c = cw_c / T_c²`` (``weighting="square"``), ``cw_c / T_c`` (``"simple"``)
    or ``cw_c`` (``"uniform"``), ``T_c = tp_c + fn_c`` the label volume and
    ``cw`` the ``class_weights``: the ``"micro"`` average of Dice with Sudre's
    weights. A class absent from the labels takes the largest weight of the
    present classes (as MONAI and torchmetrics do), so it still costs its false
    positives. ``empty`` is returned when every class is empty.

    Args:
      stats: a statistics state.
      weighting: ``"square"`` (default), ``"simple"`` or ``"uniform"``.
      empty: value when every class is empty (default NaN).
      smooth: ``s >= 0`` added to numerator and denominator.
      class_weights: ``[C]`` factors multiplied into Sudre's weights.
      include_background: ``False`` leaves class 0 out.

    Returns:
      float ``[...]``: one score per (batched) state.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 0, 1, 1]), jnp.array([0, 0, 0, 1]), num_classes=2)
      >>> jaxseg.generalized_dice(cm)
      Array(0.6875, dtype=float32)

    References:
      Sudre et al., "Generalised Dice overlap as a deep learning loss function for
      highly unbalanced segmentations", DLMIA 2017.
    """
    empty = _check_empty(empty)
    smooth = v.check_nonnegative("smooth", smooth)
    tp, fp, fn, tn, cw, include, xp = _setup(stats, class_weights, include_background)
    soft = cw_.is_soft(stats)
    support = tp + fn
    if xp is not np:
        support = jax.lax.stop_gradient(support)
    w = sudre_weights(support, include, weighting, soft=soft)
    if cw is not None:
        w = w * xp.broadcast_to(cw, w.shape)
    return cw_.micro(
        (tp, fp, fn, tn), include, w, dice_terms, soft=soft, smooth=smooth, empty=empty
    )


WEIGHT_SCHEMES = ("inverse", "inverse_sqrt", "median", "enet")


def _label_support(state_or_counts: Any) -> tuple[Any, Any]:
    """Per-class label counts ``[C]`` and the array module to compute with.

    Concrete inputs (host NumPy counts of any width, a state outside ``jit``)
    are read exactly on the host as float64; traced ones stay on the device.
    """
    if hasattr(state_or_counts, "tp") and hasattr(state_or_counts, "fn"):
        if getattr(state_or_counts, "batch_shape", ()):
            raise ValueError(
                "`state_or_counts` must be a dataset-level state; call `.reduce()` first."
            )
        exact = getattr(state_or_counts, "label_counts", None)
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(state_or_counts))
        if exact is not None and not traced:
            return np.asarray(exact(), np.float64), np
        return (state_or_counts.tp + state_or_counts.fn).astype(jnp.float32), jnp
    if isinstance(state_or_counts, jax.core.Tracer):
        n, xp = state_or_counts, jnp
    elif isinstance(state_or_counts, jax.Array):
        n, xp = np.asarray(state_or_counts), np
    else:
        n, xp = np.asarray(state_or_counts), np
    if n.ndim != 1:
        raise ValueError(
            f"`state_or_counts` must be a state or counts of shape [C]; got shape {n.shape}."
        )
    if not (np.issubdtype(n.dtype, np.integer) or np.issubdtype(n.dtype, np.floating)):
        raise TypeError(f"`state_or_counts` must hold numbers; got dtype {n.dtype}.")
    if xp is np:
        if np.any(n < 0) or not np.all(np.isfinite(n)):
            raise ValueError("`state_or_counts` must be finite and non-negative.")
        return n.astype(np.float64), np
    return n.astype(jnp.float32), jnp


def class_weights_from_counts(
    state_or_counts: Any, *, scheme: str = "median", enet_c: float = 1.02
) -> jax.Array:
    """Class weights for weighted losses, from label counts over a whole dataset.

    Weights computed per batch swing wildly and are the usual reason a weighted
    cross-entropy collapses onto one class; accumulate a
    :class:`~jaxseg.ConfusionMatrix` (or label histogram) over the training
    set once and derive the weights from it. With ``n_c`` the label count of
    class ``c``, ``N = sum n_c``, ``p_c = n_c / N`` and ``K`` the number of
    classes present:

    * ``"inverse"``: ``w_c = N / (K n_c)`` (scikit-learn's "balanced"; the
      pixel-weighted mean weight is 1).
    * ``"inverse_sqrt"``: ``w_c ∝ 1 / sqrt(n_c)``, scaled so that the
      pixel-weighted mean weight is 1.
    * ``"median"``: median-frequency balancing, ``w_c = median(p) / p_c``
      (median over present classes; Eigen & Fergus 2015).
    * ``"enet"``: ``w_c = 1 / ln(enet_c + p_c)`` with ``enet_c = 1.02``
      (Paszke et al. 2016).

    Classes absent from the counts get weight 0 (they have no pixels to weigh).
    Host counts (NumPy ``int64`` above ``2**31``, as a ``np.bincount`` over a
    dataset gives, or a state outside ``jit``) are used exactly, in float64 on
    the host; only the weights are rounded to float32.

    Args:
      state_or_counts: a :class:`~jaxseg.ConfusionMatrix` / statistics state
        (label support ``tp + fn`` is used) or per-class counts ``[C]``.
      scheme: one of ``"inverse"``, ``"inverse_sqrt"``, ``"median"``, ``"enet"``.
      enet_c: the constant of the ``"enet"`` scheme (> 1).

    Returns:
      float32 ``[C]`` weights.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> jaxseg.class_weights_from_counts(jnp.array([600, 300, 100, 0]), scheme="inverse")
      Array([0.5555556, 1.1111112, 3.3333333, 0.       ], dtype=float32)
      >>> jaxseg.class_weights_from_counts(jnp.array([600, 300, 100]), scheme="median")
      Array([0.5, 1. , 3. ], dtype=float32)

    References:
      Eigen & Fergus, "Predicting depth, surface normals and semantic labels with a
      common multi-scale convolutional architecture", ICCV 2015;
      Paszke et al., "ENet: A deep neural network architecture for real-time
      semantic segmentation", 2016.
    """
    v.check_choice("scheme", scheme, WEIGHT_SCHEMES)
    if isinstance(enet_c, bool) or not isinstance(enet_c, int | float) or not enet_c > 1:
        raise ValueError(f"`enet_c` must be a number > 1; got {enet_c!r}.")
    n, xp = _label_support(state_or_counts)
    present = n > 0
    total = xp.sum(n)
    k = xp.sum(xp.where(present, 1.0, 0.0))
    safe = xp.where(present, n, 1.0)
    p = safe / xp.where(total > 0, total, 1.0)
    if scheme == "inverse":
        w = total / (xp.maximum(k, 1.0) * safe)
    elif scheme == "inverse_sqrt":
        raw = 1.0 / xp.sqrt(safe)
        norm = xp.sum(xp.where(present, raw * n, 0.0))
        w = raw * total / xp.where(norm > 0, norm, 1.0)
    elif scheme == "median":
        med = xp.nanmedian(xp.where(present, p, xp.nan)) if n.shape[0] else 0.0
        w = med / p
    else:
        w = 1.0 / xp.log1p((enet_c - 1.0) + p)  # log1p: ln(1.02 + p) loses digits in float32
    return jnp.asarray(xp.where(present, w, 0.0), jnp.float32)
