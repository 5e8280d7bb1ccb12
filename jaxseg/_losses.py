"""Region losses: per-class transforms of soft scores (Dice, IoU, F-beta, Tversky, GDL).

Every loss here computes :class:`~jaxseg.SoftStats` of ``softmax(logits)`` (or
``sigmoid(logits)`` for the ``sigmoid_*`` family) against the labels, pooled
over ``axis``, and walks the same chain as the scores
(:mod:`jaxseg._classwise`): per-class ratio, then a per-class transform
(``1 - s``, ``-ln s``, ``(1 - s) ** gamma``), then the class average. So
``dice_loss(x, y) == 1 - dice(SoftStats.from_logits(x, y))`` with the same
``smooth`` and ``class_weights``.

Shared rules (see ``docs/losses.md``):

* ``axis``: the per-pixel axes pooled before the ratio (the class axis is not
  counted). Default ``None``: every per-pixel axis except the first (batch) one,
  giving one value per example. Including axis 0 pools the batch (smp's default,
  MONAI ``batch=True``).
* ``smooth`` is added once to the numerator and once to the denominator of the
  ratio as written (MONAI's ``smooth_nr = smooth_dr``).
* Absent classes: with ``smooth == 0`` a class with no labelled mass in a
  pooled group (``sum y`` at most ``1e-6`` pixel) is left out of the class
  average, as smp does. Its soft score would be exactly 0 whatever the
  prediction: a constant in the loss with no gradient, and NaN gradients once
  its predicted mass became tiny. With ``smooth > 0`` the formula decides. A
  group with no counted class has loss 0, and perfect predictions give loss 0
  at every logit margin. Ignored class ids inside ``[0, C)`` and zero
  ``class_weights`` are left out too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg import _classwise as cw_
from jaxseg import _validation as v
from jaxseg._loss_inputs import region_stats
from jaxseg._scores import (
    dice_terms,
    fbeta_terms,
    generalized_dice,
    iou_terms,
    tversky_terms,
)

ArrayLike = jax.typing.ArrayLike
_LOG_EPS = 1e-7


def _region_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: Any,
    ignore_index: Any,
    where: ArrayLike | None,
    class_weights: Any,
    smooth: Any,
    terms: Callable[..., tuple[jax.Array, jax.Array]],
    *,
    exclusive: bool,
    squared: bool = False,
    gamma: Any = 1.0,
    log: bool = False,
) -> jax.Array:
    """A per-class transform of the soft score, through the chain of :mod:`jaxseg._classwise`.

    ``loss_c = 1 - s_c`` (or ``-ln s_c`` with ``log``, ``(1 - s_c) ** gamma``),
    averaged with ``class_weights`` over the classes the score counts; 0 where
    no class counts.
    """
    smooth = v.check_nonnegative("smooth", smooth)
    squared = v.check_bool("squared", squared)
    log = v.check_bool("log", log)
    stats, cw, squared_terms = region_stats(
        logits,
        labels,
        exclusive=exclusive,
        axis=axis,
        ignore_index=ignore_index,
        where=where,
        class_weights=class_weights,
        squared=squared,
    )
    tp, fp, fn = stats.tp, stats.fp, stats.fn
    if squared_terms is not None:
        product, squares = squared_terms
        num, den = 2 * product, squares
    else:
        num, den = terms(tp, fp, fn)
    absent = cw_.empty_classes(tp, fp, fn, soft=True)
    scores, left_out = cw_.class_scores(num, den, absent, smooth=smooth, empty=math.nan)
    include = cw_.include_mask(stats.counted_classes, tp.shape, class_weights=cw) & ~left_out
    scores = jnp.where(include, scores, 1.0)
    if log:
        per_class = -jnp.log(jnp.maximum(scores, _LOG_EPS))
    else:
        per_class = cw_.safe_power(jnp.maximum(1.0 - scores, 0.0), gamma)
    return cw_.class_average(per_class, include, average="macro", class_weights=cw, none_value=0.0)


# -- multiclass (softmax) region losses -----------------------------------------


def dice_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    smooth: float = 0.0,
    squared: bool = False,
) -> jax.Array:
    """Soft Dice loss (= 1 - soft F1) of ``softmax(logits)``.

    Per class ``c``, with soft statistics pooled over ``axis``::

        loss_c = 1 - (2 tp_c + s) / (2 tp_c + fp_c + fn_c + s)

    where ``2 tp + fp + fn = sum p + sum y``; ``squared=True`` uses the V-Net
    denominator ``sum p² + sum y²`` with ``tp = sum p y``. The result is the
    ``class_weights``-weighted mean of ``loss_c`` over counted classes.
    Dice = F1 = Tversky(0.5, 0.5) (equal to :func:`tversky_loss` only at ``s = 0``).

    Args:
      logits: ``[..., C]`` unnormalised scores (any float dtype; computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float one-hot / soft
        targets ``logits.shape``.
      axis: per-pixel axes pooled before the ratio (the class axis is not
        counted). Default ``None``: all but the first (batch) axis, one value per
        example; include axis 0 to pool the batch.
      ignore_index: integer label id(s) to leave out (inside or outside ``[0, C)``).
      where: boolean mask broadcastable to ``logits.shape[:-1]``; false pixels are
        left out.
      class_weights: ``[C]`` weights of the class average (normalised; a zero
        weight removes a class).
      smooth: ``s >= 0``, added to numerator and denominator (MONAI
        ``smooth_nr = smooth_dr = s``, and smp's ``smooth = s``).
      squared: use the squared (V-Net) denominator.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # [1, 3, 2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> jaxseg.dice_loss(logits, labels)
      Array([0.30013946], dtype=float32)
      >>> jaxseg.dice_loss(logits, labels, ignore_index=0, smooth=1.0)
      Array([0.18173736], dtype=float32)

    References:
      Milletari et al., "V-Net: Fully convolutional neural networks for volumetric
      medical image segmentation", 3DV 2016; Dice, 1945.
    """
    inputs = (logits, labels, axis, ignore_index, where, class_weights, smooth)
    return _region_loss(*inputs, dice_terms, exclusive=True, squared=squared)


def iou_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    smooth: float = 0.0,
    log: bool = False,
) -> jax.Array:
    """Soft IoU (Jaccard) loss of ``softmax(logits)``: ``1 - IoU`` or ``-ln IoU``.

    Per class ``c``, with soft statistics pooled over ``axis``::

        IoU_c = (tp_c + s) / (tp_c + fp_c + fn_c + s)
        loss_c = 1 - IoU_c          (log=False)
        loss_c = -ln max(IoU_c, 1e-7)   (log=True)

    averaged over counted classes with ``class_weights``. IoU = Jaccard =
    Tversky(1, 1). MONAI ``DiceLoss(jaccard=True)`` with smooth ``s`` equals this
    loss with ``s / 2``.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float targets ``logits.shape``.
      axis: per-pixel axes pooled before the ratio. Default ``None``: all but the
        first (batch) axis; include axis 0 to pool the batch.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` weights of the class average (normalised).
      smooth: ``s >= 0`` added to numerator and denominator.
      log: return ``-ln IoU`` per class instead of ``1 - IoU``.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> jaxseg.iou_loss(logits, labels)
      Array([0.46058515], dtype=float32)
      >>> jaxseg.iou_loss(logits, labels, log=True)
      Array([0.62023747], dtype=float32)

    References:
      Rahman & Wang, "Optimizing intersection-over-union in deep neural networks
      for image segmentation", ISVC 2016.
    """
    inputs = (logits, labels, axis, ignore_index, where, class_weights, smooth)
    return _region_loss(*inputs, iou_terms, exclusive=True, log=log)


def fbeta_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    beta: float = 1.0,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    smooth: float = 0.0,
) -> jax.Array:
    """Soft F-beta loss of ``softmax(logits)``.

    Per class ``c``, with ``b = beta``::

        loss_c = 1 - ((1 + b²) tp_c + s) / ((1 + b²) tp_c + b² fn_c + fp_c + s)

    averaged over counted classes with ``class_weights``. ``beta = 1`` is
    :func:`dice_loss`; ``beta > 1`` weighs recall (false negatives) more.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float targets ``logits.shape``.
      beta: non-negative weight of recall.
      axis: per-pixel axes pooled before the ratio. Default ``None``: all but the
        first (batch) axis.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` weights of the class average (normalised).
      smooth: ``s >= 0`` added to numerator and denominator.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> jaxseg.fbeta_loss(logits, labels, beta=2.0)
      Array([0.2810979], dtype=float32)

    References:
      van Rijsbergen, "Information Retrieval", 1979.
    """
    beta = v.check_nonnegative("beta", beta)
    terms = functools.partial(fbeta_terms, beta=beta)
    inputs = (logits, labels, axis, ignore_index, where, class_weights, smooth)
    return _region_loss(*inputs, terms, exclusive=True)


def tversky_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    smooth: float = 0.0,
) -> jax.Array:
    """Tversky loss of ``softmax(logits)``, with a focal exponent per class.

    Per class ``c``::

        TI_c = (tp_c + s) / (tp_c + alpha fp_c + beta fn_c + s)
        loss_c = (1 - TI_c) ** gamma

    averaged over counted classes with ``class_weights``. ``alpha = beta = 0.5``
    is Dice (at ``s = 0``), ``alpha = beta = 1`` is IoU. ``gamma`` is applied
    as written (Abraham & Liu write the exponent as ``1 / gamma``).

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float targets ``logits.shape``.
      alpha: weight of false positives (>= 0).
      beta: weight of false negatives (>= 0).
      gamma: focal exponent (>= 0) applied to each class loss.
      axis: per-pixel axes pooled before the ratio. Default ``None``: all but the
        first (batch) axis.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` weights of the class average (normalised).
      smooth: ``s >= 0`` added to numerator and denominator.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> jaxseg.tversky_loss(logits, labels, alpha=0.3, beta=0.7)
      Array([0.29044288], dtype=float32)
      >>> jaxseg.tversky_loss(logits, labels, alpha=0.3, beta=0.7, gamma=2.0)
      Array([0.08511661], dtype=float32)

    References:
      Salehi et al., "Tversky loss function for image segmentation using 3D fully
      convolutional deep networks", MLMI 2017; Abraham & Khan, "A novel focal
      Tversky loss function", ISBI 2019.
    """
    alpha = v.check_nonnegative("alpha", alpha)
    beta = v.check_nonnegative("beta", beta)
    gamma = v.check_nonnegative("gamma", gamma)
    terms = functools.partial(tversky_terms, alpha=alpha, beta=beta)
    inputs = (logits, labels, axis, ignore_index, where, class_weights, smooth)
    return _region_loss(*inputs, terms, exclusive=True, gamma=gamma)


def generalized_dice_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    weighting: str = "square",
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    smooth: float = 0.0,
) -> jax.Array:
    """Generalized Dice loss (Sudre et al. 2017): one ratio of weighted sums.

    With soft statistics pooled over ``axis`` and label volume ``T_c = sum y_c``::

        w_c  = cw_c / T_c²  ("square"),  cw_c / T_c  ("simple"),  cw_c  ("uniform")
        loss = 1 - (2 sum_c w_c tp_c + s) / (sum_c w_c (2 tp_c + fp_c + fn_c) + s)

    The weights are constants (no gradient flows through ``T_c``). A class
    absent from the labels of a group gets the largest finite weight of the
    others (MONAI's rule), so its false positives still cost. ``class_weights``
    multiply Sudre's weights; a zero weight removes a class (MONAI's
    ``include_background=False`` is ``class_weights=[0, 1, ...]``). A group
    whose counted classes are all empty has loss 0.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float targets ``logits.shape``.
      weighting: ``"square"`` (default), ``"simple"`` or ``"uniform"``.
      axis: per-pixel axes pooled before the ratio. Default ``None``: all but the
        first (batch) axis.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` factors multiplied into Sudre's weights.
      smooth: ``s >= 0`` added to numerator and denominator.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> jaxseg.generalized_dice_loss(logits, labels)
      Array([0.31834918], dtype=float32)

    References:
      Sudre et al., "Generalised Dice overlap as a deep learning loss function for
      highly unbalanced segmentations", DLMIA 2017.
    """
    stats, _, _ = region_stats(
        logits,
        labels,
        exclusive=True,
        axis=axis,
        ignore_index=ignore_index,
        where=where,
        class_weights=class_weights,
    )
    score = generalized_dice(
        stats, weighting=weighting, empty=1.0, smooth=smooth, class_weights=class_weights
    )
    return 1.0 - score


# -- binary / multilabel (sigmoid) region losses --------------------------------


def sigmoid_dice_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    smooth: float = 0.0,
    squared: bool = False,
) -> jax.Array:
    """Soft Dice loss of ``sigmoid(logits)``, one independent channel per class.

    Per channel ``c`` as :func:`dice_loss`, with ``p = sigmoid(logits)``::

        loss_c = 1 - (2 tp_c + s) / (2 tp_c + fp_c + fn_c + s)

    averaged over counted channels with ``class_weights``.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: 0/1 integers or float (soft) targets of ``logits.shape``.
      axis: per-pixel axes pooled before the ratio. Default ``None``: all but the
        first (batch) axis.
      ignore_index: integer label value(s) to leave out (e.g. 255).
      where: boolean mask, per pixel (``logits.shape[:-1]``) or per element
        (``logits.shape``).
      class_weights: ``[C]`` weights of the channel average (normalised).
      smooth: ``s >= 0`` added to numerator and denominator.
      squared: use the squared (V-Net) denominator ``sum p² + sum y²``.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0], [-1.0], [0.5]]])  # [1, 3, 1]
      >>> labels = jnp.array([[[1], [0], [1]]])
      >>> jaxseg.sigmoid_dice_loss(logits, labels)
      Array([0.20298117], dtype=float32)

    References:
      Milletari et al., "V-Net", 3DV 2016.
    """
    inputs = (logits, labels, axis, ignore_index, where, class_weights, smooth)
    return _region_loss(*inputs, dice_terms, exclusive=False, squared=squared)


def sigmoid_iou_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    smooth: float = 0.0,
    log: bool = False,
) -> jax.Array:
    """Soft IoU (Jaccard) loss of ``sigmoid(logits)``, one channel per class.

    Per channel ``c``: ``1 - (tp_c + s) / (tp_c + fp_c + fn_c + s)`` (or
    ``-ln`` of the ratio with ``log=True``), averaged with ``class_weights``.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: 0/1 integers or float targets of ``logits.shape``.
      axis: per-pixel axes pooled before the ratio. Default ``None``: all but the
        first (batch) axis.
      ignore_index: integer label value(s) to leave out.
      where: boolean mask, per pixel or per element.
      class_weights: ``[C]`` weights of the channel average (normalised).
      smooth: ``s >= 0`` added to numerator and denominator.
      log: return ``-ln IoU`` per channel.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0], [-1.0], [0.5]]])
      >>> labels = jnp.array([[[1], [0], [1]]])
      >>> jaxseg.sigmoid_iou_loss(logits, labels)
      Array([0.33746356], dtype=float32)

    References:
      Rahman & Wang, ISVC 2016.
    """
    inputs = (logits, labels, axis, ignore_index, where, class_weights, smooth)
    return _region_loss(*inputs, iou_terms, exclusive=False, log=log)


def sigmoid_tversky_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    smooth: float = 0.0,
) -> jax.Array:
    """Tversky loss of ``sigmoid(logits)``, focal exponent per channel.

    Per channel ``c``: ``(1 - (tp_c + s) / (tp_c + alpha fp_c + beta fn_c + s)) ** gamma``,
    averaged with ``class_weights``.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: 0/1 integers or float targets of ``logits.shape``.
      alpha: weight of false positives (>= 0).
      beta: weight of false negatives (>= 0).
      gamma: focal exponent (>= 0).
      axis: per-pixel axes pooled before the ratio. Default ``None``: all but the
        first (batch) axis.
      ignore_index: integer label value(s) to leave out.
      where: boolean mask, per pixel or per element.
      class_weights: ``[C]`` weights of the channel average (normalised).
      smooth: ``s >= 0`` added to numerator and denominator.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0], [-1.0], [0.5]]])
      >>> labels = jnp.array([[[1], [0], [1]]])
      >>> jaxseg.sigmoid_tversky_loss(logits, labels, alpha=0.3, beta=0.7)
      Array([0.22177976], dtype=float32)

    References:
      Salehi et al., MLMI 2017; Abraham & Khan, ISBI 2019.
    """
    alpha = v.check_nonnegative("alpha", alpha)
    beta = v.check_nonnegative("beta", beta)
    gamma = v.check_nonnegative("gamma", gamma)
    terms = functools.partial(tversky_terms, alpha=alpha, beta=beta)
    inputs = (logits, labels, axis, ignore_index, where, class_weights, smooth)
    return _region_loss(*inputs, terms, exclusive=False, gamma=gamma)
