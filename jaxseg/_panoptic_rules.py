"""panopticapi's rules on a segment-overlap table, for NumPy (host) and JAX arrays.

The per-image core shared by :meth:`jaxseg.PanopticStats.from_panoptic` (JAX, under
``jit``) and ``jaxseg evaluate --panoptic`` (NumPy, on the host): pair scores of
an overlap table, the IoU > 0.5 candidates, each segment's category and crowd
flags, and the per-category ``(tp, fp, fn)`` and pair sums. This module imports
JAX only when it is handed JAX arrays, so the command line scores panoptic folders
without importing JAX.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxseg import _classwise as cw_
from jaxseg import _validation as v
from jaxseg._lazy import jnp

if TYPE_CHECKING:
    import jax

    from jaxseg._panoptic import PanopticStats

#: Sums over matched pairs, in the order of the ``sums`` leaf.
PAIR_METRICS = ("iou", "dice")
#: Distances between matched segments that may be summed too (``instance_metrics``).
INSTANCE_METRICS = ("hd95", "assd")


def pair_scores(table: Any, *, exclude_void: bool = False) -> dict[str, Any]:
    """IoU and Dice of every (reference, prediction) pair ``[S, S]`` from :func:`overlaps`.

    With ``exclude_void`` the prediction's overlap with the reference's row 0
    (VOID) is left out of its area, so of the union (panopticapi's rule). A NumPy
    table gives NumPy float64 scores (the host path), a JAX one JAX scores.
    """
    xp = cw_.array_module(table)
    f = np.float64 if xp is np else v.float_dtype()
    inter = table[1:, 1:].astype(f)
    area_ref = table[1:, :].sum(1).astype(f)[:, None]
    area_pred = table[:, 1:].sum(0).astype(f)[None, :]
    if exclude_void:
        area_pred = area_pred - table[:1, 1:].astype(f)
    union = area_ref + area_pred - inter
    total = area_ref + area_pred
    return {
        "iou": xp.where(inter > 0, inter / xp.where(union > 0, union, 1), 0.0),
        "dice": xp.where(inter > 0, 2 * inter / xp.where(total > 0, total, 1), 0.0),
    }


def _beats(score: Any, threshold: float, strict: bool) -> Any:
    return score > threshold if strict else score >= threshold


def candidates(
    scores: dict[str, Any],
    ref_present: Any,
    pred_present: Any,
    *,
    match_metric: str,
    threshold: float,
    strict: bool,
) -> Any:
    """Boolean ``[R, P]``: overlapping pairs of present segments whose ``match_metric``
    beats ``threshold`` (``>`` when ``strict``, else ``>=``)."""
    return (
        (scores["iou"] > 0)
        & ref_present[:, None]
        & pred_present[None, :]
        & _beats(scores[match_metric], threshold, strict)
    )


def unique_candidates(match_metric: str, threshold: float, strict: bool) -> bool:
    """Whether every segment has at most one candidate: IoU > 0.5 of two disjoint
    segments with one segment is impossible, so no matching order matters."""
    return match_metric == "iou" and (threshold > 0.5 or (strict and threshold == 0.5))


def _category_index(cat: Any, cat_ids: tuple[int, ...]) -> tuple[Any, Any]:
    """``(index into categories, known)`` of category ids, for NumPy or JAX arrays."""
    xp = cw_.array_module(cat)
    lut = np.full(max(cat_ids) + 2, -1, np.int32)  # the last entry: ids out of range
    lut[list(cat_ids)] = np.arange(len(cat_ids))
    out_of_range = (cat < 0) | (cat > max(cat_ids))
    index = xp.asarray(lut)[xp.where(out_of_range, len(lut) - 1, cat)]
    return xp.maximum(index, 0), index >= 0


def _unknown_ids(ids: np.ndarray, name: str, cat_ids: tuple[int, ...], divisor: int) -> None:
    """Host check: every non-zero id's category ``id // divisor`` is in ``categories``."""
    seen = np.unique(ids)
    seen = seen[seen != 0]
    bad = seen[~np.isin(seen // divisor, np.asarray(cat_ids, np.int64))]
    if bad.size:
        raise ValueError(
            f"`{name}` holds ids whose category (id // label_divisor = id // {divisor}) is "
            f"not in `categories`: ids {bad[:5].tolist()} (categories "
            f"{sorted(set((bad // divisor).tolist()))[:5]}); known categories: {list(cat_ids)}."
        )


#: Host maps whose ids lie in ``[0, 2**22)`` are counted by a table (linear time)
#: instead of sorted (``np.unique``) to find their segments; listed segments with ids
#: below ``2**25`` (COCO's RGB ids are below ``2**24``) are looked up by a table.
_HOST_COUNT_IDS = 1 << 22
_HOST_LOOKUP_IDS = 1 << 25


def _distinct_ids(ids):
    """Sorted distinct non-zero ids of a host map."""
    if ids.size and ids.min() >= 0 and ids.max() < _HOST_COUNT_IDS:
        present = np.flatnonzero(np.bincount(ids.reshape(-1)))
    else:
        present = np.unique(ids)
    return present[present != 0]


def _slots(ids, seg_ids):
    """Map ids to slots ``1..S`` (``seg_ids[k]`` -> ``k + 1``, 0 -> 0); ``None`` where a
    non-zero id is not in ``seg_ids``."""
    if not len(seg_ids):
        return np.zeros(ids.shape, np.int64) if not ids.any() else None
    low = min(int(ids.min(initial=0)), int(seg_ids.min()))
    high = max(int(ids.max(initial=0)), int(seg_ids.max()))
    if low >= 0 and high < _HOST_LOOKUP_IDS:
        # zeroed pages are mapped lazily: only those of the ids present are touched
        lut = np.zeros(high + 1, np.int64)
        lut[seg_ids] = np.arange(1, len(seg_ids) + 1)
        slot = lut[ids]
        unlisted = np.count_nonzero(slot == 0) != np.count_nonzero(ids == 0)
        return None if unlisted else slot
    order = np.argsort(seg_ids, kind="stable")
    pos = np.minimum(np.searchsorted(seg_ids[order], ids), len(seg_ids) - 1)
    if np.any((seg_ids[order][pos] != ids) & (ids != 0)):
        return None
    return np.where(ids == 0, 0, order[pos] + 1)


def _host_segments(ids, segments, name, divisor, cat_ids, things, is_ref):
    """Host: a map's segments in order -> (slot map, category index, ok, crowd, crowd_pick)."""
    if segments is None:
        seg_ids = _distinct_ids(ids)
        _unknown_ids(seg_ids, name, cat_ids, divisor)
        cat = seg_ids // divisor
        cat_index, _ = _category_index(cat, cat_ids)
        crowd = np.asarray(things, bool)[cat_index] & (seg_ids % divisor == 0) & is_ref
        pick = crowd.copy()
        slot = _slots(ids, seg_ids)
    else:
        seg_ids = np.asarray(list(segments), np.int64).reshape(-1)
        info = [segments[i] for i in segments]
        cat = np.asarray([c[0] if is_ref else c for c in info], np.int64).reshape(-1)
        crowd = np.asarray([bool(c[1]) if is_ref else False for c in info], bool).reshape(-1)
        slot = _slots(ids, seg_ids)
        if slot is None:
            present = _distinct_ids(ids)
            missing = present[~np.isin(present, seg_ids)]
            raise ValueError(
                f"`{name}` holds segment ids that are not in its segment list: "
                f"{missing[:5].tolist()}."
            )
        area = np.bincount(slot.reshape(-1), minlength=len(seg_ids) + 1)[1:]
        absent = seg_ids[area == 0]
        if absent.size and not is_ref:  # panopticapi: an error for predictions
            raise ValueError(
                f"`{name}`: segments listed but absent from the image: {absent[:5].tolist()}."
            )
        cat_index, known = _category_index(cat, cat_ids)
        if not known.all():
            raise ValueError(
                f"`{name}`: segments {seg_ids[~known][:5].tolist()} have categories "
                f"{cat[~known][:5].tolist()} that are not in `categories`."
            )
        # panopticapi keeps one crowd region per category: the last one listed
        pick = np.zeros(len(seg_ids), bool)
        last = {
            int(c): j
            for j, (c, w) in enumerate(zip(cat.tolist(), crowd.tolist(), strict=True))
            if w
        }
        pick[list(last.values())] = True
    ok = np.ones(len(seg_ids), bool)
    return slot, cat_index, ok, crowd, pick


def panoptic_rules(
    table: Any,
    ref_cat: Any,
    ref_ok: Any,
    ref_crowd: Any,
    crowd_pick: Any,
    pred_cat: Any,
    pred_ok: Any,
    num_categories: int,
) -> tuple[Any, Any]:
    """One image's per-category ``(tp, fp, fn)`` and pair sums from a segment-overlap table.

    ``table[r, p]`` (``[R + 1, P + 1]``, as :func:`overlaps`) counts the pixels of
    reference segment ``r`` and predicted segment ``p``; row 0 is the reference's
    VOID. Per segment: its category index ``*_cat`` (``0..K-1``), whether it is
    scored (``*_ok``: present, of a known category), whether a reference segment
    is a crowd region, and which crowd regions count for the false-positive rule
    (``crowd_pick``). panopticapi's rules:

    * a pair of one category, the reference not a crowd, matches when
      ``IoU > 0.5`` with the union leaving out the prediction's overlap with VOID
      (unique: :func:`match` with ``threshold=0.5``);
    * an unmatched non-crowd reference segment is a false negative;
    * an unmatched predicted segment is a false positive unless more than half of
      it lies in VOID plus a picked crowd region of its category.

    NumPy inputs compute on the host (``int64`` counts, float64 sums: the same
    arithmetic as panopticapi), JAX inputs under ``jit``. Returns ``counts
    [3, K]`` (rows tp, fp, fn) and ``sums [2, K]`` (IoU, Dice of matched pairs).
    """
    xp = cw_.array_module(table, ref_cat, pred_cat)
    ints = np.int64 if xp is np else jnp.int32
    scores = pair_scores(table, exclude_void=True)
    same = (ref_cat[:, None] == pred_cat[None, :]) & ~ref_crowd[:, None]
    scores = {m: xp.where(same, x, 0.0) for m, x in scores.items()}
    # IoU > 0.5: every segment has at most one candidate, which is its match
    chosen = candidates(
        scores, ref_ok & ~ref_crowd, pred_ok, match_metric="iou", threshold=0.5, strict=True
    )
    ref_matched, pred_matched = chosen.any(1), chosen.any(0)
    inter = table[1:, 1:]
    crowd = crowd_pick[:, None] & (ref_cat[:, None] == pred_cat[None, :])
    lost = table[0, 1:] + xp.sum(xp.where(crowd, inter, 0), 0)  # VOID + crowd of the category
    area = xp.sum(table[:, 1:], 0)
    ignored = 2 * lost > area  # (VOID + crowd) / area > 0.5, in integers

    def per_category(cat, values):
        if xp is np:
            return np.bincount(cat, weights=values, minlength=num_categories)
        return jnp.zeros(num_categories, values.dtype).at[cat].add(values, mode="drop")

    fp = pred_ok & ~(pred_matched | ignored)
    flags = [ref_ok & ref_matched, ref_ok & ~ref_matched & ~ref_crowd]
    counts = [per_category(c, f.astype(ints)) for c, f in ((ref_cat, flags[0]), (pred_cat, fp))]
    counts = xp.stack([*counts, per_category(ref_cat, flags[1].astype(ints))]).astype(ints)
    sums = xp.stack(
        [
            per_category(
                ref_cat, xp.where(ref_ok, xp.sum(xp.where(chosen, scores[m], 0.0), 1), 0.0)
            )
            for m in PAIR_METRICS
        ]
    )
    return counts, sums


# -- scores of the counts (host and JAX) ----------------------------------------------


def _check_categories(categories: Any) -> tuple[tuple[int, ...], tuple[str, ...], tuple[bool, ...]]:
    """COCO ``[{id, name, isthing}, ...]`` -> (ids, names, things), in the given order."""
    if isinstance(categories, Mapping):  # panopticapi's {id: {...}} form
        categories = list(categories.values())
    if (
        isinstance(categories, str | bytes)
        or not isinstance(categories, Sequence)
        or not categories
    ):
        raise TypeError(
            "`categories` must be a non-empty list of COCO categories "
            f"{{'id': int, 'name': str, 'isthing': 0 | 1}}; got {categories!r}."
        )
    ids, names, things = [], [], []
    for i, cat in enumerate(categories):
        if not isinstance(cat, Mapping) or "id" not in cat or "isthing" not in cat:
            raise TypeError(
                f"`categories[{i}]` must be a mapping with 'id' and 'isthing'; got {cat!r}."
            )
        cid, thing = cat["id"], cat["isthing"]
        if isinstance(cid, bool) or not isinstance(cid, int | np.integer) or cid < 0:
            raise ValueError(f"`categories[{i}]['id']` must be an int >= 0; got {cid!r}.")
        if thing not in (0, 1):  # also True / False
            raise ValueError(f"`categories[{i}]['isthing']` must be 0 or 1; got {thing!r}.")
        ids.append(int(cid))
        names.append(str(cat.get("name", cid)))
        things.append(bool(thing))
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"`categories` has repeated ids: {dup}.")
    return tuple(ids), tuple(names), tuple(things)


@dataclasses.dataclass(frozen=True)
class HostPanopticStats:
    """Exact host form of :class:`PanopticStats`: ``int64`` counts, float64 pair sums.

    Every object score (:func:`panoptic_quality`, ...) and :func:`panoptic_summary`
    accepts it and computes in NumPy float64 (panopticapi's arithmetic). Built by
    :func:`host_state` from summed :func:`panoptic_image_counts`, or by
    :func:`panoptic_summary` from a state.
    """

    counts: np.ndarray  # int64 [..., 3, C]: tp, fp, fn
    sums: np.ndarray  # float64 [..., M, C]
    num_classes: int
    ignore_classes: tuple[int, ...] = ()
    category_names: tuple[str, ...] | None = None
    metrics: tuple[str, ...] = PAIR_METRICS
    category_ids: tuple[int, ...] | None = None
    things: tuple[bool, ...] | None = None

    tp = property(lambda self: self.counts[..., 0, :].astype(np.float64))
    fp = property(lambda self: self.counts[..., 1, :].astype(np.float64))
    fn = property(lambda self: self.counts[..., 2, :].astype(np.float64))
    tn = property(lambda self: np.zeros(self.counts[..., 0, :].shape))
    counted_classes = property(lambda self: v.counted_mask(self.num_classes, self.ignore_classes))

    def pair_sum(self, metric: str) -> np.ndarray:
        metric = v.check_choice("metric", metric, self.metrics)
        return self.sums[..., self.metrics.index(metric), :]

    @classmethod
    def of(cls, state: PanopticStats) -> HostPanopticStats:
        """The dataset state on the host (a batched state is reduced first)."""
        if state.batch_shape:
            state = state.reduce()
        return cls(
            counts=state.to_numpy(),
            sums=np.asarray(state.sums, np.float64),
            num_classes=state.num_classes,
            ignore_classes=state.ignore_classes,
            category_names=state.category_names,
            metrics=state.metrics,
            category_ids=state.category_ids,
            things=state.things,
        )


def host_state(counts: Any, sums: Any, categories: Any) -> HostPanopticStats:
    """Host state from summed :func:`panoptic_image_counts` results of one dataset.

    Args:
      counts: ``int64 [3, K]`` (tp, fp, fn), e.g. summed over images.
      sums: ``float64 [2, K]`` pair sums (IoU, Dice).
      categories: the COCO categories the counts were computed with.
    """
    cat_ids, names, things = _check_categories(categories)
    counts = np.asarray(counts, np.int64)
    sums = np.asarray(sums, np.float64)
    k = len(cat_ids)
    if counts.shape[-2:] != (3, k) or sums.shape[-2:] != (len(PAIR_METRICS), k):
        raise ValueError(
            f"`counts` must be [..., 3, {k}] and `sums` [..., {len(PAIR_METRICS)}, {k}]; "
            f"got {counts.shape} and {sums.shape}."
        )
    return HostPanopticStats(counts, sums, k, (), names, PAIR_METRICS, cat_ids, things)


SUBSETS = ("all", "things", "stuff")


def _check_state(state: Any) -> PanopticStats | HostPanopticStats:
    if isinstance(state, HostPanopticStats):
        return state
    module = sys.modules.get("jaxseg._panoptic")  # not loaded: no PanopticStats exists
    if module is None or not isinstance(state, module.PanopticStats):
        raise TypeError(f"`state` must be a PanopticStats; got {type(state).__name__}.")
    return state


def _subset_mask(state: Any, subset: str) -> np.ndarray:
    subset = v.check_choice("subset", subset, SUBSETS)
    if subset == "all":
        return np.ones(state.num_classes, bool)
    if state.things is None:
        raise ValueError(
            f"`subset={subset!r}` needs thing / stuff categories: a state from "
            "`PanopticStats.from_panoptic`."
        )
    things = np.asarray(state.things, bool)
    return things if subset == "things" else ~things


def _score(
    state: PanopticStats | HostPanopticStats,
    num: jax.Array,
    den: jax.Array,
    *,
    average: str | None,
    empty: float,
    zero: float = 0.0,
    subset: str = "all",
) -> jax.Array:
    """Per-category ``num / den`` with the empty rule of the chain, then the class average.

    A category is empty when ``tp + fp + fn == 0`` (score ``empty``, NaN by default,
    left out of averages); a zero denominator otherwise scores 0. ``"micro"`` pools
    ``num`` and ``den`` over the included categories first. ``subset`` keeps the
    thing or stuff categories only.
    """
    average = v.check_average(average)
    if isinstance(empty, bool) or not isinstance(empty, int | float):
        raise TypeError(f"`empty` must be a number or NaN; got {empty!r}.")
    tp, fp, fn = state.tp, state.fp, state.fn
    xp = cw_.array_module(tp)
    counted = np.asarray(state.counted_classes, bool) & _subset_mask(state, subset)
    include = cw_.include_mask(counted, tp.shape)
    if average == "micro":
        pooled = [xp.sum(xp.where(include, x, 0.0), -1) for x in (num, den, tp + fp + fn)]
        is_empty = pooled[2] == 0
        out = cw_.class_scores(pooled[0], pooled[1], is_empty, smooth=0.0, empty=float(empty))[0]
        return xp.where((pooled[1] == 0) & ~is_empty, zero, out)
    is_empty = cw_.empty_classes(tp, fp, fn, soft=False)
    scores, left_out = cw_.class_scores(num, den, is_empty, smooth=0.0, empty=float(empty))
    scores = xp.where((den == 0) & ~is_empty, zero, scores)
    return cw_.class_average(scores, include & ~left_out, average=average, support=tp + fn)


def recognition_quality(
    state: PanopticStats,
    *,
    average: str | None = "macro",
    empty: float = math.nan,
    subset: str = "all",
) -> jax.Array:
    """Recognition quality ``RQ = tp / (tp + fp/2 + fn/2)``, the detection F1.

    Equal to ``jaxseg.dice(state)``. A category with no segment at all
    (``tp + fp + fn == 0``) scores ``empty`` (NaN: left out of averages); one with
    segments but no match scores 0 (panoptica's rules).

    Args:
      state: a :class:`PanopticStats`.
      average: ``None`` (per category ``[..., C]``), ``"micro"`` (pool the counts
        over categories), ``"macro"`` (default) or ``"weighted"`` (by ``tp + fn``).
      empty: value of a category with no segments.
      subset: ``"all"`` (default), ``"things"`` or ``"stuff"``: the categories
        averaged (a state from :meth:`PanopticStats.from_panoptic`).

    Returns:
      float ``[..., C]`` for ``average=None``, else the state's batch shape.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> s = jaxseg.PanopticStats.from_instances(
      ...     jnp.array([[1, 1, 0, 2, 0, 3]]), jnp.array([[1, 1, 0, 0, 0, 3]]))
      >>> jaxseg.recognition_quality(s)  # tp 2, fp 1, fn 0
      Array([0.8], dtype=float32)

    References:
      Kirillov et al., "Panoptic Segmentation", CVPR 2019.
    """
    state = _check_state(state)
    tp, fp, fn = state.tp, state.fp, state.fn
    return _score(state, tp, tp + 0.5 * (fp + fn), average=average, empty=empty, subset=subset)


def segmentation_quality(
    state: PanopticStats,
    *,
    metric: str = "iou",
    average: str | None = "macro",
    empty: float = math.nan,
    subset: str = "all",
) -> jax.Array:
    """Segmentation quality ``SQ = sum over matched pairs of metric / tp``.

    The mean IoU (``metric="iou"``) or Dice (``"dice"``, panoptica's ``sq_dsc``)
    of the matched pairs. With no match: ``empty`` (NaN) for a category with no
    segments, else 0 (panoptica's rules). ``"micro"`` pools sums and ``tp`` over
    categories.

    Args:
      state: a :class:`PanopticStats`.
      metric: ``"iou"`` (default), ``"dice"``, or a distance the state was built
        with (``instance_metrics``: ``"hd95"``, ``"assd"``; panoptica's
        ``sq_hd95`` / ``sq_assd``). A distance with segments but no match is ``+inf``
        (panoptica's ASSD rule).
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of a category with no segments.
      subset: ``"all"`` (default), ``"things"`` or ``"stuff"``: the categories
        averaged (a state from :meth:`PanopticStats.from_panoptic`).

    Returns:
      float ``[..., C]`` for ``average=None``, else the state's batch shape.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> s = jaxseg.PanopticStats.from_instances(
      ...     jnp.array([[1, 1, 1, 0, 2]]), jnp.array([[1, 1, 0, 0, 2]]))
      >>> jaxseg.segmentation_quality(s)  # IoUs 2/3 and 1
      Array([0.8333334], dtype=float32)

    References:
      Kirillov et al., "Panoptic Segmentation", CVPR 2019.
    """
    state = _check_state(state)
    zero = math.inf if metric in INSTANCE_METRICS else 0.0
    return _score(
        state,
        state.pair_sum(metric),
        state.tp,
        average=average,
        empty=empty,
        zero=zero,
        subset=subset,
    )


def panoptic_quality(
    state: PanopticStats,
    *,
    metric: str = "iou",
    average: str | None = "macro",
    empty: float = math.nan,
    subset: str = "all",
) -> jax.Array:
    """Panoptic quality ``PQ = SQ * RQ = sum over matched pairs of IoU / (tp + fp/2 + fn/2)``.

    ``metric="dice"`` gives panoptica's ``pq_dsc``. A category with no segments
    scores ``empty`` (NaN); with segments but no match, 0.

    Args:
      state: a :class:`PanopticStats`.
      metric: ``"iou"`` (default) or ``"dice"``.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of a category with no segments.
      subset: ``"all"`` (default), ``"things"`` or ``"stuff"``: the categories
        averaged (a state from :meth:`PanopticStats.from_panoptic`).

    Returns:
      float ``[..., C]`` for ``average=None``, else the state's batch shape.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> s = jaxseg.PanopticStats.from_instances(
      ...     jnp.array([[1, 1, 1, 0, 2, 0, 3]]), jnp.array([[1, 1, 0, 0, 2, 0, 0]]))
      >>> jaxseg.panoptic_quality(s)  # (2/3 + 1) / (2 + 1/2)
      Array([0.6666667], dtype=float32)

    References:
      Kirillov et al., "Panoptic Segmentation", CVPR 2019.
    """
    state = _check_state(state)
    metric = v.check_choice("metric", metric, PAIR_METRICS)
    tp, fp, fn = state.tp, state.fp, state.fn
    return _score(
        state,
        state.pair_sum(metric),
        tp + 0.5 * (fp + fn),
        average=average,
        empty=empty,
        subset=subset,
    )


def panoptic_summary(state: PanopticStats, *, empty: float = math.nan) -> dict[str, Any]:
    """panopticapi's result: PQ, SQ and RQ over all, thing and stuff categories, and per category.

    Computed on the host in float64 from the exact counts (a batched state is
    reduced first): per category ``PQ = sum_IoU / (tp + fp/2 + fn/2)``,
    ``SQ = sum_IoU / tp`` (0 without a match), ``RQ = tp / (tp + fp/2 + fn/2)``;
    each group's value is the mean over its categories with ``tp + fp + fn > 0``
    (``n`` of them), as panopticapi's ``pq_average``. With float32 pair sums the
    per-pair IoU carries float32 rounding; a state built under x64, or
    :func:`host_state` from :func:`panoptic_image_counts`, matches panopticapi to
    float64 rounding.

    Args:
      state: a :class:`PanopticStats` from :meth:`PanopticStats.from_panoptic`, or
        its host form from :func:`host_state` (another :class:`PanopticStats` has
        no thing / stuff categories: ``Things`` and ``Stuff`` are left out).
      empty: per-category value of a category with no segments (panopticapi
        writes 0 there; it is left out of every mean either way). A group with no
        category to average is NaN (where panopticapi divides by zero).

    Returns:
      ``{"All": {"pq", "sq", "rq", "n"}, "Things": {...}, "Stuff": {...},
      "per_class": {category id: {"pq", "sq", "rq"}}}`` with Python floats.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> cats = [{"id": 1, "name": "road", "isthing": 0},
      ...         {"id": 2, "name": "car", "isthing": 1}]
      >>> ref = jnp.array([[[1000, 1000, 1000, 2001, 2001, 2001]]])
      >>> pred = jnp.array([[[1000, 1000, 1000, 2001, 2001, 0]]])
      >>> s = jaxseg.PanopticStats.from_panoptic(pred, ref, categories=cats)
      >>> r = jaxseg.panoptic_summary(s)
      >>> round(r["Things"]["pq"], 4), r["Stuff"]["pq"], r["All"]["n"]
      (0.6667, 1.0, 2)

    References:
      Kirillov et al., "Panoptic Segmentation", CVPR 2019; panopticapi's
      ``pq_compute`` (as shipped in cityscapesScripts).
    """
    state = _check_state(state)
    host = state if isinstance(state, HostPanopticStats) else HostPanopticStats.of(state)
    if host.counts.ndim != 2:
        raise ValueError(f"`state` must be one dataset state; got counts {host.counts.shape}.")
    groups = [("All", "all")] + (
        [("Things", "things"), ("Stuff", "stuff")] * (host.things is not None)
    )
    tp, fp, fn = host.tp, host.fp, host.fn
    counted = host.counted_classes & (tp + fp + fn > 0)
    scores = {
        "pq": panoptic_quality(host, average=None, empty=empty),
        "sq": segmentation_quality(host, average=None, empty=empty),
        "rq": recognition_quality(host, average=None, empty=empty),
    }
    out: dict[str, Any] = {}
    for name, subset in groups:
        row = {
            k: float(f(host, subset=subset))
            for k, f in (
                ("pq", panoptic_quality),
                ("sq", segmentation_quality),
                ("rq", recognition_quality),
            )
        }
        row["n"] = int(np.sum(counted & _subset_mask(host, subset)))
        out[name] = row
    ids = host.category_ids if host.category_ids is not None else tuple(range(host.num_classes))
    out["per_class"] = {
        cid: {k: float(x[j]) if host.counted_classes[j] else math.nan for k, x in scores.items()}
        for j, cid in enumerate(ids)
    }
    return out


def lesion_wise(
    state: PanopticStats,
    *,
    metric: str = "dice",
    fill: float = 0.0,
    average: str | None = "macro",
    empty: float = math.nan,
    subset: str = "all",
) -> jax.Array:
    """Lesion-wise score ``(sum over matched pairs of metric + fill * (fp + fn)) / (tp + fp + fn)``.

    Every unmatched lesion, predicted or missed, scores ``fill``: BraTS 2023's
    lesion-wise Dice is ``metric="dice", fill=0`` and its HD95 ``metric="hd95",
    fill=374`` (a state built with ``instance_metrics=("hd95",)``). A category with no lesion at all
    scores ``empty`` (NaN by default; BraTS scores it 1 for Dice).

    Args:
      state: a :class:`PanopticStats`.
      metric: ``"dice"`` (default), ``"iou"``, or an ``instance_metrics`` entry.
      fill: score of each unmatched lesion (default 0).
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of a category with no lesions.
      subset: ``"all"`` (default), ``"things"`` or ``"stuff"``: the categories
        averaged (a state from :meth:`PanopticStats.from_panoptic`).

    Returns:
      float ``[..., C]`` for ``average=None``, else the state's batch shape.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> s = jaxseg.PanopticStats.from_instances(
      ...     jnp.array([[1, 1, 1, 0, 2, 0, 3]]), jnp.array([[1, 1, 0, 0, 2, 0, 0]]))
      >>> jaxseg.lesion_wise(s)  # (0.8 + 1 + 0) / 3
      Array([0.6], dtype=float32)

    References:
      BraTS 2023 lesion-wise evaluation (Kazerooni et al., "The Brain Tumor
      Segmentation (BraTS) Challenge 2023", 2023).
    """
    state = _check_state(state)
    if isinstance(fill, bool) or not isinstance(fill, int | float):
        raise TypeError(f"`fill` must be a number; got {fill!r}.")
    tp, fp, fn = state.tp, state.fp, state.fn
    num = state.pair_sum(metric) + float(fill) * (fp + fn)
    return _score(state, num, tp + fp + fn, average=average, empty=empty, subset=subset)
