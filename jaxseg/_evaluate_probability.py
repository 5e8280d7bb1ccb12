"""Probability maps in ``jaxseg evaluate``: one exact :class:`jaxseg.ProbabilityHistogram`.

Each pair's probabilities ``[..., C]`` and labels are flattened to pixels and
padded to a *bucket* of ``2**k`` pixels (at least ``2**16``) with padded pixels
masked out by ``where``: a folder of any mix of image sizes compiles the update
once per bucket, not once per size, and padding changes no count (the state is
exact, so the padded pixels, left out, add nothing). The per-image states are
merged into one dataset state, and every number of the report is the library's
function of it: :func:`jaxseg.expected_calibration_error`, :func:`jaxseg.auroc`,
:func:`jaxseg.average_precision`, :func:`jaxseg.best_threshold`,
:func:`jaxseg.reliability_diagram`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import _probability as prob
from jaxseg._scores import dice

#: Default ``--bins``: thresholds and curves on a 0.01 grid (AUROC and AP of the
#: bin-quantised scores), while a segmentation set still puts thousands of pixels
#: in every populated bin, so the ECE is not dominated by few-sample bins.
DEFAULT_BINS = 100
#: Smallest padded size (pixels) of one update.
MIN_BUCKET = 1 << 16


def bucket(n: int) -> int:
    """The padded pixel count of an image of ``n`` pixels: the next power of two."""
    return max(MIN_BUCKET, 1 << max(n - 1, 0).bit_length())


@functools.partial(jax.jit, static_argnames=("num_bins", "exclusive", "ignore"))
def _update(
    probs: jax.Array,
    labels: jax.Array,
    where: jax.Array,
    *,
    num_bins: int,
    exclusive: bool,
    ignore: tuple[int, ...],
) -> prob.ProbabilityHistogram:
    if exclusive:
        return prob.ProbabilityHistogram.from_probabilities(
            probs, labels, num_bins=num_bins, ignore_index=ignore or None, where=where
        )
    # independent channels: channel c is positive where the label is c (one-vs-rest)
    onehot = (labels[:, None] == jnp.arange(probs.shape[-1])[None, :]).astype(jnp.int32)
    return prob.ProbabilityHistogram.from_probabilities(
        probs, onehot, num_bins=num_bins, exclusive=False, where=where
    )


_merge = jax.jit(lambda a, b: a.merge(b))


class Accumulator:
    """Streams (probabilities, labels, kept pixels) into one dataset state."""

    def __init__(
        self, num_classes: int, *, num_bins: int, exclusive: bool, ignore: Sequence[int]
    ) -> None:
        self.num_bins = num_bins
        self.exclusive = exclusive
        self.ignore = tuple(sorted({int(i) for i in ignore if 0 <= i < num_classes}))
        if not exclusive:
            self.ignore = ()
        self.state = prob.ProbabilityHistogram.empty(
            num_classes,
            num_bins=num_bins,
            exclusive=exclusive,
            ignore_index=self.ignore or None,
        )
        self.buckets: set[int] = set()

    def add(self, probs: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> None:
        """``probs`` float32 ``[..., C]``; ``labels`` class ids ``[...]`` (any value where
        ``keep`` is false); ``keep`` bool ``[...]``."""
        c = probs.shape[-1]
        n = keep.size
        size = bucket(n)
        self.buckets.add(size)
        if n == size:  # a power of two already (1024 x 2048): no copy
            p = probs.reshape(n, c)
            lab = np.where(keep, labels, 0).astype(np.int32).reshape(n)
            where = keep.reshape(n)
        else:
            p = np.zeros((size, c), np.float32)
            p[:n] = probs.reshape(n, c)
            lab = np.zeros(size, np.int32)
            lab[:n] = np.where(keep, labels, 0).reshape(n)
            where = np.zeros(size, bool)
            where[:n] = keep.reshape(n)
        h = _update(
            p,
            lab,
            where,
            num_bins=self.num_bins,
            exclusive=self.exclusive,
            ignore=self.ignore,
        )
        self.state = _merge(self.state, h)


@functools.partial(jax.jit, static_argnames=("include_background",))
def _scores(h: prob.ProbabilityHistogram, include_background: bool) -> dict[str, Any]:
    kw = {"include_background": include_background}
    threshold, best = prob.best_threshold(h, dice)
    out = {
        "ece": prob.expected_calibration_error(h, average=None),
        "mean_ece": prob.expected_calibration_error(h, **kw),
        "auroc": prob.auroc(h, average=None),
        "mean_auroc": prob.auroc(h, **kw),
        "ap": prob.average_precision(h, average=None),
        "mean_ap": prob.average_precision(h, **kw),
        "best_threshold": threshold,
        "best_dice": best,
        "dice_at_half": dice(h.at_threshold(0.5), average=None),
        "reliability": prob.reliability_diagram(h),
        "invalid": h.num_invalid,
    }
    if h.exclusive:
        out["top_label_ece"] = prob.expected_calibration_error(h, mode="top_label")
        out["top_label_mce"] = prob.expected_calibration_error(h, mode="top_label", norm="max")
        out["top_label_reliability"] = prob.reliability_diagram(h, mode="top_label")
    return out


def scores(h: prob.ProbabilityHistogram, *, include_background: bool) -> dict[str, Any]:
    """Every number of the report, as NumPy (float64) arrays: the library's functions of ``h``."""
    out = jax.tree.map(lambda x: np.asarray(x, np.float64), _scores(h, include_background))
    counted = np.asarray(h.counted_classes, bool) & ~np.isnan(out["best_dice"])
    if not include_background:
        counted[0] = False
    out["mean_best_dice"] = float(out["best_dice"][counted].mean()) if counted.any() else np.nan
    out["in_averages"] = counted
    return out
