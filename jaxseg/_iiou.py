"""Instance-weighted IoU (Cityscapes' iIoU): per-image terms on the host or under ``jit``.

Cityscapes scores a class ``c`` by an IoU whose true positives and false
negatives are weighted per ground-truth instance ``i`` of the class,
``w_i = avg_size[c] / |i|`` (``avg_size`` is the dataset's average instance
size of the class), so that a missed small pedestrian costs as much as a missed
large one::

    iIoU_c = sum_i w_i tp_i / (sum_i w_i tp_i + fp_c + sum_i w_i fn_i)

where ``tp_i`` counts the pixels of instance ``i`` predicted as ``c``, ``fn_i =
|i| - tp_i`` and ``fp_c`` (unweighted) the valid pixels of another class
predicted as ``c``. A category (a group of classes, e.g. Cityscapes' human and
vehicle) is scored the same way with "predicted as a class of the category".

Instances come from panoptic ids ``class * label_divisor + k`` (``k >= 0``);
smaller ids (stuff, or Cityscapes' crowd regions, which keep the plain class
id) belong to no instance, and so do ids of classes without an average size.

This module holds the one computation of those terms, written once for NumPy
(the command line: exact integer counts and float64 weights, no JAX import)
and for JAX (:class:`jaxseg.InstanceIoUStats`: under ``jit`` and ``vmap``,
with static shapes). Per image, with ``d = label_divisor``, instance ids are
binned by a ``bincount`` of length ``C * d`` (no sort, no cap on the number of
instances): sizes and hits per instance are exact integers, each instance's
weight is ``avg_size / |i|`` and its weighted terms ``tp_i * w_i`` and
``fn_i * w_i`` are formed as cityscapesScripts forms them, then summed per
class (in float64 on the host; in the JAX float type, float32 unless
``jax_enable_x64``, on the device).

Reference: cityscapesScripts, ``evaluation/evalPixelLevelSemanticLabeling.py``
(``evaluateImgLists`` with ``evalInstLevelScore=True``); Cordts et al., "The
Cityscapes Dataset for Semantic Urban Scene Understanding", CVPR 2016.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxseg import _validation as v
from jaxseg._classwise import array_module
from jaxseg._lazy import jnp

#: Cityscapes' average instance size per evaluated instance class, by labelId
#: (cityscapesScripts' ``avgClassSize``; caravan and trailer are not evaluated).
CITYSCAPES_AVG_CLASS_SIZE = {
    24: 3462.4756337644,  # person
    25: 3930.4788056518,  # rider
    26: 12794.0202738185,  # car
    27: 27855.1264367816,  # truck
    28: 35732.1511111111,  # bus
    31: 67583.7075812274,  # train
    32: 6298.7200839748,  # motorcycle
    33: 4672.3249222261,  # bicycle
}
#: Cityscapes' instance categories by labelId (vehicle includes caravan and trailer).
CITYSCAPES_CATEGORIES = {"human": (24, 25), "vehicle": (26, 27, 28, 29, 30, 31, 32, 33)}
#: labelIds not evaluated (``ignoreInEval``): their pixels are no false positives.
CITYSCAPES_IGNORED = (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30)
#: labelIds 0..33.
CITYSCAPES_NUM_CLASSES = 34


@dataclasses.dataclass(frozen=True)
class Settings:
    """Static settings of the iIoU: checked once, hashable."""

    num_classes: int
    class_sizes: tuple[float, ...]  # [C]; 0 for a class without instances
    category_names: tuple[str, ...]
    category_of: tuple[int, ...]  # [C]; -1 for a class in no category
    label_divisor: int
    ignore_classes: tuple[int, ...]

    @property
    def num_groups(self) -> int:
        return self.num_classes + len(self.category_names)


def settings(
    num_classes: Any,
    class_sizes: Any,
    categories: Any = None,
    label_divisor: Any = 1000,
    ignore_index: Any = None,
) -> Settings:
    """Check and freeze the iIoU settings (errors name the argument)."""
    c = v.check_num_classes(num_classes)
    if isinstance(label_divisor, bool) or not isinstance(label_divisor, int | np.integer):
        raise TypeError(f"`label_divisor` must be a positive int; got {label_divisor!r}.")
    d = int(label_divisor)
    if d < 1 or c * d >= 2**31:
        raise ValueError(
            f"`label_divisor` must be positive with num_classes * label_divisor < 2**31; "
            f"got {d} (num_classes={c})."
        )
    if not isinstance(class_sizes, Mapping) or not class_sizes:
        raise TypeError(
            "`class_sizes` must be a non-empty mapping {class id: average instance size}; "
            f"got {class_sizes!r}."
        )
    sizes = [0.0] * c
    for k, s in class_sizes.items():
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < c:
            raise ValueError(f"`class_sizes`: class ids must be ints in [0, {c}); got {k!r}.")
        if isinstance(s, bool) or not isinstance(s, int | float) or not (0 < s < math.inf):
            raise ValueError(
                f"`class_sizes`: sizes must be positive finite numbers; got {s!r} for class {k}."
            )
        sizes[int(k)] = float(s)
    categories = {} if categories is None else categories
    if not isinstance(categories, Mapping):
        raise TypeError(
            f"`categories` must be a mapping {{name: class ids}} or None; got {categories!r}."
        )
    category_of = [-1] * c
    for j, (name, ids) in enumerate(categories.items()):
        if not isinstance(name, str):
            raise TypeError(f"`categories`: names must be strings; got {name!r}.")
        for k in tuple(ids):
            if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < c:
                raise ValueError(
                    f"`categories`: class ids must be ints in [0, {c}); got {k!r} in {name!r}."
                )
            if category_of[int(k)] not in (-1, j):
                raise ValueError(f"`categories`: class {k} is in two categories.")
            category_of[int(k)] = j
    ignore = v.class_ids_in_range(v.normalize_ignore_index(ignore_index), c)
    return Settings(c, tuple(sizes), tuple(categories), tuple(category_of), d, ignore)


#: cityscapesScripts' settings on labelIds (built without normalising ``ignore_index``,
#: which would import JAX: the command line uses them on the host).
CITYSCAPES = dataclasses.replace(
    settings(CITYSCAPES_NUM_CLASSES, CITYSCAPES_AVG_CLASS_SIZE, CITYSCAPES_CATEGORIES, 1000),
    ignore_classes=CITYSCAPES_IGNORED,
)


def _bincount(xp: Any, x: Any, length: int) -> Any:
    if xp is np:
        return np.bincount(x, minlength=length)
    return jnp.bincount(x, length=length)


def image_terms(
    pred: Any, label: Any, instances: Any, s: Settings, valid: Any = None, float_dtype: Any = None
) -> tuple[Any, Any]:
    """The iIoU terms of one image: ``(weighted [2, G], fp [G])``, ``G = C + K``.

    ``weighted`` holds the weighted true positives and false negatives of the
    classes then the categories (float64 on the host), ``fp`` the exact false
    positive counts (``int64`` on the host, ``int32`` on the device). Inputs are
    flat integer arrays of one image; ``valid`` (optional, boolean) leaves
    pixels out of everything. On the host only the pixels with an instance id
    (``>= label_divisor``) are gathered for the instance sums.
    """
    xp = array_module(pred, label, instances, valid)
    itype = np.int64 if xp is np else jnp.int32
    ftype = np.float64 if xp is np else float_dtype
    pred, label, instances = (xp.asarray(a) for a in (pred, label, instances))
    fp = _false_positives(xp, _table(xp, pred, label, s, valid, itype), s)
    if xp is np:
        keep = instances >= s.label_divisor
        if valid is not None:
            keep &= valid
        sel = np.flatnonzero(keep)
        pred, instances = pred[sel], instances[sel]
    elif valid is not None:
        instances = xp.where(valid, instances, -1)
    return _instance_sums(xp, pred.astype(itype), instances.astype(itype), s, ftype), fp


def _table(xp: Any, pred: Any, label: Any, s: Settings, valid: Any, itype: Any) -> Any:
    """Counts ``[C + 1, C + 1]``: rows valid labels (row ``C``: ignored or out of range),
    columns predictions (column ``C``: void)."""
    c = s.num_classes
    row_of = np.arange(c + 1)
    row_of[list(s.ignore_classes)] = c
    if xp is np and valid is None and label.dtype == pred.dtype == np.uint8 and c < 256:
        # 8-bit maps on the host: one bincount of label << 8 | pred, folded by two tables
        code = label.astype(np.intp) << 8
        code |= pred
        joint = np.bincount(code, minlength=1 << 16)
        ids = np.minimum(np.arange(256), c)
        cells = row_of[ids][:, None] * (c + 1) + ids[None, :]
        return np.bincount(cells.ravel(), joint, (c + 1) ** 2).astype(np.int64).reshape(c + 1, -1)
    label, pred = label.astype(itype), pred.astype(itype)
    rows = xp.asarray(row_of.astype(itype))[xp.where((label >= 0) & (label < c), label, c)]
    if valid is not None:
        rows = xp.where(valid, rows, c)
    cols = xp.where((pred >= 0) & (pred < c), pred, c)
    return _bincount(xp, rows * (c + 1) + cols, (c + 1) ** 2).reshape(c + 1, c + 1)


def _false_positives(xp: Any, table: Any, s: Settings) -> Any:
    """``fp [C + K]``: valid pixels of another class (of a class outside the category)
    predicted as the class (as a class of the category)."""
    c = s.num_classes
    m = table[:c, :c]
    fp_cls = m.sum(0) - xp.diagonal(m)
    member = np.arange(len(s.category_names))[:, None] == np.array(s.category_of)[None, :]
    a = xp.asarray(member.astype(np.int64)).astype(m.dtype)  # [K, C]
    into = m @ a.T  # [C, K]: pixels of label class r predicted into category g
    fp_cat = into.sum(0) - xp.sum(a.T * into, axis=0)
    return xp.concatenate([fp_cls, fp_cat])


def _instance_sums(xp: Any, pred: Any, instances: Any, s: Settings, ftype: Any) -> Any:
    """Weighted ``[2, C + K]`` of the pixels given (flat predictions and instance ids)."""
    c, d, k = s.num_classes, s.label_divisor, len(s.category_names)
    n = c * d
    cat = xp.asarray(np.array((*s.category_of, -1))).astype(pred.dtype)
    sizes = xp.asarray(np.array((*s.class_sizes, 0.0))).astype(ftype)
    catp = cat[xp.where((pred >= 0) & (pred < c), pred, c)]
    # instances: ids class * d + j of classes with an average size
    in_range = (instances >= d) & (instances < n)
    cls = xp.where(in_range, instances // d, c)
    is_inst = in_range & (sizes[cls] > 0)
    key = xp.where(is_inst, instances, n)
    size = _bincount(xp, key, n + 1)[:n].reshape(c, d)
    hit_cls = is_inst & (pred == cls)
    hit_cat = is_inst & (catp >= 0) & (catp == cat[cls])
    tp_cls = _bincount(xp, xp.where(hit_cls, key, n), n + 1)[:n].reshape(c, d)
    tp_cat = _bincount(xp, xp.where(hit_cat, key, n), n + 1)[:n].reshape(c, d)
    has = size > 0
    # w_i = avg_size / |i|, then tp_i * w_i and fn_i * w_i, as cityscapesScripts forms them
    w = xp.where(has, sizes[:c, None] / xp.where(has, size, 1).astype(ftype), 0.0)
    terms = [
        xp.sum(t.astype(ftype) * w, axis=-1) for t in (tp_cls, size - tp_cls, tp_cat, size - tp_cat)
    ]
    member = np.arange(k)[:, None] == np.array(s.category_of)[None, :]
    a = xp.asarray(member.astype(np.float64)).astype(ftype)
    return xp.stack(
        [xp.concatenate([terms[0], a @ terms[2]]), xp.concatenate([terms[1], a @ terms[3]])]
    )


@dataclasses.dataclass(frozen=True)
class WeightedStats:
    """Instance-weighted statistics of classes or categories (the Statistics protocol).

    ``tp`` and ``fn`` are instance-weighted, ``fp`` plain counts; ``tn`` is NaN
    (there are no weighted true negatives); groups without instances are not
    counted in averages (their IoU is NaN per class), as Cityscapes reports.
    """

    tp: Any
    fp: Any
    fn: Any
    tn: Any
    counted_classes: np.ndarray
    exclusive: bool = False


def weighted_stats(weighted: Any, fp: Any, s: Settings, *, categories: bool) -> WeightedStats:
    """The class (``categories=False``, ``[..., C]``) or category (``[..., K]``) view."""
    c = s.num_classes
    part = slice(c, None) if categories else slice(0, c)
    xp = array_module(weighted, fp)
    tp, fn = weighted[..., 0, part], weighted[..., 1, part]
    fp = fp[..., part].astype(tp.dtype)
    if categories:
        counted = np.ones(len(s.category_names), bool)
    else:
        counted = np.array([x > 0 for x in s.class_sizes]) & v.counted_mask(c, s.ignore_classes)
    return WeightedStats(tp, fp, fn, xp.full(tp.shape, np.nan, tp.dtype), counted)
