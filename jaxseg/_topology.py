"""Skeletons, clDice and distance-map losses, all inside the compiled step.

* :func:`soft_cldice_loss` (Shit et al. 2021): the soft skeleton of Shit et
  al. (iterated soft erosion = min over the face neighbours, soft dilation =
  max over the 3x3(x3) cube, both with the image border left out, as PyTorch's
  max pooling pads) of the probabilities and of the targets, and the harmonic
  mean of topology precision and sensitivity.
* :func:`hausdorff_dt_loss` (Karimi & Salcudean 2019) and
  :func:`boundary_loss` (Kervadec et al. 2019) weigh each pixel by distance
  maps that :func:`jaxseg.distance_transform` computes from thresholded masks,
  under ``stop_gradient``: no SciPy, no host callback, no gradient through the
  maps.
* :func:`skeletonize` (Zhang & Suen 1984, the method scikit-image uses in 2-D)
  and the hard :func:`cldice` metric (Metrics Reloaded's clDSC).

The losses share the setup of every loss (:mod:`jaxseg._loss_inputs`: logits
``[batch, *spatial, C]`` with 2 or 3 spatial axes, integer or one-hot / soft
labels, ``axis``, ``ignore_index``, ``where``, ``class_weights``) and the
class average of :mod:`jaxseg._classwise`. Spatial operations (skeletons,
distance maps) always run over the spatial axes of each example; ``axis``
chooses what is pooled afterwards (default: one value per example).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseg import _classwise as cw_
from jaxseg import _validation as v
from jaxseg._distance import _check_spacing, _finish, _masks, _prepare, distance_transform
from jaxseg._loss_inputs import dense_targets, float_logits, loss_inputs

ArrayLike = jax.typing.ArrayLike

#: Added to the denominator of clDice's harmonic mean (MONAI's ``smooth`` default).
HARMONIC_EPS = 1e-4
AVERAGES = ("macro", "micro")


# -- shared setup ----------------------------------------------------------------


def _setup(logits, labels, axis, ignore_index, where, class_weights):
    """``(probs, targets, valid, class_weights, axes, counted)`` for the losses below."""
    x = float_logits(logits)
    if not 4 <= x.ndim <= 5:
        raise ValueError(
            "`logits` must have shape [batch, *spatial, C] with 2 or 3 spatial axes; "
            f"got shape {tuple(x.shape)} ({x.ndim - 2} spatial axes)."
        )
    c = x.shape[-1]
    labels = v.as_int_array(labels, "labels")
    if labels.ndim == x.ndim and labels.shape[-1] != c:
        raise ValueError(
            f"`labels` has {labels.shape[-1]} classes on its last axis but `logits` has {c}; "
            f"one-hot / soft labels must have shape {tuple(x.shape)}."
        )
    x, cw, axes, ignored = loss_inputs(
        x, axis=axis, ignore_index=ignore_index, class_weights=class_weights
    )
    y, valid = dense_targets(x, labels, exclusive=True, ignored=ignored, where=where)
    probs = jnp.where(valid[..., None], jax.nn.softmax(x, axis=-1), 0.0)
    counted = v.counted_mask(c, v.class_ids_in_range(ignored, c))
    return probs, y, valid, cw, axes, counted


def _average(per_class, counted, cw, left_out=None):
    """Class average of per-class losses ``[..., C]`` (0 where no class counts)."""
    include = cw_.include_mask(counted, per_class.shape, class_weights=cw)
    if left_out is not None:
        include = include & ~left_out
    return cw_.class_average(per_class, include, average="macro", class_weights=cw, none_value=0.0)


def _valid_mean(values, valid, axes):
    """Mean of ``values [..., C]`` over the valid pixels of the pooled axes (0 if none)."""
    num = jnp.sum(jnp.where(valid[..., None], values, 0.0), axis=axes)
    count = jnp.sum(valid, axis=axes).astype(jnp.float32)[..., None]
    return cw_.ratio(num, count)


# -- soft skeleton ---------------------------------------------------------------


def _window(x: jax.Array, axes: Any, op: Any, init: float) -> jax.Array:
    """``op`` over the 3-neighbourhood along each of ``axes`` (a line or a cube).

    Outside the image counts as ``init`` (left out), as PyTorch's max pooling pads.
    """
    dims = tuple(3 if a in axes else 1 for a in range(x.ndim))
    pad = tuple((1, 1) if a in axes else (0, 0) for a in range(x.ndim))
    return lax.reduce_window(x, init, op, dims, (1,) * x.ndim, pad)


def _spatial_axes(x: jax.Array) -> range:
    return range(1, x.ndim - 1)  # [batch, *spatial, C]


def soft_erode(x: jax.Array) -> jax.Array:
    """Minimum over the face neighbours (a plus / 3-D cross) of each pixel."""
    lines = [_window(x, (a,), lax.min, math.inf) for a in _spatial_axes(x)]
    out = lines[0]
    for line in lines[1:]:
        out = jnp.minimum(out, line)
    return out


def soft_dilate(x: jax.Array) -> jax.Array:
    """Maximum over the 3x3 (3x3x3) cube around each pixel."""
    return _window(x, tuple(_spatial_axes(x)), lax.max, -math.inf)


def soft_skeleton(x: jax.Array, iterations: int) -> jax.Array:
    """Shit et al.'s soft skeleton of ``x [batch, *spatial, C]`` in ``[0, 1]``.

    ``skel = relu(x - open(x))``, then ``iterations`` times: erode ``x``,
    ``delta = relu(x - open(x))``, ``skel += relu(delta - skel * delta)``.
    """
    skel = jax.nn.relu(x - soft_dilate(soft_erode(x)))
    for _ in range(iterations):
        x = soft_erode(x)
        delta = jax.nn.relu(x - soft_dilate(soft_erode(x)))
        skel = skel + jax.nn.relu(delta - skel * delta)
    return skel


def _check_iterations(iterations: Any) -> int:
    if isinstance(iterations, bool) or not isinstance(iterations, int | np.integer):
        raise TypeError(f"`iterations` must be an int >= 1; got {iterations!r}.")
    if iterations < 1:
        raise ValueError(f"`iterations` must be an int >= 1; got {iterations!r}.")
    return int(iterations)


def soft_cldice_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    iterations: int = 3,
    smooth: float = 1.0,
    average: str = "macro",
    dice_weight: float = 0.0,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
) -> jax.Array:
    """Soft clDice loss (Shit et al. 2021), optionally mixed with the Dice loss.

    With ``p = softmax(logits)``, targets ``y``, their soft skeletons
    ``S_p = skel(p)``, ``S_y = skel(y)`` (``iterations`` soft erosions) and sums
    over the valid pixels of the pooled axes, per class ``c``::

        Tprec_c = (sum S_p y + s) / (sum S_p + s)
        Tsens_c = (sum S_y p + s) / (sum S_y + s)
        loss_c  = 1 - 2 Tprec_c Tsens_c / (Tprec_c + Tsens_c + 1e-4)

    averaged over counted classes with ``class_weights`` (``average="macro"``).
    ``average="micro"`` pools the (weighted) sums over the counted classes
    before the ratios: MONAI's ``SoftclDiceLoss``, which sums over channels.
    The result is ``(1 - w) * clDice + w * dice_loss`` with ``w = dice_weight``
    (the Dice part is :func:`jaxseg.dice_loss` with the same ``smooth``), so
    MONAI's ``SoftDiceclDiceLoss(alpha=a)`` is ``dice_weight = 1 - a`` with
    ``average="micro"``.

    The skeletons run over the spatial axes of each example. Invalid pixels
    (``ignore_index``, ``where``) are zero in both ``p`` and ``y`` before the
    skeletons and left out of the sums, so their gradient is exactly zero.
    With ``smooth = 0`` a class with no labelled mass is left out of the class
    average (the rule of every region loss). Perfect one-hot predictions give
    ``1 - 2 / (2 + 1e-4) ≈ 5e-5``, not 0, because of the harmonic-mean epsilon.

    Args:
      logits: ``[batch, *spatial, C]`` unnormalised scores, 2 or 3 spatial axes
        (computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float one-hot / soft
        targets ``logits.shape``.
      iterations: soft erosions of the skeleton (``>= 1``; MONAI's ``iter_``).
      smooth: ``s >= 0`` added to numerator and denominator of both ratios
        (MONAI's ``smooth_nr = smooth_dr``).
      average: ``"macro"`` (per class, then the class average) or ``"micro"``
        (MONAI's sums over classes).
      dice_weight: weight ``w`` in ``[0, 1]`` of the Dice loss in the mixture.
      axis: per-pixel axes pooled before the ratios. Default ``None``: all but the
        first (batch) axis; include axis 0 to pool the batch.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` weights of the class average (``"micro"``: of the
        pooled sums); a zero weight removes a class (MONAI's
        ``include_background=False`` is ``[0, 1, ...]``).

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxseg
      >>> labels = jnp.zeros((1, 8, 8), jnp.int32).at[0, 2:6, 3].set(1)  # a thin line
      >>> logits = 4.0 * jax.nn.one_hot(labels, 2)
      >>> jaxseg.soft_cldice_loss(logits, labels)
      Array([0.00729668], dtype=float32)
      >>> jaxseg.soft_cldice_loss(logits, labels, average="micro", dice_weight=0.5)
      Array([0.0352096], dtype=float32)

    References:
      Shit et al., "clDice - a novel topology-preserving loss function for
      tubular structure segmentation", CVPR 2021.
    """
    iterations = _check_iterations(iterations)
    smooth = v.check_nonnegative("smooth", smooth)
    v.check_choice("average", average, AVERAGES)
    dice_weight = v.check_nonnegative("dice_weight", dice_weight)
    if isinstance(dice_weight, int | float) and dice_weight > 1:
        raise ValueError(f"`dice_weight` must lie in [0, 1]; got {dice_weight!r}.")
    p, y, valid, cw, axes, counted = _setup(
        logits, labels, axis, ignore_index, where, class_weights
    )
    sp = soft_skeleton(p, iterations)
    sy = lax.stop_gradient(soft_skeleton(y, iterations))
    m = valid[..., None]
    sums = [jnp.sum(jnp.where(m, t, 0.0), axis=axes) for t in (sp * y, sp, sy * p, sy, y)]
    absent = sums[4] <= cw_.MIN_MASS  # no labelled mass: left out when smooth == 0
    include = cw_.include_mask(counted, absent.shape, class_weights=cw)
    if average == "micro":
        w = jnp.where(include, 1.0 if cw is None else cw, 0.0)
        sums = [jnp.sum(w * t, axis=-1) for t in sums]
        absent = sums[4] <= cw_.MIN_MASS
    skip = absent & (smooth == 0) if isinstance(smooth, int | float) else absent & ~(smooth > 0)
    tprec = cw_.ratio(sums[0], sums[1], smooth=smooth, skip=skip)
    tsens = cw_.ratio(sums[2], sums[3], smooth=smooth, skip=skip)
    loss = 1.0 - 2.0 * tprec * tsens / (tprec + tsens + HARMONIC_EPS)
    if average == "micro":
        loss = jnp.where(skip, 0.0, loss)
    else:
        loss = _average(loss, counted, cw, left_out=skip)
    if isinstance(dice_weight, int | float) and dice_weight == 0:
        return loss
    from jaxseg._losses import dice_loss

    dice = dice_loss(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        where=where,
        class_weights=class_weights,
        smooth=smooth,
    )
    return (1.0 - dice_weight) * loss + dice_weight * dice


# -- distance-map losses ---------------------------------------------------------


def _per_map(fn, masks: jax.Array) -> jax.Array:
    """Apply ``fn`` to each spatial map of ``masks [batch, *spatial, C]``."""
    maps = jnp.moveaxis(masks, -1, 1)  # [batch, C, *spatial]
    out = jax.vmap(jax.vmap(fn))(maps)
    return lax.stop_gradient(jnp.moveaxis(out, 1, -1))


def _both_distances(mask: jax.Array, spacing: tuple[float, ...]) -> jax.Array:
    """Distances to the nearest background and to the nearest foreground, ``[2, *spatial]``.

    One distance transform mapped over the pair, so a loss traces (and compiles) the
    transform once, not once per side.
    """
    edt = functools.partial(distance_transform, spacing=spacing)
    return jax.vmap(edt)(jnp.stack([~mask, mask]))


def _unsigned_field(mask: jax.Array, spacing: tuple[float, ...]) -> jax.Array:
    """MONAI's distance field: distance to the other set (0 if the mask is empty or full)."""
    inside, outside = _both_distances(mask, spacing)
    trivial = ~jnp.any(mask) | jnp.all(mask)
    return jnp.where(trivial, 0.0, jnp.where(mask, inside, outside))


def _signed_field(mask: jax.Array, spacing: tuple[float, ...]) -> jax.Array:
    """Kervadec's signed distance: outside > 0, inside ``-(d - 1) <= 0`` (0 if empty or full)."""
    inside, outside = _both_distances(mask, spacing)
    trivial = ~jnp.any(mask) | jnp.all(mask)
    return jnp.where(trivial, 0.0, jnp.where(mask, 1.0 - inside, outside))


def _check_loss_spacing(spacing: Any, probs: jax.Array) -> tuple[float, ...]:
    return _check_spacing(spacing, probs.ndim - 2)


def hausdorff_dt_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float = 2.0,
    spacing: Any = None,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
) -> jax.Array:
    """Hausdorff distance loss from distance transforms (Karimi & Salcudean 2019).

    With ``p = softmax(logits)``, targets ``y`` and, per class, the distance fields
    ``D_p`` of the mask ``p > 0.5`` and ``D_y`` of ``y > 0.5`` (each pixel's
    distance to the nearest pixel of the other set: inside to the background,
    outside to the foreground; 0 everywhere when the mask is empty or full)::

        loss_c = mean_valid (p_c - y_c)² (D_p,c^alpha + D_y,c^alpha)

    the mean over the valid pixels of the pooled axes, averaged over counted
    classes with ``class_weights``. The fields come from
    :func:`jaxseg.distance_transform` under ``stop_gradient``, per example and
    class, over the spatial axes. Equal to MONAI's ``HausdorffDTLoss(softmax=True,
    include_background=True)`` averaged over the batch; MONAI's default
    ``include_background=False`` is ``class_weights=[0, 1, ...]`` and its
    ``batch=True`` is ``axis=(0, 1, 2)`` (2-D). Masks of invalid pixels are empty.
    Perfect predictions give 0.

    Args:
      logits: ``[batch, *spatial, C]``, 2 or 3 spatial axes (computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float one-hot / soft
        targets ``logits.shape`` (their mask is ``y > 0.5``).
      alpha: exponent ``> 0`` of the distances.
      spacing: grid step per spatial axis (default 1).
      axis: per-pixel axes of the mean. Default ``None``: all but the first
        (batch) axis.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` weights of the class average.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxseg
      >>> labels = jnp.zeros((1, 6, 6), jnp.int32).at[0, 1:4, 1:4].set(1)
      >>> logits = jax.nn.one_hot(jnp.roll(labels, 1, axis=2), 2)  # shifted by one
      >>> jaxseg.hausdorff_dt_loss(logits, labels)
      Array([0.4915767], dtype=float32)

    References:
      Karimi & Salcudean, "Reducing the Hausdorff distance in medical image
      segmentation with convolutional neural networks", IEEE TMI 39(2), 2020.
    """
    alpha = v.check_positive("alpha", alpha)
    p, y, valid, cw, axes, counted = _setup(
        logits, labels, axis, ignore_index, where, class_weights
    )
    s = _check_loss_spacing(spacing, p)
    m = valid[..., None]
    field = lambda mask: _unsigned_field(mask, s)  # noqa: E731
    # both sides' fields in one mapped call: the transform is traced once
    d_p, d_y = jnp.split(_per_map(field, jnp.concatenate([(p > 0.5) & m, (y > 0.5) & m])), 2)
    weight = d_p**alpha + d_y**alpha
    per_class = _valid_mean((p - y) ** 2 * weight, valid, axes)
    return _average(per_class, counted, cw)


def boundary_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    spacing: Any = None,
    axis: Any = None,
    ignore_index: Any = None,
    where: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
) -> jax.Array:
    """Boundary loss (Kervadec et al. 2019): probabilities times the signed distance map.

    With ``p = softmax(logits)`` and, per class, the signed distance ``phi`` of the
    label mask ``G = (y > 0.5)``: outside ``G`` the distance to ``G``, inside
    ``1 - `` the distance to the background (0 on the inner contour, negative
    deeper in); ``phi = 0`` everywhere when ``G`` is empty or fills the image::

        loss_c = mean_valid p_c phi_c

    the mean over the valid pixels of the pooled axes, averaged over counted
    classes with ``class_weights``. ``phi`` comes from
    :func:`jaxseg.distance_transform` under ``stop_gradient`` (Kervadec et al.'s
    ``one_hot2dist``). The minimum is negative, not 0: a perfect prediction
    scores ``-mean`` of the interior depths. Kervadec et al. train with the
    foreground classes only (``class_weights=[0, 1, ...]``) and add it to a
    region loss with a weight that grows during training.

    Args:
      logits: ``[batch, *spatial, C]``, 2 or 3 spatial axes (computed in float32).
      labels: int class ids ``logits.shape[:-1]``, or float one-hot / soft
        targets ``logits.shape`` (their mask is ``y > 0.5``).
      spacing: grid step per spatial axis (default 1).
      axis: per-pixel axes of the mean. Default ``None``: all but the first
        (batch) axis.
      ignore_index: integer label id(s) to leave out.
      where: boolean mask broadcastable to ``logits.shape[:-1]``.
      class_weights: ``[C]`` weights of the class average.

    Returns:
      float32 loss with the non-pooled per-pixel axes (``[batch]`` by default).

    Examples:
      >>> import jax, jax.numpy as jnp, jaxseg
      >>> labels = jnp.zeros((1, 6, 6), jnp.int32).at[0, 1:5, 1:5].set(1)
      >>> logits = 10.0 * jax.nn.one_hot(labels, 2)
      >>> jaxseg.boundary_loss(logits, labels, class_weights=[0.0, 1.0])
      Array([-0.11107878], dtype=float32)

    References:
      Kervadec et al., "Boundary loss for highly unbalanced segmentation",
      MIDL 2019 (Medical Image Analysis 67, 2021).
    """
    p, y, valid, cw, axes, counted = _setup(
        logits, labels, axis, ignore_index, where, class_weights
    )
    s = _check_loss_spacing(spacing, p)
    phi = _per_map(lambda mask: _signed_field(mask, s), (y > 0.5) & valid[..., None])
    return _average(_valid_mean(p * phi, valid, axes), counted, cw)


# -- hard skeleton and clDice ----------------------------------------------------


#: 8-neighbour codes (bits ``NW=1, N=2, NE=4, E=8, SE=16, S=32, SW=64, W=128``) of
#: the pixels removed in the first and in the second sub-iteration. This is the
#: removal table of scikit-image's Zhang-Suen thinning, cited as data: it
#: departs from the textbook conditions (2 <= B <= 6, one 0 -> 1 transition,
#: ``N·E·S = E·S·W = 0`` / ``N·E·W = N·S·W = 0``) in 25 of 256 patterns, e.g.
#: an L-corner ``N + E`` goes in both sub-iterations and ``S + SE`` never does.
_FIRST = (3, 6, 7, 10, 11, 12, 14, 15, 28, 30, 31, 40, 60, 112, 120, 124, 130, 131)
_FIRST += (134, 135, 143, 159, 160, 161, 193, 194, 195, 198, 199, 207, 225, 227, 231)
_FIRST += (240, 241, 243)
_SECOND = (7, 10, 15, 24, 26, 28, 30, 31, 40, 56, 60, 62, 63, 96, 104, 108, 112, 120)
_SECOND += (124, 126, 130, 135, 160, 176, 192, 193, 195, 199, 224, 225, 240, 241, 248)
_SECOND += (249, 252)


def _removal_table(codes: tuple[int, ...]) -> np.ndarray:
    table = np.zeros(256, bool)
    table[list(codes)] = True
    return table


#: (row, column) offsets of the neighbour behind each bit of the code.
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _thin_step(img: jax.Array, table: jax.Array) -> jax.Array:
    """One Zhang-Suen sub-iteration (``table``: the removable codes) on a 2-D bool mask."""
    h, w = img.shape
    padded = jnp.pad(img, 1)
    code = jnp.zeros(img.shape, jnp.int32)
    for bit, (dr, dc) in enumerate(_RING):
        nb = lax.dynamic_slice(padded, (1 + dr, 1 + dc), (h, w))
        code = code | (nb.astype(jnp.int32) << bit)
    return img & ~table[code]


def skeletonize(mask: ArrayLike) -> jax.Array:
    """Skeleton of a 2-D binary mask by Zhang & Suen's thinning.

    Border pixels are peeled in two alternating parallel sub-iterations until
    nothing changes; whether a pixel goes depends on its 8 neighbours through a
    table of 256 patterns per sub-iteration (Zhang & Suen's conditions: 2 to 6
    neighbours, one 0 → 1 transition around them, ``N·E·S = E·S·W = 0`` in the
    first and ``N·E·W = N·S·W = 0`` in the second sub-iteration, as tabulated by
    scikit-image, which also removes L-corners); outside the image is
    background. Equal to ``skimage.morphology.skeletonize`` (whose 2-D default
    is Zhang's method). A ``lax.while_loop`` runs until the skeleton is stable,
    so it works under ``jit`` and ``vmap`` (for a batch). 3-D (Lee's method) is
    not provided.

    Args:
      mask: boolean (or integer, non-zero is foreground) array ``[H, W]``.

    Returns:
      bool ``[H, W]``: the one-pixel-wide skeleton.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> bar = jnp.zeros((5, 7), bool).at[1:4, 1:6].set(True)
      >>> jaxseg.skeletonize(bar).astype(int)  # as scikit-image: Zhang's ends are asymmetric
      Array([[0, 0, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 1, 0, 0],
             [0, 1, 1, 1, 0, 0, 0],
             [0, 0, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 0, 0, 0]], dtype=int32)

    References:
      Zhang & Suen, "A fast parallel algorithm for thinning digital patterns",
      Communications of the ACM 27(3), 1984.
    """
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        if not jnp.issubdtype(mask.dtype, jnp.integer):
            raise TypeError(f"`mask` must be a boolean or integer array; got dtype {mask.dtype}.")
        mask = mask != 0
    if mask.ndim != 2:
        raise ValueError(
            f"`mask` must be 2-D [H, W] (vmap for a batch); got shape {tuple(mask.shape)}."
        )
    return _skeletonize(mask)


@jax.jit
def _skeletonize(mask: jax.Array) -> jax.Array:
    first = jnp.asarray(_removal_table(_FIRST))
    second = jnp.asarray(_removal_table(_SECOND))

    def body(state):
        img, _ = state
        out = _thin_step(_thin_step(img, first), second)
        return out, jnp.any(out != img)

    img, _ = lax.while_loop(lambda s: s[1], body, (mask, jnp.bool_(True)))
    return img


@jax.jit
def _cldice_one(pm: jax.Array, lm: jax.Array) -> jax.Array:
    sp, sl = _skeletonize(pm), _skeletonize(lm)
    n_sp, n_sl = jnp.sum(sp), jnp.sum(sl)
    tprec = jnp.sum(sp & lm) / jnp.maximum(n_sp, 1)
    tsens = jnp.sum(sl & pm) / jnp.maximum(n_sl, 1)
    den = tprec + tsens
    value = 2 * tprec * tsens / jnp.where(den > 0, den, 1.0)
    both = (n_sp == 0) & (n_sl == 0)
    return jnp.where(both, jnp.nan, value.astype(jnp.float32))


def cldice(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int,
    ignore_index: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Centreline Dice (clDSC, Metrics Reloaded) per image and class.

    With the :func:`skeletonize` skeletons ``S_P``, ``S_G`` of the predicted and
    true masks of a class::

        Tprec = |S_P ∩ G| / |S_P|      Tsens = |S_G ∩ P| / |S_G|
        clDice = 2 Tprec Tsens / (Tprec + Tsens)

    Empty rule: both skeletons empty gives NaN (nothing to score, as in
    Metrics Reloaded, which divides 0 by 0); exactly one empty gives 0 (Metrics
    Reloaded gives NaN there too: here a missed or a spurious structure scores
    0), as does ``Tprec = Tsens = 0``. A non-empty mask can have an empty
    skeleton (Zhang & Suen's thinning removes a 2x2 square entirely).

    Args:
      predictions: predicted class ids, int ``[batch, H, W]``.
      labels: true class ids, same shape.
      num_classes: ``C``; the class masks are ``predictions == c`` and ``labels == c``.
      ignore_index: label id(s) whose pixels are left out of both masks; an
        ignored id inside ``[0, C)`` gives NaN for that class.
      include_background: ``False`` reports class 0 as NaN.

    Returns:
      float32 ``[batch, C]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> label = jnp.zeros((1, 7, 7), jnp.int32).at[0, 3, 1:6].set(1)
      >>> pred = jnp.zeros((1, 7, 7), jnp.int32).at[0, 2:5, 1:4].set(1)
      >>> jaxseg.cldice(pred, label, num_classes=2, include_background=False)
      Array([[       nan, 0.54545456]], dtype=float32)

    References:
      Shit et al., CVPR 2021; Maier-Hein, Reinke et al., "Metrics reloaded:
      recommendations for image analysis validation", Nature Methods 21, 2024.
    """
    c, _, ignored, p, g = _prepare(predictions, labels, num_classes, None, "monai", ignore_index)
    if p.ndim != 3:
        raise ValueError(
            "`predictions` and `labels` must have shape [batch, H, W] (2-D); "
            f"got shape {tuple(p.shape)}."
        )
    include_background = v.check_bool("include_background", include_background)
    pm, lm = _masks(p, g, c, ignored)
    values = jax.vmap(jax.vmap(_cldice_one))(pm, lm)
    return _finish(values, c, ignored, include_background)
