"""Pixel-wise losses: softmax cross-entropy, softmax focal and sigmoid focal loss.

Each is a per-pixel term summed over the pooled ``axis`` and divided by the
sum of the weights of the valid pixels there (the normaliser of
``torch.nn.functional.cross_entropy(weight=w, reduction="mean")``), so class
weights rebalance the classes without changing the loss scale.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxseg import _validation as v
from jaxseg._classwise import safe_power
from jaxseg._fused import cross_entropy_sums
from jaxseg._loss_inputs import dense_targets, loss_inputs
from jaxseg._soft import sanitize_class_ids

ArrayLike = jax.typing.ArrayLike


def _pool(
    per_pixel: jax.Array, norm: jax.Array, axes: tuple[int, ...], *, pooled: bool = False
) -> jax.Array:
    """Sum over ``axes`` divided by the summed normaliser (0 where it is 0).

    With ``pooled=True`` the numerator is already summed over ``axes``.
    """
    if not axes:
        return per_pixel
    num = per_pixel if pooled else jnp.sum(per_pixel, axis=axes)
    den = jnp.sum(norm, axis=axes)
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _softmax_terms(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Any,
    ignore_index: Any,
    where: ArrayLike | None,
    class_weights: Any,
    label_smoothing: Any,
    gamma: Any,
) -> jax.Array:
    x, cw, axes, ignored = loss_inputs(
        logits, axis=axis, ignore_index=ignore_index, class_weights=class_weights
    )
    c = x.shape[-1]
    labels = v.as_int_array(labels, "labels")
    no_focal = isinstance(gamma, int | float) and gamma == 0
    smoothed = not (isinstance(label_smoothing, int | float) and label_smoothing == 0)
    if not jnp.issubdtype(labels.dtype, jnp.floating) and (no_focal or not smoothed):
        # Hot path: class ids. One fused pass with a hand-written VJP; no [..., C]
        # temporary, and a graph that does not grow with C.
        safe, valid, _ = sanitize_class_ids(x, labels, ignored, where)
        ones = jnp.ones((c,), jnp.float32)
        if no_focal:
            w = ones if cw is None else lax.stop_gradient(cw)
            e = jnp.asarray(label_smoothing, jnp.float32)
            num = cross_entropy_sums(x, safe, valid, w, e, axes, smoothed)
            norm = jnp.where(valid, jnp.take(w, safe), 0.0)
            return _pool(num, norm, axes, pooled=True)
        # Focal on class ids: with q_i = -log p_{i y_i} (the unweighted per-pixel
        # cross-entropy), l_i = a_{y_i} (1 - exp(-q_i)) ** gamma q_i; the gradient
        # reaches the logits through the fused kernel's VJP, dq_i/dx_i = p_i - onehot(y_i).
        q = cross_entropy_sums(x, safe, valid, ones, jnp.zeros((), jnp.float32), (), False)
        a_y = jnp.ones(safe.shape, jnp.float32) if cw is None else jnp.take(cw, safe)
        per_pixel = a_y * safe_power(-jnp.expm1(-q), gamma) * q
        norm = jnp.where(valid, a_y, 0.0)
        return _pool(jnp.where(valid, per_pixel, 0.0), norm, axes)
    y, valid = dense_targets(x, labels, exclusive=True, ignored=ignored, where=where)
    logp = jax.nn.log_softmax(x, axis=-1)
    w = jnp.broadcast_to(jnp.ones((c,), jnp.float32) if cw is None else cw, x.shape)
    norm = jnp.sum(y * w, axis=-1)  # weight of each valid pixel (w_y for int labels)
    t = y
    if not (isinstance(label_smoothing, int | float) and label_smoothing == 0):
        t = (1.0 - label_smoothing) * y + (label_smoothing / c) * valid[..., None].astype(
            jnp.float32
        )
    if not (isinstance(gamma, int | float) and gamma == 0):
        t = t * safe_power(-jnp.expm1(logp), gamma)  # (1 - p) ** gamma
    per_pixel = -jnp.sum((w * t) * logp, axis=-1)
    return _pool(jnp.where(valid, per_pixel, 0.0), norm, axes)


def cross_entropy_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    label_smoothing: float = 0.0,
) -> jax.Array:
    """Softmax cross-entropy with class weights, ignored ids and label smoothing.

    With ``log p = log_softmax(logits)``, class weights ``w`` (default 1),
    smoothing ``e`` and targets ``y`` (one-hot of int labels, or float targets)::

        t_c    = (1 - e) y_c + e / C
        l_i    = -sum_c w_c t_ic log p_ic
        loss   = sum_i l_i / sum_i sum_c w_c y_ic      (over valid pixels of ``axis``)

    For int labels the normaliser is the sum of ``w[label]`` over valid pixels,
    so pooling every axis equals ``torch.nn.functional.cross_entropy(logits,
    labels, weight=w, ignore_index=i, label_smoothing=e, reduction="mean")``
    (torch's smoothing term is weighted and normalised the same way).
    ``axis=()`` returns the per-pixel terms ``l_i`` unnormalised (torch's
    ``reduction="none"``; 0 at invalid pixels). A group without a valid pixel
    (or with zero total weight) gives 0. For soft targets torch divides by the
    pixel count instead; here the normaliser stays ``sum_c w_c y_c``, so one-hot
    float targets give exactly the int-label result.

    Use weights computed once from the whole dataset
    (:func:`jaxseg.class_weights_from_counts`), not from the batch.

    Args:
      logits: ``[..., C]`` unnormalised scores (any float dtype; float32 inside).
      labels: int class ids ``logits.shape[:-1]``, or float targets ``logits.shape``.
      axis: per-pixel axes pooled by the normalised sum. Default ``None``: all
        but the first (batch) axis; ``axis=()`` gives per-pixel values.
      ignore_index: integer label id(s) to leave out (e.g. 255).
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` per-class weights ``w``.
      label_smoothing: ``e`` in ``[0, 1]``.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 255]])
      >>> jaxseg.cross_entropy_loss(logits, labels, ignore_index=255)
      Array([0.22009486], dtype=float32)
      >>> jaxseg.cross_entropy_loss(logits, labels, ignore_index=255, axis=())
      Array([[0.12692809, 0.31326163, 0.        ]], dtype=float32)

    References:
      Szegedy et al., "Rethinking the Inception architecture for computer vision"
      (label smoothing), CVPR 2016.
    """
    label_smoothing = v.check_nonnegative("label_smoothing", label_smoothing)
    if isinstance(label_smoothing, int | float) and label_smoothing > 1:
        raise ValueError(f"`label_smoothing` must be in [0, 1]; got {label_smoothing!r}.")
    return _softmax_terms(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        where=where,
        class_weights=class_weights,
        label_smoothing=label_smoothing,
        gamma=0,
    )


def focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: float = 2.0,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
) -> jax.Array:
    """Softmax focal loss: cross-entropy down-weighting well-classified pixels.

    With ``p = softmax(logits)``, ``a = class_weights`` (the alpha of Lin et al.,
    default 1) and targets ``y``::

        l_i  = -sum_c a_c y_ic (1 - p_ic) ** gamma log p_ic
        loss = sum_i l_i / sum_i sum_c a_c y_ic     (over valid pixels of ``axis``)

    The normaliser is that of :func:`cross_entropy_loss`, so ``gamma=0`` gives
    exactly the cross-entropy. MONAI ``FocalLoss(use_softmax=True,
    to_onehot_y=True, weight=a)`` averages over all ``N * C`` elements instead:
    its value is ``loss * sum_i a_{y_i} / (N C)`` (``loss * 1 / C`` without weights).

    Args:
      logits: ``[..., C]`` unnormalised scores (any float dtype; float32 inside).
      labels: int class ids ``logits.shape[:-1]``, or float targets ``logits.shape``.
      gamma: focusing exponent ``>= 0``.
      axis: per-pixel axes pooled by the normalised sum. Default ``None``: all
        but the first (batch) axis; ``axis=()`` gives per-pixel values.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` per-class alpha.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> jaxseg.focal_loss(logits, labels, gamma=2.0)
      Array([0.06591614], dtype=float32)

    References:
      Lin et al., "Focal loss for dense object detection", ICCV 2017.
    """
    gamma = v.check_nonnegative("gamma", gamma)
    return _softmax_terms(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        where=where,
        class_weights=class_weights,
        label_smoothing=0,
        gamma=gamma,
    )


def sigmoid_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float | None = None,
    gamma: float = 2.0,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
) -> jax.Array:
    """Sigmoid focal loss, one independent binary channel per class.

    With ``p = sigmoid(x)``, targets ``y`` and ``p_t = p y + (1 - p)(1 - y)``::

        l_ic = a_t (1 - p_t) ** gamma BCE(x_ic, y_ic),   a_t = alpha y + (1 - alpha)(1 - y)
        loss = sum_ic w_c l_ic / sum_ic w_c              (over valid elements of ``axis``)

    ``alpha`` weighs positives as in Lin et al. and ``optax.sigmoid_focal_loss``
    (``None``: no weighting). Without ``class_weights`` and with every element
    valid, pooling every axis is the mean of ``optax.sigmoid_focal_loss`` over
    all elements; ``axis=()`` gives the mean over channels per pixel.

    Args:
      logits: ``[..., C]`` unnormalised scores (computed in float32).
      labels: 0/1 integers or float targets of ``logits.shape``.
      alpha: weight of positives in ``[0, 1]``, or ``None``.
      gamma: focusing exponent ``>= 0``.
      axis: per-pixel axes pooled. Default ``None``: all but the first (batch) axis.
      ignore_index: integer label value(s) to leave out (e.g. 255).
      where: boolean mask, per pixel (``logits.shape[:-1]``) or per element.
      class_weights: ``[C]`` weights of the channels.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[[2.0], [-1.0], [0.5]]])
      >>> labels = jnp.array([[[1], [0], [1]]])
      >>> jaxseg.sigmoid_focal_loss(logits, labels, alpha=0.25)
      Array([0.01144593], dtype=float32)

    References:
      Lin et al., "Focal loss for dense object detection", ICCV 2017.
    """
    gamma = v.check_nonnegative("gamma", gamma)
    if alpha is not None:
        alpha = v.check_nonnegative("alpha", alpha)
        if isinstance(alpha, int | float) and alpha > 1:
            raise ValueError(f"`alpha` must be in [0, 1] or None; got {alpha!r}.")
    x, cw, axes, ignored = loss_inputs(
        logits, axis=axis, ignore_index=ignore_index, class_weights=class_weights
    )
    y, valid = dense_targets(x, labels, exclusive=False, ignored=ignored, where=where)
    log_p, log_q = jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    bce = -(y * log_p + (1.0 - y) * log_q)
    p = jnp.exp(log_p)
    p_t = p * y + (1.0 - p) * (1.0 - y)
    term = safe_power(jnp.maximum(1.0 - p_t, 0.0), gamma) * bce
    if alpha is not None:
        term = (alpha * y + (1.0 - alpha) * (1.0 - y)) * term
    w = valid.astype(jnp.float32)
    if cw is not None:
        w = w * jnp.broadcast_to(cw, w.shape)
    num = jnp.sum(jnp.where(valid, w * term, 0.0), axis=-1)
    den = jnp.sum(w, axis=-1)
    if not axes:
        ok = den > 0
        return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)
    return _pool(num, den, axes)
