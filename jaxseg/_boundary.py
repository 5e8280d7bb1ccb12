"""Boundary IoU and boundary F-score as exact count states, and a state for distances.

:class:`BoundaryStats` counts, per class, the overlap of the *boundary bands*
of the predicted and true masks (Cheng et al. 2021). :class:`DistanceStats`
accumulates per-image distance metrics (HD, ASD, NSD) over a dataset. Both
merge, reduce and psum like :class:`~jaxseg.ConfusionMatrix`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseg import _counts
from jaxseg import _validation as v
from jaxseg._state import LIMBS, _configured, _static, _StatRows, argmax_of_logits, label_maps

ArrayLike = jax.typing.ArrayLike


#: Spatial axes a band can have: images (boundary-iou-api) and volumes (jaxseg's extension).
SPATIAL_DIMS = (2, 3)


def band_width(height: int, width: int, dilation_ratio: float, depth: int = 0) -> int:
    """``d = max(1, round(dilation_ratio * sqrt(D^2 + H^2 + W^2)))``, the image or volume diagonal.

    ``depth=0`` is boundary-iou-api's 2-D width (the volume's diagonal is
    jaxseg's extension to 3-D).
    """
    return max(1, round(dilation_ratio * math.sqrt(depth**2 + height**2 + width**2)))


def _shift(x: jax.Array, s: int, axis: int) -> jax.Array:
    """``x[i + s]`` along ``axis``, ``False`` (zero) beyond the ends."""
    if s == 0:
        return x
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (-s, s, 0)
    return lax.pad(x, jnp.zeros((), x.dtype), config)


#: Pixels per packed word along the first spatial axis of the band.
_WORD = 32


def _shift_bits(w: jax.Array, s: int, axis: int) -> jax.Array:
    """Bits packed ``_WORD`` per word along ``axis``: bit ``i`` of the result is bit
    ``i + s`` of ``w`` (zero beyond the ends)."""
    q, m = divmod(abs(s), _WORD)
    w = _shift(w, q if s > 0 else -q, axis)
    if m == 0:
        return w
    if s > 0:
        return (w >> m) | (_shift(w, 1, axis) << (_WORD - m))
    return (w << m) | (_shift(w, -1, axis) >> (_WORD - m))


def _any_in_window(f: jax.Array, lo: int, hi: int, axis: int, shift: Any = _shift) -> jax.Array:
    """``out[p] = any(f[p + lo], ..., f[p + hi])`` along ``axis`` (clipped at the ends).

    Doubling (van Herk / Gil-Werman's idea for a running extremum, in log steps):
    ``g_m[i] = any(f[i : i + m])`` for ``m = 1, 2, 4, ...`` up to the largest
    power ``m <= L = hi - lo + 1``, then the window is two overlapping runs,
    ``g_m[p + lo] | g_m[p + hi - m + 1]``: ``O(log L)`` passes whatever ``L``.
    ``shift=_shift_bits`` does the same on bits packed along ``axis``.
    """
    length = hi - lo + 1
    g, m = f, 1
    while 2 * m <= length:
        g = g | shift(g, m, axis)
        m *= 2
    out = shift(g, lo, axis)
    if m < length:
        out = out | shift(g, hi - m + 1, axis)
    return out


def _pack(b: jax.Array, axis: int) -> jax.Array:
    """Booleans -> uint32 words of ``_WORD`` bits along ``axis`` (zero-padded at the end)."""
    n = b.shape[axis]
    words = -(-n // _WORD)
    pad = [(0, 0)] * b.ndim
    pad[axis] = (0, words * _WORD - n)
    shape = (*b.shape[:axis], words, _WORD, *b.shape[axis + 1 :])
    b = jnp.pad(b, pad).reshape(shape).astype(jnp.uint32)
    # a reduction: XLA keeps it one pass (an elementwise packing is re-fused into every use)
    return jnp.sum(b << lax.broadcasted_iota(jnp.uint32, shape, axis + 1), axis + 1, jnp.uint32)


def _unpack(w: jax.Array, axis: int, n: int) -> jax.Array:
    """uint32 words along ``axis`` -> the first ``n`` booleans."""
    shape = (*w.shape[: axis + 1], _WORD, *w.shape[axis + 1 :])
    bits = (jnp.expand_dims(w, axis + 1) >> lax.broadcasted_iota(jnp.uint32, shape, axis + 1)) & 1
    bits = bits.reshape((*w.shape[:axis], w.shape[axis] * _WORD, *w.shape[axis + 1 :]))
    return lax.slice_in_dim(bits, 0, n, axis=axis) != 0


def boundary_band(label_map: jax.Array, d: int, spatial_dims: int = 2) -> jax.Array:
    """Pixels within Chebyshev distance ``d`` of another class or of the image border.

    For every class ``c`` this equals, on the pixels of class ``c``, the band
    ``M_c - erode(M_c)`` of boundary-iou-api's ``mask_to_boundary`` (3x3
    erosion iterated ``d`` times, the image padded with background), whatever
    the number of classes. With ``spatial_dims=3`` the last three axes are a
    volume and the erosion a 3x3x3 cube (jaxseg's extension).

    A pixel is in the band iff its ``(2d+1)^k`` window (clipped at the border)
    is not constant, or it lies within ``d`` of the border. Separably: the window
    over axes ``1..a`` is not constant iff a window over axes ``1..a-1`` within
    ``d`` along axis ``a`` is not constant, or the labels change between two
    neighbours along axis ``a`` within the window (``x[i] != x[i+1]`` for
    ``p - d <= i < p + d``). Each axis is then boolean "any in a window" passes
    by doubling: ``O(log d)`` passes, where a running min / max window costs ``O(d)``.
    The flags are packed 32 to a uint32 word along the first spatial axis (which
    is processed first, so that the padding bits never reach a pixel), and every
    pass works on words.
    """
    x = label_map.astype(jnp.int32)
    first = x.ndim - spatial_dims
    out = None
    for axis in range(first, x.ndim):
        n = x.shape[axis]
        inside = lax.broadcasted_iota(jnp.int32, x.shape, axis) < n - 1
        change = _pack((x != _shift(x, 1, axis)) & inside, first)  # x[i] != x[i + 1]
        shift = _shift_bits if axis == first else _shift
        if out is None:
            out = _any_in_window(change, -d, d - 1, axis, shift)
        else:  # the window of the earlier axes at offsets -d..d, the changes at -d..d-1
            out = _any_in_window(out | change, -d, d - 1, axis, shift) | shift(out, d, axis)
    dims = label_map.shape[-spatial_dims:]
    near = np.zeros(dims, bool)
    for axis, n in enumerate(dims):
        i = np.arange(n)
        shape = [1] * spatial_dims
        shape[axis] = n
        near = near | ((i < d) | (i >= n - d)).reshape(shape)
    band = _unpack(out, first, x.shape[first])
    return band | jnp.asarray(near.reshape((1,) * (x.ndim - spatial_dims) + dims))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BoundaryStats(_StatRows):
    """Exact per-class boundary-band counts: Boundary IoU and boundary F-score.

    The band of a class mask ``M`` is ``M_d = M - erode_d(M)``: the pixels of
    ``M`` within Chebyshev distance ``d`` of a pixel outside ``M`` or of the
    image border, ``d = max(1, round(dilation_ratio * sqrt(H^2 + W^2)))``
    (boundary-iou-api's ``mask_to_boundary``). With ``spatial_dims=3`` the
    last three axes are a volume: a 3x3x3 erosion and the volume's diagonal
    ``sqrt(D^2 + H^2 + W^2)`` (jaxseg's extension; the API is 2-D only). With
    ``G_d``, ``P_d`` the bands of the true and predicted masks of class ``c``::

        tp_c = |G_d ∩ P_d|   fp_c = |P_d \\ G_d|   fn_c = |G_d \\ P_d|
        tn_c = N - tp_c - fp_c - fn_c

    so ``jaxseg.iou(state)`` is the Boundary IoU ``|G_d ∩ P_d| / |G_d ∪ P_d|``
    pooled over everything merged (dataset level), ``jaxseg.dice(state)`` the
    boundary F-score of the band overlap, ``precision`` / ``recall`` its parts.
    Images are the last two axes (volumes the last three with
    ``spatial_dims=3``); leading axes are pooled (``vmap`` for per-image
    states). Ignored label pixels count nothing, but the band is computed on
    the full maps, so a border with an ignored region is a boundary.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> label = jnp.zeros((8, 8), jnp.int32).at[2:6, 2:6].set(1)
      >>> pred = jnp.zeros((8, 8), jnp.int32).at[2:6, 3:7].set(1)
      >>> s = jaxseg.BoundaryStats.from_predictions(pred, label, num_classes=2)
      >>> s.to_numpy()  # rows tp, fp, fn, tn
      array([[38,  6],
             [ 4,  6],
             [10,  6],
             [12, 46]])
      >>> jaxseg.iou(s, average=None)
      Array([0.7307692 , 0.33333334], dtype=float32)

    Attributes:
      counts: ``uint32 [..., 4, C, 3]`` limbs of ``(tp, fp, fn, tn)``.
      invalid: ``uint32 [..., 3]`` limbs of the count of labels outside ``[0, C)``.
      num_classes: ``C`` (static).
      ignore_classes: ignored ids inside ``[0, C)`` (static).

    References:
      Cheng, Girshick, Dollár, Berg & Kirillov, "Boundary IoU: Improving
      Object-Centric Image Segmentation Evaluation", CVPR 2021.
    """

    counts: jax.Array = dataclasses.field(metadata=LIMBS)
    invalid: jax.Array = dataclasses.field(metadata=LIMBS)
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    exclusive: ClassVar[bool] = False

    @classmethod
    def empty(cls, num_classes: int, *, ignore_index: Any = None) -> BoundaryStats:
        """The identity of :meth:`merge`: all counts zero."""
        c = v.check_num_classes(num_classes)
        return cls._from_limbs(
            c,
            v.normalize_ignore_index(ignore_index),
            counts=_counts.zeros((4, c)),
            invalid=_counts.zeros(()),
        )

    @classmethod
    def from_predictions(
        cls,
        preds: ArrayLike,
        labels: ArrayLike,
        *,
        num_classes: int,
        dilation_ratio: float = 0.02,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
        spatial_dims: int = 2,
    ) -> BoundaryStats:
        """Count the boundary bands of integer label maps ``[..., H, W]`` (or volumes).

        Args:
          preds: predicted class ids, int ``[..., H, W]`` (``[..., D, H, W]``
            with ``spatial_dims=3``).
          labels: true class ids, same shape.
          num_classes: ``C``.
          dilation_ratio: band width as a fraction of the image diagonal, > 0.
          ignore_index: label id(s) whose pixels count nothing.
          where: boolean mask broadcastable to ``labels.shape``; false pixels
            count nothing (the bands are still computed on the whole maps).
          spatial_dims: 2 (images: the band of each ``[H, W]`` slice) or 3
            (volumes: a 3x3x3 erosion and the volume diagonal).

        Returns:
          A state with counts ``[4, C]`` (leading axes pooled).
        """
        c = v.check_num_classes(num_classes)
        preds, labels = label_maps(preds, labels)
        k = _check_spatial_dims(spatial_dims)
        if labels.ndim < k:
            axes = "[..., H, W]" if k == 2 else "[..., D, H, W]"
            raise ValueError(f"`labels` must have shape {axes}; got shape {tuple(labels.shape)}.")
        ratio = v.check_positive("dilation_ratio", dilation_ratio)
        ignored = v.normalize_ignore_index(ignore_index)
        mask = v.broadcast_where(where, labels.shape)
        *depth, h, w = labels.shape[-k:]
        d = band_width(h, w, float(ratio), *depth)
        counts, invalid = _band_counts(preds, labels, c, d, ignored, mask, spatial_dims=k)
        return cls._from_limbs(
            c, ignored, counts=_counts.from_int(counts), invalid=_counts.from_int(invalid)
        )

    @classmethod
    def from_logits(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        *,
        dilation_ratio: float = 0.02,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
        spatial_dims: int = 2,
    ) -> BoundaryStats:
        """:meth:`from_predictions` of ``argmax(logits, -1)``; ``logits [..., H, W, C]``."""
        preds, labels, c = argmax_of_logits(logits, labels)
        return cls.from_predictions(
            preds,
            labels,
            num_classes=c,
            dilation_ratio=dilation_ratio,
            ignore_index=ignore_index,
            where=where,
            spatial_dims=spatial_dims,
        )

    @classmethod
    def configure(
        cls,
        num_classes: int,
        *,
        dilation_ratio: float = 0.02,
        ignore_index: Any = None,
        spatial_dims: int = 2,
    ) -> type[BoundaryStats]:
        """A subclass with the class count, band ratio and ignored ids bound, for CLU.

        Args:
          num_classes: ``C``.
          dilation_ratio: band width as a fraction of the image diagonal.
          ignore_index: label id(s) to leave out.
          spatial_dims: 2 (images) or 3 (volumes), as in :meth:`from_predictions`.

        Returns:
          A registered pytree subclass of this class.

        Examples:
          >>> import jaxseg
          >>> Metric = jaxseg.BoundaryStats.configure(3, ignore_index=255)
          >>> Metric.empty().to_numpy().shape
          (4, 3)
        """
        c = v.check_num_classes(num_classes)
        ratio = float(v.check_positive("dilation_ratio", dilation_ratio))
        ignored = v.normalize_ignore_index(ignore_index)
        bound = (("dilation_ratio", ratio), ("ignore_index", ignored))
        if _check_spatial_dims(spatial_dims) != 2:
            bound += (("spatial_dims", spatial_dims),)
        return _configured(cls, c, (("ignore_index", ignored),), bound)

    # tp, fp, fn, tn of the bands: |G_d ∩ P_d|, |P_d \ G_d|, |G_d \ P_d|, neither band.


def _check_spatial_dims(spatial_dims: Any) -> int:
    if isinstance(spatial_dims, bool) or spatial_dims not in SPATIAL_DIMS:
        raise ValueError(
            f"`spatial_dims` must be one of {list(SPATIAL_DIMS)}; got {v._show(spatial_dims)}."
        )
    return int(spatial_dims)


@functools.partial(jax.jit, static_argnums=(2, 3, 4), static_argnames="spatial_dims")
def _band_counts(preds, labels, c, d, ignored, where, *, spatial_dims=2):
    """int32 ``[4, C]`` band counts and the invalid-label count of one call."""
    g_band = boundary_band(labels, d, spatial_dims)
    p_band = boundary_band(preds, d, spatial_dims)
    valid = jnp.ones(labels.shape, jnp.bool_) if where is None else where
    for i in ignored:
        valid = valid & (labels != i)
    in_range = (labels >= 0) & (labels < c)
    counted = valid & in_range
    invalid = jnp.sum(valid & ~in_range, dtype=jnp.int32)
    same = preds == labels
    pred_ok = (preds >= 0) & (preds < c)
    dump = 3 * c
    lab = jnp.clip(labels, 0, c - 1)
    prd = jnp.clip(preds, 0, c - 1)
    # label side: tp (both bands, same class) or fn, keyed by the label's class
    both = g_band & p_band & same
    key_l = jnp.where(counted & g_band, jnp.where(both, 0, 2 * c) + lab, dump)
    # prediction side: fp, keyed by the predicted class
    key_p = jnp.where(counted & pred_ok & p_band & ~(g_band & same), c + prd, dump)
    # two bincounts: a concatenation of the keys first costs as much as both (CPU)
    hist = jnp.bincount(key_l.reshape(-1), length=dump + 1)
    hist = hist + jnp.bincount(key_p.reshape(-1), length=dump + 1)
    hist = hist[:dump].astype(jnp.int32).reshape(3, c)
    n = jnp.sum(counted, dtype=jnp.int32)
    tn = n - hist.sum(0)
    return jnp.concatenate([hist, tn[None]], axis=0), invalid
