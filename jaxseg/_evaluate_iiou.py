"""``jaxseg evaluate --instances``: Cityscapes' instance-weighted IoU (iIoU) on the host.

Each pair's ground-truth instance map (``gtFine_instanceIds``, found by
``--instance-pattern`` under ``--instances``) is read in the same worker
thread as its label map, and the pair's iIoU terms are computed by the one
implementation in :mod:`jaxseg._iiou`, in NumPy: exact integer sizes, hits and
false positives, float64 weights ``w_i = avgClassSize / |i|``.

Summation order: each instance's ``tp_i * w_i`` and ``fn_i * w_i`` are formed
as cityscapesScripts forms them (the same float64 operations, so the same
values); per image they are summed per class over the instance ids (NumPy's
pairwise sum), then the images are added in the order of the pairs (sorted by
name). cityscapesScripts adds the same values one instance at a time in the
order of its image list; the two sums differ by rounding only (a few units of
1e-16 relative), and the tests require 1e-12. The sums are scored by the score
chain (``iou`` of the weighted statistics), as ``evaluateImgLists`` with
``evalInstLevelScore=True`` scores them: the class iIoU over the eight evaluated
instance classes, the category iIoU over human and vehicle, NaN for a class with
nothing to score, means over the rest.

The terms are computed in Cityscapes labelIds, what cityscapesScripts reads:
predictions are mapped back from trainIds under ``--no-map-predictions``
(trainId 255 is void), so a caravan or trailer prediction (no trainId) counts
for the vehicle category only when predictions are labelIds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxseg import _iiou, _io, _report, _scores

#: The default ``--instance-pattern``: Cityscapes' gtFine instance maps.
DEFAULT_PATTERN = "{name}_gtFine_instanceIds.png"


@dataclasses.dataclass
class InstanceIoU:
    """Finds each pair's instance map, computes its terms, sums and reports them."""

    folder: str
    pattern: str
    files: dict[str, Path]
    by_base: dict[str, Path]
    label_map: Any
    map_predictions: bool
    weighted: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((2, _iiou.CITYSCAPES.num_groups))
    )
    fp: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(_iiou.CITYSCAPES.num_groups, np.int64)
    )

    def path(self, pair: _io.Pair) -> Path:
        found = self.files.get(pair.name) or self.by_base.get(pair.name.rsplit("/", 1)[-1])
        if found is None:
            base = pair.name.rsplit("/", 1)[-1]
            raise _io.InputError(
                Path(self.folder) / self.pattern.replace("{name}", base),
                f"missing: the instance map of {pair.label} (--instances, --instance-pattern)",
            )
        return found

    def inputs(self, pairs: Sequence[_io.Pair]) -> Iterable[tuple[str, Any]]:
        """The instance maps a run reads (no output may name one of them)."""
        for pair in pairs:
            try:
                yield "an instance map", self.path(pair)
            except _io.InputError:  # missing: reported when the pair is read
                continue

    def terms(
        self, pair: _io.Pair, pred: np.ndarray, label: np.ndarray, max_pixels: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The iIoU terms of one pair: ``(weighted float64 [2, G], fp int64 [G])``."""
        path = self.path(pair)
        inst = _io.read_label_map(path, max_pixels=max_pixels).values
        if inst.shape != label.shape:
            raise _io.InputError(
                path,
                f"shape {'x'.join(map(str, inst.shape))} differs from the label's "
                f"{'x'.join(map(str, label.shape))} ({pair.label})",
            )
        _check_instance_ids(path, inst)
        if not self.map_predictions:  # trainIds back to labelIds; 255 and others are void
            back = np.full(256, 255, np.int64)
            for label_id, train_id in self.label_map.mapping.items():
                if 0 <= label_id and 0 <= train_id < 255:
                    back[train_id] = label_id
            pred = np.where((pred >= 0) & (pred < 256), back[np.clip(pred, 0, 255)], 255)
        return _iiou.image_terms(pred.ravel(), label.ravel(), inst.ravel(), _iiou.CITYSCAPES)

    def add_to_report(
        self, report: dict[str, Any], terms: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> np.ndarray:
        """Sum the pairs' ``terms`` in order; add per-class ``iiou`` cells (trainId rows),
        the class and category iIoU and their means to ``report``, and each image's own
        iIoU to its entry of ``report["images"]`` (the iIoU of a one-image list).

        Returns the per-image class iIoU ``[N, C]`` by trainId column (NaN for a class
        without an iIoU), for the ``--per-image`` CSV.
        """
        s = _iiou.CITYSCAPES
        for weighted, fp in terms:
            self.weighted += weighted
            self.fp += fp
        classes = _iiou.weighted_stats(self.weighted, self.fp, s, categories=False)
        cats = _iiou.weighted_stats(self.weighted, self.fp, s, categories=True)
        per_class = _scores.iou(classes, average=None)
        per_cat = _scores.iou(cats, average=None)
        names = self.label_map.class_names
        instance_ids = sorted(_iiou.CITYSCAPES_AVG_CLASS_SIZE)
        by_train = {
            self.label_map.mapping[label_id]: float(per_class[label_id])
            for label_id in instance_ids
        }
        for r in report["classes"]:
            r["iiou"] = by_train.get(r["id"], math.nan)
        report["instance_columns"] = ["iiou"]
        report.setdefault("titles", {})["iiou"] = "iIoU"
        report["iiou"] = {
            "classes": {names[t]: v for t, v in by_train.items()},
            "class_mean": float(_scores.iou(classes)),
            "categories": {n: float(x) for n, x in zip(s.category_names, per_cat, strict=True)},
            "category_mean": float(_scores.iou(cats)),
            "weights": "cityscapesScripts avgClassSize / instance size",
        }
        # each image alone: the same chain on its own terms
        weighted = np.stack([w for w, _ in terms])
        fps = np.stack([f for _, f in terms])
        image_classes = _iiou.weighted_stats(weighted, fps, s, categories=False)
        image_cats = _iiou.weighted_stats(weighted, fps, s, categories=True)
        image_per_class = np.asarray(_scores.iou(image_classes, average=None))
        image_per_cat = np.asarray(_scores.iou(image_cats, average=None))
        image_class_mean = np.asarray(_scores.iou(image_classes))
        image_cat_mean = np.asarray(_scores.iou(image_cats))
        by_column = np.full((len(terms), len(names)), math.nan)
        for i, entry in enumerate(report["images"]):
            entry["iiou"] = {
                names[self.label_map.mapping[lid]]: float(image_per_class[i, lid])
                for lid in instance_ids
            }
            entry["iiou_class_mean"] = float(image_class_mean[i])
            entry["iiou_categories"] = {
                n: float(x) for n, x in zip(s.category_names, image_per_cat[i], strict=True)
            }
            entry["iiou_category_mean"] = float(image_cat_mean[i])
            for lid in instance_ids:
                by_column[i, self.label_map.mapping[lid]] = image_per_class[i, lid]
        return by_column


def _allowed(ids: np.ndarray) -> np.ndarray:
    """An id below 1000, or ``class * 1000 + k`` of an instance class or of a class not
    evaluated: the ids cityscapesScripts reads without failing."""
    known = np.isin(ids // 1000, (*_iiou.CITYSCAPES_AVG_CLASS_SIZE, *_iiou.CITYSCAPES_IGNORED))
    return (ids < 1000) | known


_ALLOWED_16 = _allowed(np.arange(1 << 16))


def _check_instance_ids(path: Path, inst: np.ndarray) -> None:
    """Ids ``class * 1000 + k`` must name an instance class (or one not evaluated)."""
    if inst.dtype == np.uint16 or inst.dtype == np.uint8:
        bad = inst[~_ALLOWED_16[inst]]
    else:
        ids = np.unique(inst[inst >= 1000]).astype(np.int64)  # 32-bit maps (Pillow mode I)
        bad = ids[~_allowed(ids)]
    if bad.size:
        first = int(bad.ravel()[0])
        raise _io.InputError(
            path,
            f"instance id {first}: labelId {first // 1000} is not a Cityscapes class with "
            "instances (ids are labelId * 1000 + k)",
        )


def setup(opts: Any, label_map: Any) -> InstanceIoU | None:
    """Check the options and index the instance maps; ``None`` without ``--instances``."""
    if opts.instances is None:
        if opts.instance_pattern is not None:
            raise _io.InputError(None, "--instance-pattern: needs --instances GT_INSTANCE_DIR")
        return None
    if (opts.label_map or "").lower() != "cityscapes" or opts.binary:
        raise _io.InputError(
            None,
            "--instances: the iIoU uses Cityscapes' instance classes and average sizes; "
            "it needs --label-map cityscapes (and no --binary)",
        )
    if opts.prob_pattern or any(_report.METRICS[m].probability for m in opts.metrics):
        raise _io.InputError(None, "--instances: scores label maps, not probability maps")
    pattern = opts.instance_pattern or DEFAULT_PATTERN
    files = _io.list_files(
        opts.instances,
        _io.compile_pattern(pattern, "--instance-pattern"),
        recursive=opts.recursive,
    )
    by_base: dict[str, list[Path]] = {}
    for key, p in files.items():
        by_base.setdefault(key.rsplit("/", 1)[-1], []).append(p)
    unique = {b: ps[0] for b, ps in by_base.items() if len(ps) == 1}
    return InstanceIoU(opts.instances, pattern, files, unique, label_map, opts.map_predictions)


def format_lines(report: dict[str, Any]) -> str:
    """The iIoU summary: class mean, then each category and their mean."""
    res = report.get("iiou")
    if res is None:
        return ""
    rows = [("iIoU, class mean (instance classes, Cityscapes' weights)", res["class_mean"])]
    rows += [(f"iIoU, category {n}", x) for n, x in res["categories"].items()]
    rows.append(("iIoU, category mean", res["category_mean"]))
    width = max(len(t) for t, _ in rows)
    return "\n".join(f"{t:<{width}}  {_report._fmt(x)}" for t, x in rows)
