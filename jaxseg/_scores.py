"""Score functions: pure functions of per-class statistics.

Every score takes a statistics state (:class:`~jaxseg.ConfusionMatrix`,
:class:`~jaxseg.BinaryStats` or :class:`~jaxseg.SoftStats`) and works on its
per-class ``tp, fp, fn, tn``; a batched (vmapped) state gives batched scores.

Shared rules:

* A class is *empty* when ``tp + fp + fn == 0``. Its per-class score is
  ``empty`` (default NaN) and, when ``empty`` is NaN, it is left out of the
  ``"macro"`` and ``"weighted"`` averages; with a number it counts as that number.
* A zero denominator for a class that is not empty (e.g. precision of a class
  never predicted) scores 0, as scikit-learn's ``zero_division=0``.
* Classes whose id is in the state's ``ignore_index`` are reported as NaN and
  left out of every average.
* ``average``: ``None`` per class ``[..., C]``; ``"micro"`` pools ``tp, fp, fn, tn``
  over counted classes before the ratio; ``"macro"`` is the unweighted mean over
  counted classes; ``"weighted"`` weighs classes by label support ``tp + fn``.

All divisions use the double-``where`` pattern, so scores are safe under ``grad``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import _validation as v

Stats = Any  # ConfusionMatrix | BinaryStats | SoftStats
Terms = Callable[..., tuple[jax.Array, jax.Array]]


# -- ratio kernels shared with the losses ---------------------------------------


def safe_ratio(num: jax.Array, den: jax.Array, smooth: float | jax.Array = 0.0) -> jax.Array:
    """``(num + smooth) / (den + smooth)``, 0 where the denominator is 0 (grad-safe)."""
    d = den + smooth
    ok = d > 0
    return jnp.where(ok, (num + smooth) / jnp.where(ok, d, 1.0), 0.0)


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


# -- shared machinery -----------------------------------------------------------


def _stats_of(stats: Stats) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, np.ndarray]:
    for name in ("tp", "fp", "fn", "tn", "counted_classes"):
        if not hasattr(stats, name):
            raise TypeError(
                "scores take a statistics state (ConfusionMatrix, BinaryStats or SoftStats); "
                f"got {type(stats).__name__}."
            )
    return stats.tp, stats.fp, stats.fn, stats.tn, np.asarray(stats.counted_classes)


def _check_empty(empty: Any) -> float:
    if isinstance(empty, bool) or not isinstance(empty, int | float):
        raise TypeError(f"`empty` must be a number or NaN; got {empty!r}.")
    return float(empty)


def _reduce(
    stats: Stats,
    terms: Terms,
    average: str | None,
    empty: float,
    support: str = "label",
) -> jax.Array:
    average = v.check_average(average)
    empty = _check_empty(empty)
    tp, fp, fn, tn, counted = _stats_of(stats)
    counted_j = jnp.broadcast_to(jnp.asarray(counted), tp.shape)
    if average == "micro":

        def pool(x):
            return jnp.sum(jnp.where(counted_j, x, 0.0), axis=-1)

        ptp, pfp, pfn, ptn = pool(tp), pool(fp), pool(fn), pool(tn)
        num, den = terms(ptp, pfp, pfn, ptn)
        is_empty = (ptp + pfp + pfn) == 0
        return jnp.where(is_empty, empty, safe_ratio(num, den))
    num, den = terms(tp, fp, fn, tn)
    is_empty = (tp + fp + fn) == 0
    per_class = jnp.where(is_empty, empty, safe_ratio(num, den))
    if average is None:
        return jnp.where(counted_j, per_class, jnp.nan)
    include = counted_j & ~jnp.isnan(per_class)
    if average == "macro":
        weights = include.astype(per_class.dtype)
    else:  # weighted by label support
        weights = jnp.where(include, tp + fn, 0.0)
    total = jnp.sum(weights, axis=-1)
    value = jnp.sum(jnp.where(include, per_class, 0.0) * weights, axis=-1)
    ok = total > 0
    return jnp.where(ok, value / jnp.where(ok, total, 1.0), jnp.nan)


_AVERAGE_DOC = """average: ``None`` (per class, ``[..., C]``), ``"micro"``, ``"macro"``
        (default) or ``"weighted"`` (by label support ``tp + fn``).
      empty: value of a class with ``tp + fp + fn == 0``; NaN (default) leaves it
        out of the averages."""


# -- public scores --------------------------------------------------------------


def iou(stats: Stats, *, average: str | None = "macro", empty: float = math.nan) -> jax.Array:
    """Intersection over union (Jaccard index): ``IoU = tp / (tp + fp + fn)``.

    ``average="macro"`` on a dataset-level state is the usual mIoU; on a
    vmapped (per-image) state it gives one mIoU per image.

    Args:
      stats: a statistics state.
      average: ``None`` (per class, ``[..., C]``), ``"micro"``, ``"macro"``
        (default) or ``"weighted"`` (by label support ``tp + fn``).
      empty: value of a class with ``tp + fp + fn == 0``; NaN (default) leaves it
        out of the averages.

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

    References:
      Jaccard, "The distribution of the flora in the alpine zone", 1912;
      Everingham et al., "The PASCAL Visual Object Classes Challenge", IJCV 2010.
    """
    return _reduce(stats, iou_terms, average, empty)


def dice(stats: Stats, *, average: str | None = "macro", empty: float = math.nan) -> jax.Array:
    """Dice coefficient, which equals the F1 score: ``2 tp / (2 tp + fp + fn)``.

    Dice = F1 = Tversky(0.5, 0.5), and per class ``Dice = 2 IoU / (1 + IoU)``.

    Args:
      stats: a statistics state.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN: left out of averages).

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
    return _reduce(stats, dice_terms, average, empty)


def fbeta(
    stats: Stats,
    *,
    beta: float = 1.0,
    average: str | None = "macro",
    empty: float = math.nan,
) -> jax.Array:
    """F-beta score: ``(1 + b²) tp / ((1 + b²) tp + b² fn + fp)``.

    ``beta > 1`` favours recall, ``beta < 1`` precision; ``beta = 1`` is Dice / F1.

    Args:
      stats: a statistics state.
      beta: non-negative weight of recall.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).

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
    return _reduce(stats, lambda *s: fbeta_terms(*s, beta=beta), average, empty)


def tversky(
    stats: Stats,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    average: str | None = "macro",
    empty: float = math.nan,
) -> jax.Array:
    """Tversky index: ``tp / (tp + alpha fp + beta fn)``.

    ``alpha = beta = 0.5`` is Dice, ``alpha = beta = 1`` is IoU.

    Args:
      stats: a statistics state.
      alpha: weight of false positives (>= 0).
      beta: weight of false negatives (>= 0).
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).

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
    return _reduce(stats, lambda *s: tversky_terms(*s, alpha=alpha, beta=beta), average, empty)


def precision(stats: Stats, *, average: str | None = "macro", empty: float = math.nan) -> jax.Array:
    """Precision (positive predictive value): ``tp / (tp + fp)``.

    A class that was never predicted but occurs in the labels scores 0.

    Args:
      stats: a statistics state.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.precision(cm, average=None)
      Array([1.        , 0.33333334, 0.        ], dtype=float32)
    """
    return _reduce(stats, precision_terms, average, empty)


def recall(stats: Stats, *, average: str | None = "macro", empty: float = math.nan) -> jax.Array:
    """Recall (sensitivity, per-class accuracy): ``tp / (tp + fn)``.

    Args:
      stats: a statistics state.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of an empty class (default NaN).

    Returns:
      float ``[..., C]`` for ``average=None``, else ``[...]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.recall(cm, average=None)
      Array([1., 1., 0.], dtype=float32)
    """
    return _reduce(stats, recall_terms, average, empty)


def pixel_accuracy(stats: Stats) -> jax.Array:
    """Fraction of valid pixels classified correctly.

    For exclusive classes (confusion matrix, softmax statistics):
    ``sum_c tp_c / sum_c (tp_c + fn_c)``, which equals micro recall. For
    independent channels (binary / multilabel):
    ``sum_c (tp_c + tn_c) / sum_c (tp_c + fp_c + fn_c + tn_c)``.
    NaN when there is no valid pixel.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.pixel_accuracy(cm)
      Array(0.5, dtype=float32)
    """
    tp, fp, fn, tn, counted = _stats_of(stats)
    counted_j = jnp.broadcast_to(jnp.asarray(counted), tp.shape)

    def pool(x):
        return jnp.sum(jnp.where(counted_j, x, 0.0), axis=-1)

    if getattr(stats, "exclusive", True):
        num, den = pool(tp), pool(tp + fn)
    else:
        num, den = pool(tp + tn), pool(tp + fp + fn + tn)
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), jnp.nan)


def mean_accuracy(stats: Stats, *, empty: float = math.nan) -> jax.Array:
    """Mean per-class accuracy: the macro average of recall ``tp / (tp + fn)``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(
      ...     jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 2, 2]), num_classes=3)
      >>> jaxseg.mean_accuracy(cm)
      Array(0.6666667, dtype=float32)
    """
    return recall(stats, average="macro", empty=empty)


def frequency_weighted_iou(stats: Stats, *, empty: float = math.nan) -> jax.Array:
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
    return iou(stats, average="weighted", empty=empty)


GD_WEIGHTINGS = ("square", "simple", "uniform")


def sudre_weights(support: jax.Array, counted: jax.Array, weighting: str) -> jax.Array:
    """Generalized Dice class weights from label support ``[..., C]``.

    ``"square"``: ``1 / T_c²``; ``"simple"``: ``1 / T_c``; ``"uniform"``: 1,
    with ``T_c`` the (soft) label volume. A class absent from the labels
    (``T_c = 0``) gets the largest finite weight of the others (MONAI's rule),
    or 1 if no class has labels. Classes not counted get 0.
    """
    v.check_choice("weighting", weighting, GD_WEIGHTINGS)
    present = (support > 0) & counted
    safe = jnp.where(present, support, 1.0)
    if weighting == "square":
        w = 1.0 / (safe * safe)
    elif weighting == "simple":
        w = 1.0 / safe
    else:
        w = jnp.ones_like(support)
    w = jnp.where(present, w, 0.0)
    fill = jnp.max(w, axis=-1, keepdims=True)
    fill = jnp.where(fill > 0, fill, 1.0)
    return jnp.where(counted, jnp.where(present, w, fill), 0.0)


def generalized_dice(
    stats: Stats, *, weighting: str = "square", empty: float = math.nan
) -> jax.Array:
    """Generalized Dice score (Sudre et al. 2017), a ratio of weighted sums.

    ``GD = 2 sum_c w_c tp_c / sum_c w_c (2 tp_c + fp_c + fn_c)`` with
    ``w_c = 1 / T_c²`` (``weighting="square"``), ``1 / T_c`` (``"simple"``) or 1
    (``"uniform"``), ``T_c = tp_c + fn_c`` the label volume. A class absent from
    the labels takes the largest weight of the present classes (as MONAI and
    torchmetrics do), so it still costs its false positives. ``empty`` is
    returned when every class is empty.

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
    tp, fp, fn, _, counted = _stats_of(stats)
    counted_j = jnp.broadcast_to(jnp.asarray(counted), tp.shape)
    w = sudre_weights(tp + fn, counted_j, weighting)
    num, den = dice_terms(tp, fp, fn)
    num, den = jnp.sum(w * num, axis=-1), jnp.sum(w * den, axis=-1)
    is_empty = jnp.sum(jnp.where(counted_j, tp + fp + fn, 0.0), axis=-1) == 0
    return jnp.where(is_empty, empty, safe_ratio(num, den))


WEIGHT_SCHEMES = ("inverse", "inverse_sqrt", "median", "enet")


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
    if hasattr(state_or_counts, "tp") and hasattr(state_or_counts, "fn"):
        if getattr(state_or_counts, "batch_shape", ()):
            raise ValueError(
                "`state_or_counts` must be a dataset-level state; call `.reduce()` first."
            )
        n = (state_or_counts.tp + state_or_counts.fn).astype(jnp.float32)
    else:
        n = jnp.asarray(state_or_counts)
        if n.ndim != 1:
            raise ValueError(
                f"`state_or_counts` must be a state or counts of shape [C]; got shape {n.shape}."
            )
        n = n.astype(jnp.float32)
    if not enet_c > 1:
        raise ValueError(f"`enet_c` must be > 1; got {enet_c!r}.")
    present = n > 0
    total = jnp.sum(n)
    k = jnp.sum(present, dtype=jnp.float32)
    safe = jnp.where(present, n, 1.0)
    p = safe / jnp.where(total > 0, total, 1.0)
    if scheme == "inverse":
        w = total / (k * safe)
    elif scheme == "inverse_sqrt":
        raw = 1.0 / jnp.sqrt(safe)
        w = raw * total / jnp.sum(jnp.where(present, raw * n, 0.0))
    elif scheme == "median":
        med = jnp.nanmedian(jnp.where(present, p, jnp.nan))
        w = med / p
    else:
        w = 1.0 / jnp.log1p((enet_c - 1.0) + p)  # log1p: ln(1.02 + p) loses digits in float32
    return jnp.where(present, w, 0.0).astype(jnp.float32)
