"""Distance and boundary metrics of ``jaxseg evaluate``: per image pair, then over the dataset.

One compiled program per *size bucket*, not per image size: each pair is padded
at the high end of every axis to a bucket shape (the next power of two up to 64
voxels, then the next multiple of 64), and the class surfaces and their
distance maps are built once per class for every requested metric (HD, HD95,
ASSD, NSD). The spacing and the tolerance enter as arguments, so a folder of
NIfTI volumes with as many spacings as files does not compile once per spacing.

Padding changes no value. The padded voxels belong to no class (prediction and
label ``-1``): a class mask is false there, which is what MONAI's erosion
assumes outside the grid, so the edge voxels are the same; the distance from an
original voxel to the nearest edge voxel is the same on a larger grid; edge
counts, and so percentiles, are the same. The boundary band (Boundary IoU) sees
the original border as contour because the padded value differs from every
class, and padded pixels count nothing. Only ASSD's float32 sum may round
differently (its terms are added in another order).

Over the dataset, the per-image values go through :class:`jaxseg.DistanceStats`:
per class, the mean of the finite values, with the NaN (class absent from both
maps, or not scored) and infinite (class in one map only) cases counted.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxseg
from jaxseg import _boundary, _distance, _io, _report
from jaxseg import _validation as v

#: ``--metrics`` names computed per image from the label maps themselves.
DISTANCE_METRICS = ("hd", "hd95", "assd", "nsd", "boundary_iou")
_SURFACE_METRICS = ("hd", "hd95", "assd", "nsd")

#: Value of padded voxels in both maps: no class (padded pixels count nothing).
_PAD = -1


def bucket(n: int) -> int:
    """The padded length of an axis of ``n``: a power of two up to 64, else a multiple of 64."""
    if n <= 64:
        return max(8, 1 << (n - 1).bit_length())
    return -(-n // 64) * 64


def _class_values(pm, lm, grid, tol, *, metrics):
    """The requested surface metrics of one class, from one pair of edge sets and EDTs.

    ``grid`` is the spacing as data (:class:`jaxseg._distance.Grid`), so one program
    serves every spacing with the library's distances, bit for bit.
    """
    n_p, n_l = jnp.sum(pm), jnp.sum(lm)
    w_p = _distance.edge_voxels(pm).astype(jnp.float32)
    w_l = _distance.edge_voxels(lm).astype(jnp.float32)
    zero = jnp.float32(0)
    d_pl = jnp.where(w_p > 0, jnp.sqrt(_distance._squared_edt(w_l > 0, grid)), zero)
    d_lp = jnp.where(w_l > 0, jnp.sqrt(_distance._squared_edt(w_p > 0, grid)), zero)
    out = []
    for m in metrics:
        if m == "hd":
            value = jnp.maximum(
                jnp.max(jnp.where(w_p > 0, d_pl, zero)), jnp.max(jnp.where(w_l > 0, d_lp, zero))
            )
            out.append(_distance._empty_rule(n_p, n_l, value, jnp.inf))
        elif m == "hd95":
            value = jnp.maximum(
                _distance._percentile(d_pl, w_p, 95.0, "monai"),
                _distance._percentile(d_lp, w_l, 95.0, "monai"),
            )
            out.append(_distance._empty_rule(n_p, n_l, value, jnp.inf))
        elif m == "assd":
            num = jnp.sum(d_pl * w_p) + jnp.sum(d_lp * w_l)
            den = jnp.sum(w_p) + jnp.sum(w_l)
            value = num / jnp.where(den > 0, den, 1)
            out.append(_distance._empty_rule(n_p, n_l, value, jnp.inf))
        else:  # nsd
            good = jnp.sum(jnp.where(d_pl <= tol, w_p, 0)) + jnp.sum(jnp.where(d_lp <= tol, w_l, 0))
            total = jnp.sum(w_p) + jnp.sum(w_l)
            value = good / jnp.where(total > 0, total, 1)
            out.append(_distance._empty_rule(n_p, n_l, value, 0.0))
    return jnp.stack(out).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("metrics", "ignored"))
def _surface_program(pred, label, classes, tol, grid, *, metrics, ignored):
    """``[K, len(metrics)]`` values for the ``K`` classes in ``classes`` (one at a time)."""
    valid = jnp.ones(label.shape, jnp.bool_)
    for i in ignored:
        valid = valid & (label != i)

    def one(args):
        c, t = args
        return _class_values(pred == c, label == c, grid, t, metrics=metrics)

    # predictions at ignored pixels count for no class, as in the library
    pred = jnp.where(valid, pred, _PAD)
    return lax.map(one, (classes, tol))


def _int32(x: np.ndarray) -> np.ndarray:
    """Class ids as int32; ids outside the int32 range become -2 (no class, never padding)."""
    x = np.asarray(x)
    info = np.iinfo(np.int32)
    return np.where((x < info.min) | (x > info.max), -2, x).astype(np.int32)


def _pad(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.pad(
        x, [(0, b - n) for n, b in zip(x.shape, shape, strict=True)], constant_values=_PAD
    )


def per_image_metrics(
    pred: np.ndarray,
    label: np.ndarray,
    *,
    num_classes: int,
    metrics: Sequence[str] = ("hd95", "assd", "nsd", "boundary_iou"),
    spacing: Any = None,
    tolerance: Any = 1.0,
    ignore_index: Any = None,
    include_background: bool = True,
    dilation_ratio: float = 0.02,
) -> dict[str, np.ndarray]:
    """Distance and boundary metrics of one pair of class maps, as host arrays.

    The values equal :func:`jaxseg.hausdorff_distance` (``percentile=None`` for
    ``"hd"``, 95 for ``"hd95"``), :func:`jaxseg.average_surface_distance`
    (``symmetric=True``, ``"assd"``), :func:`jaxseg.surface_dice` (``"nsd"``),
    all with ``definition="monai"``, and the Boundary IoU of one image
    (``jaxseg.iou`` of :class:`jaxseg.BoundaryStats`, with ``spatial_dims=3``
    for a volume), on the unpadded maps.

    Args:
      pred: predicted class ids, integer ``[*spatial]`` (2-D or 3-D).
      label: true class ids, same shape.
      num_classes: ``C``.
      metrics: entries of :data:`DISTANCE_METRICS`.
      spacing: voxel size, one number or one per axis; default 1.
      tolerance: NSD tolerance in spacing units, a number or one per class.
      ignore_index: label id(s) to leave out.
      include_background: ``False`` reports class 0 as NaN (and skips its work).
      dilation_ratio: Boundary IoU band width as a fraction of the image diagonal.

    Returns:
      ``{name: float64 [C]}``; with ``"boundary_iou"`` also
      ``"boundary_iou_counts"``, int64 ``[4, C]`` (band ``tp, fp, fn, tn``).

    Examples:
      >>> import numpy as np
      >>> label = np.zeros((6, 6), np.int32); label[1:5, 1:5] = 1
      >>> out = per_image_metrics(label, label, num_classes=2, metrics=("hd95", "nsd"))
      >>> out["hd95"], out["nsd"]
      (array([0., 0.]), array([1., 1.]))
    """
    unknown = [m for m in metrics if m not in DISTANCE_METRICS]
    if unknown or isinstance(metrics, str):
        raise ValueError(f"`metrics` entries must be in {list(DISTANCE_METRICS)}; got {metrics!r}.")
    c = v.check_num_classes(num_classes)
    pred, label = _int32(pred), _int32(label)
    if pred.shape != label.shape or pred.ndim not in (2, 3):
        raise ValueError(
            f"`pred` and `label` must have one shape with 2 or 3 axes; got {pred.shape} "
            f"and {label.shape}."
        )
    ignored = v.normalize_ignore_index(ignore_index)
    off = set(v.class_ids_in_range(ignored, c)) | (set() if include_background else {0})
    classes = np.array([k for k in range(c) if k not in off], np.int32)
    shape = tuple(bucket(n) for n in pred.shape)
    p, g = _pad(pred, shape), _pad(label, shape)
    out: dict[str, np.ndarray] = {}
    surface = tuple(m for m in _SURFACE_METRICS if m in metrics)
    if surface:
        s = _distance._check_spacing(spacing, pred.ndim)
        tol = np.broadcast_to(np.asarray(tolerance, np.float32), (c,))[classes]
        values = np.full((len(surface), c), np.nan)
        if classes.size:
            got = _surface_program(
                p,
                g,
                classes,
                tol,
                _distance.grid(s, shape),
                metrics=surface,
                ignored=ignored,
            )
            values[:, classes] = np.asarray(got, np.float64).T
        out.update(zip(surface, values, strict=True))
    if "boundary_iou" in metrics:
        counts = boundary_counts(p, g, pred.shape, c, ignored, dilation_ratio)
        tp, fp, fn = (counts[k].astype(np.float64) for k in range(3))
        den = tp + fp + fn
        biou = np.divide(tp, den, out=np.full(c, np.nan), where=den > 0)
        biou[sorted(off)] = np.nan
        out["boundary_iou"] = biou
        out["boundary_iou_counts"] = counts
    return {m: out[m] for m in (*metrics, "boundary_iou_counts") if m in out}


def boundary_counts(
    pred: np.ndarray,
    label: np.ndarray,
    shape: tuple[int, ...],
    num_classes: int,
    ignored: tuple[int, ...],
    dilation_ratio: float,
) -> np.ndarray:
    """Band counts ``int64 [4, C]`` of maps padded from ``shape``, as the unpadded maps give.

    Images have 2-D bands; volumes 3-D bands (a 3x3x3 erosion, the width from
    the volume diagonal), as ``BoundaryStats(spatial_dims=3)``.
    """
    ratio = float(v.check_positive("dilation_ratio", dilation_ratio))
    *depth, h, w = shape
    d = _boundary.band_width(h, w, ratio, *depth)
    where = np.zeros(pred.shape, bool)
    where[tuple(slice(0, n) for n in shape)] = True
    counts, _ = _boundary._band_counts(
        pred, label, num_classes, d, ignored, where, spatial_dims=len(shape)
    )
    return np.asarray(counts, np.int64)


# -- over the dataset ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Summary:
    """Dataset summary of one distance metric (float64 host arrays ``[C]``)."""

    mean: np.ndarray  # mean of the finite values per class (NaN where none)
    finite: np.ndarray  # counts of finite, NaN and infinite per-image values
    nan: np.ndarray
    inf: np.ndarray
    scored: np.ndarray  # classes that enter the mean over classes
    macro: float  # mean over scored classes with a finite mean


def summarize(values: np.ndarray, scored: np.ndarray) -> Summary:
    """Aggregate per-image values ``[N, C]`` with :class:`jaxseg.DistanceStats`.

    ``scored`` marks the classes that count (not ignored, not the excluded
    background); the others report NaN and no cases. The mean over classes is
    the mean of the per-class means that are finite (a class missed in every
    image has none; its infinite cases are counted).
    """
    values = np.asarray(values, np.float64)
    state = jaxseg.DistanceStats.from_values(jnp.asarray(values, jnp.float32))
    mean = np.where(scored, np.asarray(state.compute(), np.float64), np.nan)
    finite, nan, inf = (
        np.where(scored, np.asarray(n, np.int64), 0)
        for n in (state.num_finite, state.num_nan, state.num_inf)
    )
    ok = scored & np.isfinite(mean)
    macro = float(mean[ok].mean()) if ok.any() else math.nan
    return Summary(mean, finite, nan, inf, scored, macro)


def check_spacing(spacing: Any, ndim: int, path: str | None) -> None:
    """Raise :class:`~jaxseg._io.InputError` when ``spacing`` does not fit ``ndim`` axes."""
    try:
        _distance._check_spacing(spacing, ndim)
    except (TypeError, ValueError) as e:
        raise _io.InputError(path, f"--spacing: {e}") from None


def add_to_report(
    report: dict[str, Any], values: dict[str, np.ndarray], *, scored: np.ndarray
) -> None:
    """Add the distance columns, means, case counts and per-image values to ``report``.

    Args:
      report: the dict of :func:`jaxseg._report.class_report`, with ``images``.
      values: ``{name: float64 [N, C]}`` per-image values.
      scored: bool ``[C]``, the classes that enter the means.
    """
    report["extra_columns"] = list(values)
    report["titles"] = {m: _report.METRICS[m].title for m in values}
    report["distance_cases"] = {}
    for name, vals in values.items():
        s = summarize(vals, scored)
        for r in report["classes"]:
            i = r["id"]
            r[name] = _report._float32(s.mean[i])
            r[f"{name}_cases"] = {
                "finite": int(s.finite[i]),
                "nan": int(s.nan[i]),
                "inf": int(s.inf[i]),
            }
        report[f"mean_{name}"] = s.macro
        report["distance_cases"][name] = {
            "finite": int(s.finite.sum()),
            "nan": int(s.nan.sum()),
            "inf": int(s.inf.sum()),
        }
        for entry, row in zip(report["images"], vals, strict=True):
            entry[name] = [_report.json_value(x) for x in row]
    report["distance_classes"] = [int(i) for i in np.flatnonzero(scored)]
