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

from jaxseg import _checked, _counts
from jaxseg import _classwise as cw_
from jaxseg import _validation as v
from jaxseg._components import check_connectivity, connected_components
from jaxseg._distance import medpy_hd_assd
from jaxseg._state import FLOAT, LIMBS, StateAlgebra, _static

ArrayLike = jax.typing.ArrayLike

#: Sums over matched pairs, in the order of the ``sums`` leaf.
PAIR_METRICS = ("iou", "dice")
#: Distances between matched segments that may be summed too (``instance_metrics``).
INSTANCE_METRICS = ("hd95", "assd")
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


def pair_scores(table: jax.Array) -> dict[str, jax.Array]:
    """IoU and Dice of every (reference, prediction) pair ``[S, S]`` from :func:`overlaps`."""
    f = v.float_dtype()
    inter = table[1:, 1:].astype(f)
    area_ref = table[1:, :].sum(1).astype(f)[:, None]
    area_pred = table[:, 1:].sum(0).astype(f)[None, :]
    union = area_ref + area_pred - inter
    total = area_ref + area_pred
    return {
        "iou": jnp.where(inter > 0, inter / jnp.where(union > 0, union, 1), 0.0),
        "dice": jnp.where(inter > 0, 2 * inter / jnp.where(total > 0, total, 1), 0.0),
    }


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


def _beats(score: jax.Array, threshold: float, strict: bool) -> jax.Array:
    return score > threshold if strict else score >= threshold


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
    candidate = (
        (scores["iou"] > 0)
        & ref_present[:, None]
        & pred_present[None, :]
        & _beats(weight, threshold, strict)
    )
    if matching == "threshold":
        if match_metric == "iou" and (threshold > 0.5 or (strict and threshold == 0.5)):
            return candidate  # IoU > 0.5 for two disjoint segments with one: impossible
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
    spacing: tuple[float, ...] | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One image, one category: ``(tp, fp, fn) int32``, pair sums ``[M]`` and overflow.

    ``pred`` / ``ref`` are segment maps numbered ``1..num_*``; segments numbered past
    ``num_segments`` are left out of the matching (they cannot be true positives)
    but still count as false positives / negatives, and in the overflow.
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

        grid = spacing if spacing is not None else (1.0,) * pred.ndim

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


def _compact(ids: jax.Array, cap: int) -> tuple[jax.Array, jax.Array]:
    """Renumber the distinct non-zero ids of an instance map ``1..n`` in increasing order.

    Returns the map (ids past the ``cap``-th distinct one become ``cap + 1``) and ``n``.
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
    return out.reshape(ids.shape), count


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
      category_names: region names, or ``None`` for classes (static).

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
        counts, sums, overflow = _instances_core(
            pred[:, None], ref[:, None], opts=opts, checking=_checked.enabled()
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
          spacing: element spacing, one float per spatial axis (distances only).

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
        counts, sums, overflow = _semantic_core(
            preds,
            labs,
            jnp.asarray(table),
            ignored=ignored,
            connectivity=conn,
            opts=opts,
            checking=_checked.enabled(),
        )
        return _assemble(
            counts, sums, overflow, columns, len(groups), tuple(sorted(skip)), names, opts
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


def _counts_of(pred, ref, num_pred, num_ref, opts, checking):
    """``[batch, K, *spatial]`` segment maps -> per-image (counts, sums, overflow) ``[..., K]``."""
    one = lambda p, r, n_p, n_r: segment_counts(p, r, n_p, n_r, **dict(opts))  # noqa: E731
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
def _semantic_core(preds, labs, table, *, ignored, connectivity, opts, checking):
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
    return _counts_of(seg[:, :k], seg[:, k:], num[:, :k], num[:, k:], opts, checking)


@functools.partial(jax.jit, static_argnames=("opts", "checking"))
def _instances_core(pred, ref, *, opts, checking):
    """``[batch, K, *spatial]`` instance id maps (any ids) -> matched counts."""
    cap = dict(opts)["num_segments"]
    compact = jax.vmap(jax.vmap(lambda x: _compact(x, cap)))
    seg, num = compact(jnp.concatenate([pred, ref], 1))
    k = pred.shape[1]
    return _counts_of(seg[:, :k], seg[:, k:], num[:, :k], num[:, k:], opts, checking)


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


def _check_state(state: Any) -> PanopticStats:
    if not isinstance(state, PanopticStats):
        raise TypeError(f"`state` must be a PanopticStats; got {type(state).__name__}.")
    return state


def _score(
    state: PanopticStats,
    num: jax.Array,
    den: jax.Array,
    *,
    average: str | None,
    empty: float,
    zero: float = 0.0,
) -> jax.Array:
    """Per-category ``num / den`` with the empty rule of the chain, then the class average.

    A category is empty when ``tp + fp + fn == 0`` (score ``empty``, NaN by default,
    left out of averages); a zero denominator otherwise scores 0. ``"micro"`` pools
    ``num`` and ``den`` over the included categories first.
    """
    average = v.check_average(average)
    if isinstance(empty, bool) or not isinstance(empty, int | float):
        raise TypeError(f"`empty` must be a number or NaN; got {empty!r}.")
    tp, fp, fn = state.tp, state.fp, state.fn
    include = cw_.include_mask(state.counted_classes, tp.shape)
    if average == "micro":
        pooled = [jnp.sum(jnp.where(include, x, 0.0), -1) for x in (num, den, tp + fp + fn)]
        is_empty = pooled[2] == 0
        out = cw_.class_scores(pooled[0], pooled[1], is_empty, smooth=0.0, empty=float(empty))[0]
        return jnp.where((pooled[1] == 0) & ~is_empty, zero, out)
    is_empty = cw_.empty_classes(tp, fp, fn, soft=False)
    scores, left_out = cw_.class_scores(num, den, is_empty, smooth=0.0, empty=float(empty))
    scores = jnp.where((den == 0) & ~is_empty, zero, scores)
    return cw_.class_average(scores, include & ~left_out, average=average, support=tp + fn)


def recognition_quality(
    state: PanopticStats, *, average: str | None = "macro", empty: float = math.nan
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
    return _score(state, tp, tp + 0.5 * (fp + fn), average=average, empty=empty)


def segmentation_quality(
    state: PanopticStats,
    *,
    metric: str = "iou",
    average: str | None = "macro",
    empty: float = math.nan,
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
    return _score(state, state.pair_sum(metric), state.tp, average=average, empty=empty, zero=zero)


def panoptic_quality(
    state: PanopticStats,
    *,
    metric: str = "iou",
    average: str | None = "macro",
    empty: float = math.nan,
) -> jax.Array:
    """Panoptic quality ``PQ = SQ * RQ = sum over matched pairs of IoU / (tp + fp/2 + fn/2)``.

    ``metric="dice"`` gives panoptica's ``pq_dsc``. A category with no segments
    scores ``empty`` (NaN); with segments but no match, 0.

    Args:
      state: a :class:`PanopticStats`.
      metric: ``"iou"`` (default) or ``"dice"``.
      average: ``None``, ``"micro"``, ``"macro"`` (default) or ``"weighted"``.
      empty: value of a category with no segments.

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
    return _score(state, state.pair_sum(metric), tp + 0.5 * (fp + fn), average=average, empty=empty)


def lesion_wise(
    state: PanopticStats,
    *,
    metric: str = "dice",
    fill: float = 0.0,
    average: str | None = "macro",
    empty: float = math.nan,
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
    return _score(state, num, tp + fp + fn, average=average, empty=empty)
