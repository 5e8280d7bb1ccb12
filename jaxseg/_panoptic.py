"""Objects scored by matching segments: :class:`PanopticStats` and the object scores.

An image's segments (connected components of a class mask, or instance maps
the user already has) are matched one to one between prediction and reference;
per category the state counts matched pairs ``tp``, unmatched predictions
``fp`` and unmatched references ``fn`` (exact limbs), and sums the IoU and Dice
of the matched pairs. The scores are functions of those sums:

* ``RQ = tp / (tp + fp/2 + fn/2)`` (the detection F1),
* ``SQ = sum_IoU / tp`` (mean IoU of the matched pairs),
* ``PQ = SQ * RQ = sum_IoU / (tp + fp/2 + fn/2)``,
* lesion-wise ``(sum_metric + fill * (fp + fn)) / (tp + fp + fn)``.

The segment-overlap table (:func:`overlaps`) and the matching
(:func:`match`) are the reusable core: every constructor reduces its input to
segment label maps ``0..S`` and calls them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import checkify

from jaxseg import _checked, _counts, _distance
from jaxseg import _validation as v
from jaxseg._components import check_connectivity, connected_components
from jaxseg._distance import medpy_hd_assd
from jaxseg._panoptic_rules import (
    INSTANCE_METRICS,
    PAIR_METRICS,
    _category_index,
    _check_categories,
    _host_segments,
    _unknown_ids,
    candidates,
    pair_scores,
    panoptic_rules,
    unique_candidates,
)
from jaxseg._state import FLOAT, LIMBS, StateAlgebra, _static

ArrayLike = jax.typing.ArrayLike

MATCHINGS = ("threshold", "bipartite")
#: Added to every candidate pair's weight in the bipartite matching, as panoptica does
#: (its cost ``1 - score`` against ``1 + 1e-6`` for no pair): more pairs win ties.
_PAIR_BONUS = 1e-6


# -- the core: overlaps and one-to-one matching ----------------------------------------


def overlaps(pred: jax.Array, ref: jax.Array, num_segments: int) -> jax.Array:
    """Overlap table ``int32 [S + 1, S + 1]``: ``table[r, p] = #{x : ref[x] = r, pred[x] = p}``.

    ``pred`` and ``ref`` are segment label maps with values in ``0..S`` (0: no
    segment); row 0 and column 0 hold the overlaps with the other map's background,
    so row and column sums are the segment areas.
    """
    s = num_segments + 1
    index = ref.reshape(-1).astype(jnp.int32) * s + pred.reshape(-1).astype(jnp.int32)
    table = jnp.zeros(s * s, jnp.int32).at[index].add(1, mode="drop")
    return table.reshape(s, s)


def _greedy(weight: jax.Array, candidate: jax.Array) -> jax.Array:
    """Pairs in decreasing weight, each segment used once (panoptica's naive matching)."""
    s = weight.shape[0]

    def step(_, carry):
        matched, free_r, free_p = carry
        ok = candidate & free_r[:, None] & free_p[None, :]
        w = jnp.where(ok, weight, -jnp.inf)
        k = jnp.argmax(w.reshape(-1))  # the first of equal weights, in (ref, pred) order
        r, p = k // s, k % s
        take = ok[r, p]
        matched = matched.at[r, p].set(matched[r, p] | take)
        return matched, free_r.at[r].set(free_r[r] & ~take), free_p.at[p].set(free_p[p] & ~take)

    init = (jnp.zeros_like(candidate), jnp.ones(s, bool), jnp.ones(s, bool))
    return lax.fori_loop(0, s, step, init)[0]


def _hungarian(weight: jax.Array) -> jax.Array:
    """Maximum-weight perfect assignment of a square ``[n, n]`` matrix; ``col -> row``.

    The shortest-augmenting-path form of the Hungarian method (Kuhn 1955;
    Munkres 1957; potentials as in Jonker & Volgenant 1987): rows are added one
    at a time and each addition is a Dijkstra search over reduced costs, so the
    result is an optimal assignment after ``n`` rounds of at most ``n + 1`` steps,
    with static shapes under ``jit``. Returns ``row_of[j]`` (0-based) for each column.
    """
    n = weight.shape[0]
    cost = jnp.pad(-weight, ((1, 0), (1, 0)))  # 1-based rows and columns, as the method reads
    big = jnp.asarray(jnp.inf, cost.dtype)

    def add_row(i, carry):
        u, w_, p, way = carry
        p = p.at[0].set(i)

        def search(c):
            u, w_, minv, used, j0, p, way = c
            used = used.at[j0].set(True)
            i0 = p[j0]
            cur = cost[i0] - u[i0] - w_
            better = ~used & (cur < minv)
            minv = jnp.where(better, cur, minv)
            way = jnp.where(better, j0, way)
            masked = jnp.where(used, big, minv).at[0].set(big)
            j1 = jnp.argmin(masked).astype(jnp.int32)
            delta = masked[j1]
            u = u.at[p].add(jnp.where(used, delta, 0.0))
            w_ = jnp.where(used, w_ - delta, w_)
            minv = jnp.where(used, minv, minv - delta)
            return u, w_, minv, used, j1, p, way

        minv = jnp.full(n + 1, big)
        used = jnp.zeros(n + 1, bool)
        c = (u, w_, minv, used, jnp.int32(0), p, way)
        # until the search reaches a free column (p[j0] == 0)
        u, w_, minv, used, j0, p, way = lax.while_loop(lambda c: c[5][c[4]] != 0, search, c)

        def augment(c):
            j0, p = c
            j1 = way[j0]
            return j1, p.at[j0].set(p[j1])

        _, p = lax.while_loop(lambda c: c[0] != 0, augment, (j0, p))
        return u, w_, p, way

    zeros = jnp.zeros(n + 1, cost.dtype)
    idx = jnp.zeros(n + 1, jnp.int32)
    _, _, p, _ = lax.fori_loop(1, n + 1, add_row, (zeros, zeros, idx, idx))
    return p[1:] - 1


def match(
    scores: dict[str, jax.Array],
    ref_present: jax.Array,
    pred_present: jax.Array,
    *,
    matching: str,
    match_metric: str,
    threshold: float,
    strict: bool,
) -> jax.Array:
    """Boolean ``[S, S]`` one-to-one matching of reference rows and prediction columns.

    Candidates are overlapping pairs of present segments whose ``match_metric``
    beats ``threshold`` (``>`` when ``strict``, else ``>=``). ``"threshold"`` takes
    candidates in decreasing score, each segment once (with IoU > 0.5 every segment
    has at most one candidate, so no order matters); ``"bipartite"`` maximises the
    sum of ``score + 1e-6`` over matched candidates (panoptica's
    ``MaxBipartiteMatching``).
    """
    weight = scores[match_metric]
    candidate = candidates(
        scores,
        ref_present,
        pred_present,
        match_metric=match_metric,
        threshold=threshold,
        strict=strict,
    )
    if matching == "threshold":
        if unique_candidates(match_metric, threshold, strict):
            return candidate
        return _greedy(weight, candidate)
    w = jnp.where(candidate, weight + _PAIR_BONUS, 0.0)
    row_of = _hungarian(w)
    s = w.shape[0]
    chosen = jnp.zeros((s, s), bool).at[row_of, jnp.arange(s)].set(True)
    return chosen & candidate


def segment_counts(
    pred: jax.Array,
    ref: jax.Array,
    num_pred: jax.Array,
    num_ref: jax.Array,
    *,
    num_segments: int,
    matching: str,
    match_metric: str,
    threshold: float,
    strict: bool,
    instance_metrics: tuple[str, ...] = (),
    grid: Any = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One image, one category: ``(tp, fp, fn) int32``, pair sums ``[M]`` and overflow.

    ``pred`` / ``ref`` are segment maps numbered ``1..num_*``; segments numbered past
    ``num_segments`` are left out of the matching (they cannot be true positives)
    but still count as false positives / negatives, and in the overflow. ``grid``
    (:class:`jaxseg._distance.Grid`, the spacing as data) is read by the
    ``instance_metrics`` only; ``None`` is unit spacing.
    """
    cap = num_segments
    table = overlaps(jnp.where(pred > cap, 0, pred), jnp.where(ref > cap, 0, ref), cap)
    scores = pair_scores(table)
    ids = jnp.arange(1, cap + 1)
    chosen = match(
        scores,
        ids <= num_ref,
        ids <= num_pred,
        matching=matching,
        match_metric=match_metric,
        threshold=threshold,
        strict=strict,
    )
    tp = jnp.sum(chosen, dtype=jnp.int32)
    sums = [jnp.sum(jnp.where(chosen, scores[m], 0.0)) for m in PAIR_METRICS]
    if instance_metrics:
        matched = chosen.any(1)
        col = jnp.argmax(chosen, 1)

        if grid is None:
            grid = (1.0,) * pred.ndim

        def pair(r, p, ok):
            a, b = (ref == r + 1) & ok, (pred == p + 1) & ok
            # medpy's definitions, as panoptica's HD95 and ASSD
            return medpy_hd_assd(b, a, grid)

        hd95, assd = jax.vmap(pair)(jnp.arange(cap), col, matched)
        values = {"hd95": hd95, "assd": assd}
        sums += [jnp.sum(jnp.where(matched, values[m], 0.0)) for m in instance_metrics]
    sums = jnp.stack(sums)
    overflow = jnp.maximum(num_pred - cap, 0) + jnp.maximum(num_ref - cap, 0)
    return jnp.stack([tp, num_pred - tp, num_ref - tp]), sums, overflow


def _compact(ids: jax.Array, cap: int, *, details: bool = False) -> tuple[jax.Array, ...]:
    """Renumber the distinct non-zero ids of an instance map ``1..n`` in increasing order.

    Returns the map (ids past the ``cap``-th distinct one become ``cap + 1``) and ``n``;
    with ``details`` also the ids of segments ``1..cap`` (``[cap]``, 0 past ``n``), the
    sorted ids and the mask of the first occurrence of each distinct non-zero id.
    """
    flat = ids.reshape(-1)
    order = jnp.sort(flat)
    first = jnp.concatenate([jnp.ones(1, bool), order[1:] != order[:-1]]) & (order != 0)
    count = jnp.sum(first, dtype=jnp.int32)
    # the first cap + 1 distinct non-zero values, padded with a value past them all
    fill = jnp.iinfo(order.dtype).max if jnp.issubdtype(order.dtype, jnp.integer) else jnp.inf
    keys = jnp.where(first, order, fill)
    keys = jnp.sort(keys)[: cap + 1] if flat.size > cap else jnp.sort(keys)
    rank = jnp.searchsorted(keys, flat).astype(jnp.int32) + 1
    hit = rank <= keys.shape[0]
    hit = hit & (keys[jnp.minimum(rank - 1, keys.shape[0] - 1)] == flat)
    out = jnp.where(flat == 0, 0, jnp.where(hit & (rank <= cap), rank, cap + 1))
    if details:
        n = min(cap, keys.shape[0])
        kept = jnp.zeros(cap, flat.dtype).at[:n].set(keys[:n])
        kept = jnp.where(jnp.arange(cap) < count, kept, 0)
        return out.reshape(ids.shape), count, kept, order, first
    return out.reshape(ids.shape), count


# -- panopticapi's rules on one image's segment-overlap table ---------------------------


def _check_divisor(label_divisor: Any) -> int:
    if isinstance(label_divisor, bool) or not isinstance(label_divisor, int | np.integer):
        raise TypeError(f"`label_divisor` must be a positive int; got {label_divisor!r}.")
    if label_divisor < 1:
        raise ValueError(f"`label_divisor` must be at least 1; got {label_divisor}.")
    return int(label_divisor)


def _panoptic_image(pred, ref, cat_ids, things, divisor, cap, checking):
    """One image under ``jit``: id maps -> ``(counts [3, K], sums [2, K], overflow [K])``."""
    k = len(cat_ids)
    thing = jnp.asarray(np.asarray(things, bool))

    def segments(ids, is_ref):
        seg, n, kept, order, first = _compact(ids, cap, details=True)
        ok = jnp.arange(1, cap + 1) <= n
        cat, known = _category_index(kept // divisor, cat_ids)
        crowd = thing[cat] & (kept % divisor == 0) & known & ok & is_ref
        # segments past the cap, per category (from every distinct id, sorted)
        all_cat, all_known = _category_index(order // divisor, cat_ids)
        rank = jnp.cumsum(first)
        past = first & (rank > cap) & all_known
        if is_ref:
            past_crowd = past & thing[all_cat] & (order % divisor == 0)
        else:
            past_crowd = jnp.zeros_like(past)
        over = jnp.zeros(k, jnp.int32).at[all_cat].add(past.astype(jnp.int32))
        over_crowd = jnp.zeros(k, jnp.int32).at[all_cat].add(past_crowd.astype(jnp.int32))
        unknown = jnp.sum(first & ~all_known, dtype=jnp.int32)
        # slot cap + 1 collects the segments past the cap: present in the areas, never scored
        return seg, cat, ok & known, crowd, over, over_crowd, unknown

    seg_p, cat_p, ok_p, _, over_p, _, unknown_p = segments(pred, False)
    seg_r, cat_r, ok_r, crowd_r, over_r, crowd_over_r, unknown_r = segments(ref, True)
    table = overlaps(seg_p, seg_r, cap + 1)
    bucket = jnp.zeros(1, bool)
    pad = lambda x, value=0: jnp.concatenate([x, jnp.full(1, value, x.dtype)])  # noqa: E731
    counts, sums = panoptic_rules(
        table,
        pad(cat_r),
        jnp.concatenate([ok_r, bucket]),
        jnp.concatenate([crowd_r, bucket]),
        jnp.concatenate([crowd_r, bucket]),
        pad(cat_p),
        jnp.concatenate([ok_p, bucket]),
        k,
    )
    # segments past the cap take no part in the matching: predicted ones are false
    # positives, non-crowd reference ones false negatives
    counts = counts + jnp.stack([jnp.zeros_like(over_p), over_p, over_r - crowd_over_r])
    if checking:
        checkify.check(
            unknown_p == 0,
            "jaxseg: `pred_ids` holds {count} segment id(s) whose category "
            f"(id // {divisor}) is not in `categories`.",
            count=unknown_p,
        )
        checkify.check(
            unknown_r == 0,
            "jaxseg: `label_ids` holds {count} segment id(s) whose category "
            f"(id // {divisor}) is not in `categories`.",
            count=unknown_r,
        )
    return counts, sums, over_p + over_r


@functools.partial(jax.jit, static_argnames=("cat_ids", "things", "divisor", "cap", "checking"))
def _panoptic_core(pred, ref, *, cat_ids, things, divisor, cap, checking):
    one = lambda p, r: _panoptic_image(p, r, cat_ids, things, divisor, cap, checking)  # noqa: E731
    counts, sums, overflow = jax.vmap(one)(pred, ref)
    if checking:
        checkify.check(
            ~jnp.any(overflow > 0),
            f"jaxseg: {{count}} segment(s) past `max_segments={cap}` were left out of the "
            "matching (counted as unmatched); raise `max_segments`.",
            count=jnp.sum(overflow),
        )
    return (
        _counts.from_int(counts),
        sums.astype(v.float_dtype()),
        _counts.from_int(overflow),
    )


def panoptic_image_counts(
    pred_ids: Any,
    label_ids: Any,
    *,
    categories: Any,
    label_divisor: int = 1000,
    pred_segments: Mapping[int, int] | None = None,
    label_segments: Mapping[int, tuple[int, bool]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One image on the host, in NumPy: per-category ``(tp, fp, fn)`` and pair sums.

    The per-image step of :meth:`PanopticStats.from_panoptic` without JAX (no
    compilation, any image size), with panopticapi's arithmetic: ``int64`` counts,
    float64 IoU of each matched pair as ``intersection / union`` of integers.

    Args:
      pred_ids: integer ``[H, W]`` predicted segment ids; 0 is VOID.
      label_ids: integer ``[H, W]`` reference segment ids; 0 is VOID.
      categories: COCO categories ``[{id, name, isthing}, ...]`` (their order is the
        order of the result's columns), or panopticapi's ``{id: {...}}``.
      label_divisor: with no segment lists, a segment's category is
        ``id // label_divisor`` and a thing segment with ``id % label_divisor == 0``
        is a crowd region of the reference.
      pred_segments: COCO ``segments_info`` of the prediction as ``{id: category_id}``
        (then ids are arbitrary, e.g. RGB-encoded).
      label_segments: the reference's ``{id: (category_id, iscrowd)}``, in the
        order of its ``segments_info`` (of several crowd regions of one category
        the last one counts, as in panopticapi). Listed segments absent from the
        image are unmatched (false negatives unless crowd).

    Returns:
      ``counts int64 [3, K]`` (rows tp, fp, fn) and ``sums float64 [2, K]`` (sums of
      the matched pairs' IoU and Dice), ``K = len(categories)``.

    Raises:
      ValueError: an id whose category is not in ``categories``, or (with segment
        lists) an id in the image missing from its list, or a listed predicted
        segment absent from the image; the message names ``pred_ids`` or
        ``label_ids``.
      TypeError: ids that are not integers.
    """
    cat_ids, _, things = _check_categories(categories)
    divisor = _check_divisor(label_divisor)
    pred, ref = np.asarray(pred_ids), np.asarray(label_ids)
    for x, name in ((pred, "pred_ids"), (ref, "label_ids")):
        if x.dtype.kind not in "iu":
            raise TypeError(f"`{name}` must hold integer segment ids; got dtype {x.dtype}.")
    pred, ref = pred.astype(np.int64, copy=False), ref.astype(np.int64, copy=False)
    if pred.shape != ref.shape:
        raise ValueError(
            f"`pred_ids` and `label_ids` must have the same shape; got {pred.shape} "
            f"and {ref.shape}."
        )
    if label_segments is not None:
        label_segments = {int(i): (int(c[0]), bool(c[1])) for i, c in label_segments.items()}
    if pred_segments is not None:
        pred_segments = {int(i): int(c) for i, c in pred_segments.items()}
    slot_p, cat_p, ok_p, _, _ = _host_segments(
        pred, pred_segments, "pred_ids", divisor, cat_ids, things, False
    )
    slot_r, cat_r, ok_r, crowd_r, pick_r = _host_segments(
        ref, label_segments, "label_ids", divisor, cat_ids, things, True
    )
    num_p, num_r = len(cat_p) + 1, len(cat_r) + 1
    table = np.bincount((slot_r * num_p + slot_p).reshape(-1), minlength=num_r * num_p).reshape(
        num_r, num_p
    )
    return panoptic_rules(table, cat_r, ok_r, crowd_r, pick_r, cat_p, ok_p, len(cat_ids))


# -- the state ---------------------------------------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PanopticStats(StateAlgebra):
    """Matched-segment statistics per category: exact ``tp, fp, fn`` and pair sums.

    Per image and category, prediction and reference segments are matched one
    to one (:func:`match`); the state counts

    * ``tp``: matched pairs, ``fp``: unmatched predicted segments, ``fn``:
      unmatched reference segments (exact limbs, so merges, reductions and
      ``psum`` are exact and independent of the order);
    * ``sum_iou``, ``sum_dice``: sums over matched pairs of their IoU and Dice
      (float sums);
    * ``overflow``: segments numbered past the static ``max_segments`` of the
      constructor. They take no part in the matching but are counted in ``fp`` /
      ``fn``; under :func:`jaxseg.checked` a non-zero overflow raises.

    It has the :class:`~jaxseg.Statistics` protocol (``tn`` is 0), so the pixel
    scores read it as detection scores: ``jaxseg.precision(state)`` is
    ``tp / (tp + fp)``, ``jaxseg.recall(state)`` is ``tp / (tp + fn)`` and
    ``jaxseg.dice(state)`` (F1) is the recognition quality
    ``tp / (tp + (fp + fn) / 2)``. The object scores are
    :func:`panoptic_quality`, :func:`segmentation_quality`,
    :func:`recognition_quality` and :func:`lesion_wise`.

    The constructors return per-image states (batch shape ``[batch]``); ``reduce``
    gives the dataset state, whose scores are the dataset-level PQ etc.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> ref = jnp.array([[[1, 1, 0, 0, 2, 2]]])   # [batch, H, W]: two lesions
      >>> pred = jnp.array([[[1, 1, 0, 0, 0, 2]]])
      >>> s = jaxseg.PanopticStats.from_semantic(pred, ref, num_classes=3)
      >>> s.tp, s.fn  # class 2: IoU 1/2 is not above 0.5
      (Array([[0., 1., 0.]], dtype=float32), Array([[0., 0., 1.]], dtype=float32))
      >>> jaxseg.panoptic_quality(s.reduce(), average=None)
      Array([nan,  1.,  0.], dtype=float32)

    Attributes:
      counts: ``uint32 [..., 3, C, 3]`` limbs of ``tp``, ``fp``, ``fn`` per category.
      sums: float ``[..., 2, C]``: sums over matched pairs of IoU and Dice.
      overflow: ``uint32 [..., C, 3]`` limbs: segments past ``max_segments``.
      num_classes: ``C``, the number of categories (classes, or regions).
      ignore_classes: categories left out of averages (ignored ids; class 0
        unless ``include_background=True``).
      category_names: region or category names, or ``None`` for classes (static).
      category_ids: the COCO category ids of :meth:`from_panoptic`, else ``None``.
      things: per category, whether it is a thing category (:meth:`from_panoptic`),
        else ``None``; selects ``subset="things" | "stuff"`` in the scores.

    References:
      Kirillov et al., "Panoptic Segmentation", CVPR 2019;
      Kofler et al., "Panoptica -- instance-wise evaluation of 3D semantic and
      instance segmentation maps", 2023.
    """

    counts: jax.Array = dataclasses.field(metadata=LIMBS)
    sums: jax.Array = dataclasses.field(metadata=FLOAT)
    overflow: jax.Array = dataclasses.field(metadata=LIMBS)
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    category_names: tuple[str, ...] | None = _static(None)
    metrics: tuple[str, ...] = _static(PAIR_METRICS)
    category_ids: tuple[int, ...] | None = _static(None)
    things: tuple[bool, ...] | None = _static(None)
    exclusive: ClassVar[bool] = False

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        c = self.num_classes
        return {
            "counts": (3, c, _counts.NUM_LIMBS),
            "sums": (len(self.metrics), c),
            "overflow": (c, _counts.NUM_LIMBS),
        }

    @classmethod
    def empty(
        cls,
        num_classes: int,
        *,
        ignore_classes: Sequence[int] = (),
        category_names: Sequence[str] | None = None,
        instance_metrics: Sequence[str] = (),
    ) -> PanopticStats:
        """The identity of :meth:`merge` (no batch axis)."""
        metrics = PAIR_METRICS + _check_instance_metrics(instance_metrics)
        c = v.check_num_classes(num_classes)
        return cls(
            counts=_counts.zeros((3, c)),
            sums=jnp.zeros((len(metrics), c), v.float_dtype()),
            overflow=_counts.zeros((c,)),
            num_classes=c,
            ignore_classes=tuple(ignore_classes),
            category_names=None if category_names is None else tuple(category_names),
            metrics=metrics,
        )

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_instances(
        cls,
        pred_instances: ArrayLike,
        label_instances: ArrayLike,
        *,
        matching: str = "threshold",
        match_metric: str = "iou",
        threshold: float = 0.5,
        strict: bool = True,
        max_segments: int = 64,
        instance_metrics: Sequence[str] = (),
        spacing: Any = None,
    ) -> PanopticStats:
        """Match instance maps the user already has (one category).

        ``0`` is background; every other value is one segment, whatever the
        numbering (ids need not be consecutive; a segment need not be connected).

        Args:
          pred_instances: integer ``[batch, *spatial]`` predicted instance ids.
          label_instances: integer ``[batch, *spatial]`` reference instance ids.
          matching, match_metric, threshold, strict, max_segments,
            instance_metrics, spacing: as in :meth:`from_semantic`.

        Returns:
          A per-image state, batch shape ``[batch]``, one category.

        Examples:
          >>> import jax.numpy as jnp, jaxseg
          >>> ref = jnp.array([[7, 7, 0, 9, 9]])
          >>> pred = jnp.array([[1, 1, 1, 0, 2]])
          >>> s = jaxseg.PanopticStats.from_instances(pred, ref)
          >>> s.tp, s.fp, s.fn
          (Array([[1.]], dtype=float32), Array([[1.]], dtype=float32), Array([[1.]], dtype=float32))
        """
        pred = v.check_int_labels(
            v.as_int_array(pred_instances, "pred_instances"), "pred_instances"
        )
        ref = v.check_int_labels(
            v.as_int_array(label_instances, "label_instances"), "label_instances"
        )
        v.check_same_shape("pred_instances", pred, "label_instances", ref)
        if pred.ndim < 2:
            raise ValueError(
                "`pred_instances` must have a batch axis, [batch, *spatial]; "
                f"got shape {tuple(pred.shape)}."
            )
        opts = _check_options(
            matching,
            match_metric,
            threshold,
            strict,
            max_segments,
            instance_metrics,
            spacing,
            pred.ndim - 1,
        )
        core_opts, grid = _split_spacing(opts, pred.shape[1:])
        counts, sums, overflow = _instances_core(
            pred[:, None], ref[:, None], grid, opts=core_opts, checking=_checked.enabled()
        )
        return _assemble(counts, sums, overflow, (0,), 1, (), None, opts)

    @classmethod
    def from_semantic(
        cls,
        predictions: ArrayLike,
        labels: ArrayLike,
        *,
        num_classes: int,
        connectivity: int = 1,
        matching: str = "threshold",
        match_metric: str = "iou",
        threshold: float = 0.5,
        strict: bool = True,
        regions: Mapping[str, Sequence[int]] | None = None,
        ignore_index: Any = None,
        include_background: bool = False,
        max_segments: int = 64,
        instance_metrics: Sequence[str] = (),
        spacing: Any = None,
    ) -> PanopticStats:
        """Match the connected components of each class (or region) mask.

        Instances are the connected components of ``predictions == c`` and
        ``labels == c`` for each class ``c`` (panoptica's
        ``ConnectedComponentsInstanceApproximator``), or of the union of a
        region's classes. Pixels whose label is in ``ignore_index`` are removed
        from both masks.

        Args:
          predictions: integer class map ``[batch, *spatial]``, spatial rank 1-3.
          labels: integer class map, same shape.
          num_classes: number of classes ``C``.
          connectivity: ``1..ndim`` neighbourhood of the components, as in
            :func:`jaxseg.connected_components` (SciPy's default is 1; cc3d's is ``ndim``).
          matching: ``"threshold"`` (pairs whose ``match_metric`` beats
            ``threshold``, greedily in decreasing score; with IoU > 0.5 the
            match is unique) or ``"bipartite"`` (the one-to-one matching that
            maximises the summed ``match_metric`` of candidate pairs, solved
            exactly by the Hungarian method).
          match_metric: ``"iou"`` or ``"dice"``.
          threshold: candidate pairs must beat it (default 0.5).
          strict: ``True`` (default) compares with ``>`` (panopticapi's rule);
            ``False`` with ``>=`` (panoptica's default).
          regions: ``{name: class ids}``: score each union of classes as one
            binary mask, e.g. BraTS' ``{"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}``;
            the categories are then the regions, in order.
          ignore_index: label id(s) whose pixels are removed.
          include_background: score class 0 as a category too (default ``False``:
            it is left out of averages and forms no instances).
          max_segments: static cap on segments per image and category (default 64).
          instance_metrics: distances of matched pairs to sum too: ``"hd95"``,
            ``"assd"`` with medpy's definitions, as panoptica computes them (border
            elements by erosion; HD95 the 95th percentile of both directed distance
            sets pooled; ASSD the mean of the two directed means). Each costs two
            distance transforms per ``max_segments`` slot, image and category.
          spacing: element spacing, one float per spatial axis (distances only). It
            enters the compiled program as data: another spacing compiles nothing new.

        Returns:
          A per-image state, batch shape ``[batch]``, ``C`` categories (or one
          per region).
        """
        preds = v.check_int_labels(v.as_int_array(predictions, "predictions"), "predictions")
        labs = v.check_int_labels(v.as_int_array(labels, "labels"))
        v.check_same_shape("predictions", preds, "labels", labs)
        if not 2 <= preds.ndim <= 4:
            raise ValueError(
                "`predictions` must be [batch, *spatial] with 1 to 3 spatial axes; "
                f"got shape {tuple(preds.shape)}."
            )
        c = v.check_num_classes(num_classes)
        conn = check_connectivity(connectivity, preds.ndim - 1)
        opts = _check_options(
            matching,
            match_metric,
            threshold,
            strict,
            max_segments,
            instance_metrics,
            spacing,
            preds.ndim - 1,
        )
        ignored = v.normalize_ignore_index(ignore_index)
        include_background = v.check_bool("include_background", include_background)
        if regions is None:
            groups = [(k,) for k in range(c)]
            names = None
            skip = {i for i in ignored if 0 <= i < c} | (set() if include_background else {0})
        else:
            groups, names = _check_regions(regions, c)
            skip = set()
        columns = tuple(k for k in range(len(groups)) if k not in skip)
        # which classes each scored category covers: a traced table, so that classes
        # and regions with the same number of categories share one compilation
        table = np.zeros((len(columns), c), bool)
        for row, k in enumerate(columns):
            table[row, list(groups[k])] = True
        core_opts, grid = _split_spacing(opts, preds.shape[1:])
        counts, sums, overflow = _semantic_core(
            preds,
            labs,
            jnp.asarray(table),
            grid,
            ignored=ignored,
            connectivity=conn,
            opts=core_opts,
            checking=_checked.enabled(),
        )
        return _assemble(
            counts, sums, overflow, columns, len(groups), tuple(sorted(skip)), names, opts
        )

    @classmethod
    def from_panoptic(
        cls,
        pred_ids: ArrayLike,
        label_ids: ArrayLike,
        *,
        categories: Any,
        label_divisor: int = 1000,
        max_segments: int = 256,
    ) -> PanopticStats:
        """Panoptic id maps scored with panopticapi's rules (COCO, Cityscapes).

        A segment id is ``category * label_divisor + instance``; 0 is VOID. In a
        thing category, instance 0 of the reference is a crowd region (Cityscapes'
        ``instanceIds`` with crowd ids ``c`` written as ``c * 1000``, i.e.
        ``np.where(ids < 1000, ids * 1000, ids)``); stuff segments may use any
        instance. Per image and category, panopticapi's rules (Kirillov et al.):

        * a predicted and a reference segment of one category match when
          ``IoU > 0.5``, the union leaving out the prediction's overlap with VOID
          (the match is then unique);
        * crowd regions never match, and are not false negatives;
        * an unmatched predicted segment lying more than half in VOID plus the
          crowd region of its category is not a false positive;
        * the scores leave out categories with ``tp + fp + fn = 0`` (NaN).

        ``subset="things" | "stuff"`` in :func:`panoptic_quality` etc. averages over
        thing or stuff categories; :func:`panoptic_summary` gives panopticapi's
        All / Things / Stuff / per-category table.

        Args:
          pred_ids: integer ``[batch, *spatial]`` predicted segment ids.
          label_ids: integer ``[batch, *spatial]`` reference segment ids.
          categories: COCO categories ``[{"id": int, "name": str, "isthing": 0 | 1},
            ...]``; the state's categories follow this order.
          label_divisor: ids per category (default 1000, Cityscapes').
          max_segments: static cap on distinct segment ids per map and image
            (default 256). Segments past it take no part in the matching: they are
            false positives (predicted) or negatives (reference, unless crowd), and
            are counted in ``overflow`` (an error under :func:`jaxseg.checked`).

        Returns:
          A per-image state, batch shape ``[batch]``, ``K = len(categories)``
          categories; the IoU sums are in the float dtype (float32 unless x64).

        Raises:
          ValueError: an id whose category ``id // label_divisor`` is not in
            ``categories``, naming ``pred_ids`` or ``label_ids`` (on concrete
            inputs; under ``jit`` such segments are left out, and
            :func:`jaxseg.checked` raises).

        Examples:
          >>> import jax.numpy as jnp, jaxseg
          >>> cats = [{"id": 1, "name": "road", "isthing": 0},
          ...         {"id": 2, "name": "car", "isthing": 1}]
          >>> ref = jnp.array([[[1000, 1000, 2001, 2001, 2000, 0]]])  # 2000: crowd, 0: VOID
          >>> pred = jnp.array([[[1000, 2005, 2005, 2005, 2006, 2007]]])
          >>> s = jaxseg.PanopticStats.from_panoptic(pred, ref, categories=cats)
          >>> s.tp  # car 2005 matches 2001: IoU 2/3; road: IoU 1/2 is no match
          Array([[0., 1.]], dtype=float32)
          >>> s.fp  # 2006 lies in the crowd region, 2007 in VOID: no false positives
          Array([[1., 0.]], dtype=float32)
          >>> jaxseg.panoptic_quality(s.reduce(), average=None)  # car: IoU 2/3
          Array([0.        , 0.6666667], dtype=float32)
        """
        cat_ids, names, things = _check_categories(categories)
        divisor = _check_divisor(label_divisor)
        pred = v.check_int_labels(v.as_int_array(pred_ids, "pred_ids"), "pred_ids")
        ref = v.check_int_labels(v.as_int_array(label_ids, "label_ids"), "label_ids")
        v.check_same_shape("pred_ids", pred, "label_ids", ref)
        if pred.ndim < 2:
            raise ValueError(
                "`pred_ids` must have a batch axis, [batch, *spatial]; "
                f"got shape {tuple(pred.shape)}."
            )
        cap = _check_options("threshold", "iou", 0.5, True, max_segments)[4][1]
        for x, name in ((pred_ids, "pred_ids"), (label_ids, "label_ids")):
            if not isinstance(x, jax.core.Tracer):  # concrete input: a named error now
                _unknown_ids(np.asarray(x), name, cat_ids, divisor)
        counts, sums, overflow = _panoptic_core(
            pred,
            ref,
            cat_ids=cat_ids,
            things=things,
            divisor=divisor,
            cap=cap,
            checking=_checked.enabled(),
        )
        return cls(
            counts=counts,
            sums=sums,
            overflow=overflow,
            num_classes=len(cat_ids),
            category_names=names,
            category_ids=cat_ids,
            things=things,
        )

    # -- the Statistics protocol -------------------------------------------------------

    def to_numpy(self) -> np.ndarray:
        """Exact host counts ``int64 [..., 3, C]``: rows tp, fp, fn."""
        return _counts.to_int64_numpy(self.counts)

    @property
    def tp(self) -> jax.Array:
        """Matched pairs per category, float ``[..., C]``."""
        return _counts.to_float(self.counts[..., 0, :, :])

    @property
    def fp(self) -> jax.Array:
        """Unmatched predicted segments per category, float ``[..., C]``."""
        return _counts.to_float(self.counts[..., 1, :, :])

    @property
    def fn(self) -> jax.Array:
        """Unmatched reference segments per category, float ``[..., C]``."""
        return _counts.to_float(self.counts[..., 2, :, :])

    @property
    def tn(self) -> jax.Array:
        """Zeros ``[..., C]``: there are no true negative segments."""
        return jnp.zeros_like(self.tp)

    @property
    def num_overflow(self) -> jax.Array:
        """Segments past ``max_segments`` per category, float ``[..., C]``."""
        return _counts.to_float(self.overflow)

    def pair_sum(self, metric: str) -> jax.Array:
        """Sum over matched pairs of ``metric`` (``"iou"``, ``"dice"`` or an
        ``instance_metrics`` entry of the constructor), ``[..., C]``."""
        metric = v.check_choice("metric", metric, self.metrics)
        return self.sums[..., self.metrics.index(metric), :]


# -- constructor helpers -----------------------------------------------------------------


def _check_instance_metrics(instance_metrics: Any) -> tuple[str, ...]:
    if isinstance(instance_metrics, str):
        instance_metrics = (instance_metrics,)
    out = tuple(instance_metrics)
    for m in out:
        v.check_choice("instance_metrics", m, INSTANCE_METRICS)
    if len(set(out)) != len(out):
        raise ValueError(f"`instance_metrics` has repeated entries: {out}.")
    return out


def _check_spacing(spacing: Any, ndim: int) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    sp = tuple(float(x) for x in np.atleast_1d(np.asarray(spacing, np.float64)))
    if len(sp) == 1:
        sp = sp * ndim
    if len(sp) != ndim or not all(x > 0 and math.isfinite(x) for x in sp):
        raise ValueError(
            f"`spacing` must be {ndim} positive finite numbers (one per spatial axis); "
            f"got {spacing!r}."
        )
    return sp


def _check_options(
    matching,
    match_metric,
    threshold,
    strict,
    max_segments,
    instance_metrics=(),
    spacing=None,
    ndim=2,
) -> tuple:
    matching = v.check_choice("matching", matching, MATCHINGS)
    match_metric = v.check_choice("match_metric", match_metric, PAIR_METRICS)
    threshold = v.check_nonnegative("threshold", threshold)
    strict = v.check_bool("strict", strict)
    if isinstance(max_segments, bool) or not isinstance(max_segments, int | np.integer):
        raise TypeError(f"`max_segments` must be a positive int; got {max_segments!r}.")
    if max_segments < 1:
        raise ValueError(f"`max_segments` must be at least 1; got {max_segments}.")
    return (
        ("matching", matching),
        ("match_metric", match_metric),
        ("threshold", threshold),
        ("strict", strict),
        ("num_segments", int(max_segments)),
        ("instance_metrics", _check_instance_metrics(instance_metrics)),
        ("spacing", _check_spacing(spacing, ndim)),
    )


def _check_regions(regions: Any, c: int) -> tuple[list[tuple[int, ...]], tuple[str, ...]]:
    if not isinstance(regions, Mapping) or not regions:
        raise TypeError(
            "`regions` must be a non-empty mapping {name: class ids}, e.g. "
            f"{{'wt': (1, 2, 3)}}; got {regions!r}."
        )
    groups = []
    for name, ids in regions.items():
        ids = (ids,) if isinstance(ids, int) else tuple(ids)
        if not ids or any(isinstance(i, bool) or not isinstance(i, int | np.integer) for i in ids):
            raise TypeError(f"`regions[{name!r}]` must be class ids (ints); got {ids!r}.")
        bad = [i for i in ids if not 0 <= i < c]
        if bad:
            raise ValueError(
                f"`regions[{name!r}]` has class ids outside [0, {c}) (num_classes={c}): {bad}."
            )
        groups.append(tuple(int(i) for i in ids))
    return groups, tuple(str(n) for n in regions)


def _split_spacing(opts: tuple, shape: tuple[int, ...]) -> tuple[tuple, Any]:
    """``opts`` without the spacing, and the spacing as data for ``shape`` (a
    :class:`jaxseg._distance.Grid`, ``None`` without instance metrics): the
    distances are traced, so no spacing compiles a program of its own."""
    d = dict(opts)
    spacing = d.pop("spacing")
    if not d["instance_metrics"]:
        return tuple(d.items()), None
    return tuple(d.items()), _distance.grid(spacing or (1.0,) * len(shape), tuple(shape))


def _counts_of(pred, ref, num_pred, num_ref, opts, checking, grid):
    """``[batch, K, *spatial]`` segment maps -> per-image (counts, sums, overflow) ``[..., K]``."""
    one = lambda p, r, n_p, n_r: segment_counts(p, r, n_p, n_r, grid=grid, **dict(opts))  # noqa: E731
    counts, sums, overflow = jax.vmap(jax.vmap(one))(pred, ref, num_pred, num_ref)
    if checking:
        checkify.check(
            ~jnp.any(overflow > 0),
            f"jaxseg: {{count}} segment(s) past `max_segments={dict(opts)['num_segments']}` "
            "were left out of the matching (counted as unmatched); raise `max_segments`.",
            count=jnp.sum(overflow),
        )
    return counts, sums, overflow  # [B, K, 3], [B, K, M], [B, K]


@functools.partial(jax.jit, static_argnames=("ignored", "connectivity", "opts", "checking"))
def _semantic_core(preds, labs, table, grid, *, ignored, connectivity, opts, checking):
    """Class maps -> components of each category mask (``table [K, C]``) -> matched counts."""
    keep = jnp.ones(labs.shape, bool)
    for i in ignored:
        keep = keep & (labs != i)
    c = table.shape[1]

    def masks(x):
        inside = (x >= 0) & (x < c)
        member = table[:, jnp.where(inside, x, 0)] & (inside & keep)[None]  # [K, batch, ...]
        return jnp.moveaxis(member, 0, 1)

    k = table.shape[0]
    cc = jax.vmap(jax.vmap(lambda m: connected_components(m, connectivity=connectivity)))
    seg, num = cc(jnp.concatenate([masks(preds), masks(labs)], 1))  # one pass for both
    return _counts_of(seg[:, :k], seg[:, k:], num[:, :k], num[:, k:], opts, checking, grid)


@functools.partial(jax.jit, static_argnames=("opts", "checking"))
def _instances_core(pred, ref, grid, *, opts, checking):
    """``[batch, K, *spatial]`` instance id maps (any ids) -> matched counts."""
    cap = dict(opts)["num_segments"]
    compact = jax.vmap(jax.vmap(lambda x: _compact(x, cap)))
    seg, num = compact(jnp.concatenate([pred, ref], 1))
    k = pred.shape[1]
    return _counts_of(seg[:, :k], seg[:, k:], num[:, :k], num[:, k:], opts, checking, grid)


@functools.partial(jax.jit, static_argnames=("columns", "c"))
def _leaves(counts, sums, overflow, *, columns, c):
    """Per-image ``[B, K, ...]`` results of the scored columns -> the state's leaves."""
    if len(columns) != c:
        cols = np.asarray(columns, np.int32)
        b = counts.shape[0]
        counts = jnp.zeros((b, c, 3), counts.dtype).at[:, cols].set(counts)
        sums = jnp.zeros((b, c, sums.shape[-1]), sums.dtype).at[:, cols].set(sums)
        overflow = jnp.zeros((b, c), overflow.dtype).at[:, cols].set(overflow)
    return (
        _counts.from_int(jnp.swapaxes(counts, 1, 2)),
        jnp.swapaxes(sums, 1, 2).astype(v.float_dtype()),
        _counts.from_int(overflow),
    )


def _assemble(counts, sums, overflow, columns, c, ignore, names, opts) -> PanopticStats:
    """A state with ``c`` categories from the results of the scored ``columns``."""
    counts, sums, overflow = _leaves(counts, sums, overflow, columns=tuple(columns), c=c)
    return PanopticStats(
        counts=counts,
        sums=sums,
        overflow=overflow,
        num_classes=c,
        ignore_classes=ignore,
        category_names=names,
        metrics=PAIR_METRICS + dict(opts)["instance_metrics"],
    )


# -- scores -----------------------------------------------------------------------------


# -- iIoU: Cityscapes' instance-weighted IoU ---------------------------------------------


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class InstanceIoUStats(StateAlgebra):
    """Instance-weighted statistics for Cityscapes' iIoU, per class and per category.

    Each ground-truth instance ``i`` of class ``c`` weighs its pixels by
    ``w_i = class_sizes[c] / |i|`` (Cityscapes' ``avgClassSize``: the dataset's
    average instance size of the class), so that small objects count as much
    as large ones::

        iIoU_c = sum_i w_i tp_i / (sum_i w_i tp_i + fp_c + sum_i w_i fn_i)

    ``tp_i``: pixels of ``i`` predicted as ``c``; ``fn_i = |i| - tp_i``;
    ``fp_c``: valid pixels labelled with another class and predicted as ``c``
    (not weighted). A category's iIoU is the same with "predicted as any class
    of the category", over the instances of its classes. Instances are read
    from panoptic ids ``class * label_divisor + k`` (``k >= 0``, Cityscapes'
    ``instanceIds``); smaller ids (stuff, crowd regions, which Cityscapes
    labels with the plain class id) and ids of classes without a size belong to
    no instance: their pixels enter only ``fp``.

    Why a state of its own, not an option of :class:`ConfusionMatrix`: the
    weights are rationals per instance, so the weighted sums are float leaves
    (summed as floats by ``merge`` and ``psum``) next to exact ``fp`` counts
    (limbs), and the instance weighting needs the instance map, which a
    confusion matrix never sees. It sits on the same algebra: ``merge`` / ``+``,
    ``reduce``, ``psum``.

    Scores come from the one score chain: :attr:`classes` and
    :attr:`categories` have the :class:`~jaxseg.Statistics` protocol, so
    ``jaxseg.iou(state.classes, average=None)`` is the per-class iIoU (NaN for
    classes without instances and for empty classes, as cityscapesScripts
    reports) and ``jaxseg.iou(state.classes)`` its mean over the scored
    classes; the same for categories.

    Precision: sizes and hits per instance are exact integers; each instance's
    ``tp_i * w_i`` and ``fn_i * w_i`` are formed as cityscapesScripts forms them
    and summed per class in the JAX float type (float32 unless
    ``jax_enable_x64``: about 1e-7 relative; float64 with x64). The command
    line (``jaxseg evaluate --instances``) computes the same terms on the host
    in float64 and equals cityscapesScripts to 1e-12.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> labels = jnp.array([[[1, 1, 1, 1, 0, 1, 1, 0]]])  # [batch, H, W]: class 1 = things
      >>> inst = jnp.array([[[10, 10, 10, 10, 0, 11, 11, 0]]])  # two instances, divisor 10
      >>> preds = jnp.array([[[1, 1, 0, 0, 1, 1, 1, 0]]])
      >>> s = jaxseg.InstanceIoUStats.from_predictions(
      ...     preds, labels, inst, num_classes=2, class_sizes={1: 3.0}, label_divisor=10
      ... ).reduce()
      >>> # weights 3/4 and 3/2: tp = 2*0.75 + 2*1.5 = 4.5, fn = 2*0.75, fp = 1
      >>> jaxseg.iou(s.classes, average=None)  # 4.5 / (4.5 + 1 + 1.5)
      Array([       nan, 0.64285713], dtype=float32)

    Attributes:
      weighted: float ``[..., 2, C + K]``: weighted true positives and false
        negatives of the ``C`` classes, then of the ``K`` categories.
      fp: ``uint32 [..., C + K, 3]`` limbs of the false positives.
      num_classes: ``C`` (static).
      ignore_classes: ignored ids inside ``[0, C)`` (static).
      class_sizes: average instance size per class, 0 for classes without
        instances (static).
      category_names: the ``K`` category names (static).
      category_of: category index per class, -1 for none (static).
      label_divisor: ``d`` of the instance ids ``class * d + k`` (static).

    References:
      Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene
      Understanding", CVPR 2016; cityscapesScripts,
      ``evaluation/evalPixelLevelSemanticLabeling.py``.
    """

    weighted: jax.Array = dataclasses.field(metadata=FLOAT)
    fp: jax.Array = dataclasses.field(metadata=LIMBS)
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    class_sizes: tuple[float, ...] = _static(())
    category_names: tuple[str, ...] = _static(())
    category_of: tuple[int, ...] = _static(())
    label_divisor: int = _static(1000)
    exclusive: ClassVar[bool] = False

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        g = self.num_classes + len(self.category_names)
        return {"weighted": (2, g), "fp": (g, _counts.NUM_LIMBS)}

    def _settings(self) -> Any:
        from jaxseg import _iiou

        return _iiou.Settings(
            self.num_classes,
            self.class_sizes,
            self.category_names,
            self.category_of,
            self.label_divisor,
            self.ignore_classes,
        )

    @classmethod
    def _of(cls, weighted: jax.Array, fp: jax.Array, s: Any) -> InstanceIoUStats:
        return cls(
            weighted=weighted,
            fp=fp,
            num_classes=s.num_classes,
            ignore_classes=s.ignore_classes,
            class_sizes=s.class_sizes,
            category_names=s.category_names,
            category_of=s.category_of,
            label_divisor=s.label_divisor,
        )

    @classmethod
    def empty(
        cls,
        num_classes: int,
        *,
        class_sizes: Mapping[int, float],
        categories: Mapping[str, Sequence[int]] | None = None,
        label_divisor: int = 1000,
        ignore_index: Any = None,
    ) -> InstanceIoUStats:
        """The identity of :meth:`merge` (no batch axis); arguments as :meth:`from_predictions`."""
        from jaxseg import _iiou

        s = _iiou.settings(num_classes, class_sizes, categories, label_divisor, ignore_index)
        g = s.num_groups
        return cls._of(jnp.zeros((2, g), v.float_dtype()), _counts.zeros((g,)), s)

    @classmethod
    def from_predictions(
        cls,
        predictions: ArrayLike,
        labels: ArrayLike,
        instances: ArrayLike,
        *,
        num_classes: int,
        class_sizes: Mapping[int, float],
        categories: Mapping[str, Sequence[int]] | None = None,
        label_divisor: int = 1000,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
    ) -> InstanceIoUStats:
        """Per-image iIoU statistics of class maps and a ground-truth instance map.

        A pixel is valid when ``where`` is true; it enters ``fp`` when its label is
        also in ``[0, C)`` and not in ``ignore_index`` (predictions outside
        ``[0, C)`` are void: no class, no category).

        Args:
          predictions: integer ``[batch, *spatial]`` predicted class ids.
          labels: integer ``[batch, *spatial]`` true class ids.
          instances: integer ``[batch, *spatial]`` instance ids ``class *
            label_divisor + k`` in the class ids of ``labels``; ids below
            ``label_divisor`` are no instance.
          num_classes: ``C``.
          class_sizes: ``{class id: average instance size}``, the classes scored
            by instance (Cityscapes' ``avgClassSize``).
          categories: optional ``{name: class ids}``; a class may be in one
            category at most.
          label_divisor: ``d`` of the instance ids (default 1000, Cityscapes').
          ignore_index: label id(s) whose pixels are no false positives (and
            classes left out of the class average).
          where: optional boolean mask broadcastable to ``labels``.

        Returns:
          A per-image state, batch shape ``[batch]``; ``reduce()`` gives the
          dataset state.

        Examples:
          >>> import jax.numpy as jnp, jaxseg
          >>> s = jaxseg.InstanceIoUStats.from_predictions(
          ...     jnp.array([[2, 2, 0]]), jnp.array([[2, 2, 2]]), jnp.array([[20, 20, 21]]),
          ...     num_classes=3, class_sizes={2: 1.0}, label_divisor=10)
          >>> s.weighted[0, :, 2]  # tp: 2 * 1/2, fn: 1 * 1/1
          Array([1., 1.], dtype=float32)
        """
        from jaxseg import _iiou

        s = _iiou.settings(num_classes, class_sizes, categories, label_divisor, ignore_index)
        arrays = []
        for name, x in (("predictions", predictions), ("labels", labels), ("instances", instances)):
            arrays.append(v.check_int_labels(v.as_int_array(x, name), name))
        pred, lab, inst = arrays
        v.check_same_shape("predictions", pred, "labels", lab)
        v.check_same_shape("instances", inst, "labels", lab)
        if lab.ndim < 2:
            raise ValueError(
                f"`labels` must have a batch axis, [batch, *spatial]; got shape {tuple(lab.shape)}."
            )
        mask = v.broadcast_where(where, lab.shape)
        if mask is None:
            mask = jnp.ones(lab.shape, bool)
        flat = [x.reshape(x.shape[0], -1) for x in (pred, lab, inst, mask)]
        weighted, fp = _iiou_batch(*flat, s=s, ftype=v.float_dtype())
        return cls._of(weighted, _counts.from_int(fp), s)

    @classmethod
    def cityscapes(
        cls,
        predictions: ArrayLike,
        labels: ArrayLike,
        instances: ArrayLike,
        *,
        where: ArrayLike | None = None,
    ) -> InstanceIoUStats:
        """:meth:`from_predictions` with cityscapesScripts' settings, on Cityscapes labelIds.

        ``predictions`` and ``labels`` are labelIds (0..33, what
        cityscapesScripts reads; other values are void), ``instances`` the
        ``gtFine_instanceIds``. Classes: the eight evaluated instance classes
        (person, rider, car, truck, bus, train, motorcycle, bicycle) with
        cityscapesScripts' ``avgClassSize``; categories human (person, rider)
        and vehicle (car, truck, bus, caravan, trailer, train, motorcycle,
        bicycle: a caravan or trailer prediction counts for the vehicle
        category); labelIds with trainId 255 are ignored. Class ids of the
        result are labelIds: ``jaxseg.iou(s.classes, average=None)[26]`` is car.

        Examples:
          >>> import jax.numpy as jnp, jaxseg
          >>> labels = jnp.array([[7, 26, 26, 24]], jnp.uint8)  # road, car, car, person
          >>> inst = jnp.array([[7, 26000, 26000, 24000]])
          >>> preds = jnp.array([[7, 26, 27, 24]], jnp.uint8)  # one car pixel as truck
          >>> s = jaxseg.InstanceIoUStats.cityscapes(preds, labels, inst).reduce()
          >>> jaxseg.iou(s.classes, average=None)[jnp.array([24, 26])]  # person, car
          Array([1. , 0.5], dtype=float32)
          >>> jaxseg.iou(s.categories, average=None)  # human, vehicle
          Array([1., 1.], dtype=float32)
        """
        from jaxseg import _iiou

        c = _iiou.CITYSCAPES
        return cls.from_predictions(
            predictions,
            labels,
            instances,
            num_classes=c.num_classes,
            class_sizes=_iiou.CITYSCAPES_AVG_CLASS_SIZE,
            categories=_iiou.CITYSCAPES_CATEGORIES,
            label_divisor=c.label_divisor,
            ignore_index=_iiou.CITYSCAPES_IGNORED,
            where=where,
        )

    @property
    def classes(self) -> Any:
        """Per-class weighted statistics ``[..., C]`` (Statistics protocol; ``tn`` is NaN)."""
        from jaxseg import _iiou

        fp = _counts.to_float(self.fp, self.weighted.dtype)
        return _iiou.weighted_stats(self.weighted, fp, self._settings(), categories=False)

    @property
    def categories(self) -> Any:
        """Per-category weighted statistics ``[..., K]`` (Statistics protocol; ``tn`` is NaN)."""
        from jaxseg import _iiou

        fp = _counts.to_float(self.fp, self.weighted.dtype)
        return _iiou.weighted_stats(self.weighted, fp, self._settings(), categories=True)

    def fp_to_numpy(self) -> np.ndarray:
        """Exact host false-positive counts ``int64 [..., C + K]``."""
        return _counts.to_int64_numpy(self.fp)


@functools.partial(jax.jit, static_argnames=("s", "ftype"))
def _iiou_batch(pred, lab, inst, mask, *, s, ftype):
    """Per-image iIoU terms of flat ``[batch, N]`` maps: one compiled program per shape."""
    from jaxseg import _iiou

    def one(p, l, i, m):
        return _iiou.image_terms(p, l, i, s, valid=m, float_dtype=ftype)

    return jax.vmap(one)(pred, lab, inst, mask)
