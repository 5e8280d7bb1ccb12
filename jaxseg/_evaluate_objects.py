"""Object metrics of ``jaxseg evaluate``: components matched per image, scored per dataset.

``--metrics pq,sq,rq,instance_f1,lesion_dice,lesion_hd95`` turns each pair of
class maps into one per-image :class:`jaxseg.PanopticStats` (the connected
components of every foreground class, or of every ``--regions`` group, matched
one to one); the per-image states are concatenated, and every number of the
report is one of the library's score functions of them: per image on the
batched state, per dataset on its ``reduce()``.

Compilation is bounded as for the distance metrics: each pair is padded at the
high end of every axis to a bucket shape (:func:`jaxseg._evaluate_distance.bucket`)
with the value ``-1``, a class id of no class and no region. Padding changes no
value: a padded element belongs to no mask, so components and their numbering
(the C order of first elements) are the same; medpy's border voxels treat the
outside of the grid as background, as the padded elements are; distances
between original voxels do not depend on the grid's extent.

The static segment cap of the matching (``max_segments``) starts small and is
raised (×4) and the pair run again whenever the state counts an overflow, so
no segment is ever left out of the matching, and a folder of small lesion
counts compiles for a small cap. Compilations: one per bucket shape and cap; the
voxel spacing of ``lesion_hd95`` enters the program as data, so a folder of
volumes with as many spacings as files compiles no more.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxseg import _io, _report

#: ``--metrics`` names of object metrics, in report order.
OBJECT_METRICS = ("pq", "sq", "rq", "instance_f1", "lesion_dice", "lesion_hd95")
#: BraTS 2023's value of a missed or false lesion in lesion-wise HD95.
HD95_FILL = 374.0
#: First static segment cap; raised ×4 while a pair overflows it.
FIRST_CAP = 16
MAX_CAP = 4096

#: ``--matching``: the keywords of :meth:`jaxseg.PanopticStats.from_semantic`.
MATCHINGS = {
    # panopticapi's rule (and panoptica's NaiveThresholdMatching(strict_threshold=True))
    "threshold": {"matching": "threshold", "match_metric": "iou", "threshold": 0.5, "strict": True},
    # BraTS' configuration: maximum-weight matching of Dice >= 1e-6
    "bipartite": {
        "matching": "bipartite",
        "match_metric": "dice",
        "threshold": 1e-6,
        "strict": False,
    },
}
_DESCRIBE = {
    "threshold": "pairs with IoU > 0.5 (unique)",
    "bipartite": "maximum-weight one-to-one matching of Dice >= 1e-6 (BraTS)",
}
_REGION = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*=\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*")


def parse_regions(text: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    """``"wt=1,2,3:tc=1,3:et=3"`` -> ``{"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}``.

    Raises:
      InputError: bad syntax, a repeated name, or a class id outside ``[0, C)``.
    """
    out: dict[str, tuple[int, ...]] = {}
    for part in text.split(":"):
        m = _REGION.fullmatch(part)
        if m is None:
            raise _io.InputError(
                None,
                f"--regions: expected NAME=ID[,ID...] groups separated by ':', e.g. "
                f"wt=1,2,3:tc=1,3:et=3; got {part.strip()!r} in {text!r}",
            )
        name = m.group(1)
        ids = tuple(int(t) for t in m.group(2).split(","))
        if name in out:
            raise _io.InputError(None, f"--regions: region {name!r} is named twice in {text!r}")
        bad = [i for i in ids if not 0 <= i < num_classes]
        if bad:
            raise _io.InputError(
                None,
                f"--regions: region {name!r} has class id {bad[0]} outside [0, {num_classes}) "
                f"(--num-classes {num_classes})",
            )
        out[name] = tuple(dict.fromkeys(ids))
    return out


@dataclasses.dataclass(frozen=True)
class Setup:
    """The object options of one run, checked."""

    metrics: tuple[str, ...]
    num_classes: int
    connectivity: int = 1
    matching: str = "threshold"
    regions: dict[str, tuple[int, ...]] | None = None
    ignore: tuple[int, ...] = ()

    @property
    def categories(self) -> list[str]:
        """Names of the scored categories: the regions, or the class ids."""
        if self.regions is not None:
            return list(self.regions)
        return [str(k) for k in range(self.num_classes)]

    @property
    def instance_metrics(self) -> tuple[str, ...]:
        return ("hd95",) if "lesion_hd95" in self.metrics else ()

    def check_ndim(self, ndim: int, path: str) -> None:
        if not 1 <= ndim <= 3:
            raise _io.InputError(
                path,
                f"--metrics {','.join(self.metrics)}: needs maps of 1 to 3 axes; got {ndim} axes",
            )
        if self.connectivity > ndim:
            raise _io.InputError(
                path,
                f"--connectivity {self.connectivity}: this map has {ndim} axes "
                f"(connectivity 1..{ndim})",
            )


def setup(
    metrics: Sequence[str],
    num_classes: int,
    *,
    connectivity: int | None,
    matching: str | None,
    regions: str | None,
    ignore: Sequence[int],
) -> Setup | None:
    """The checked object options, or ``None`` when no object metric is asked for.

    Raises:
      InputError: an object option without object metrics, bad ``--regions``,
        ``--connectivity`` outside 1..3.
    """
    chosen = tuple(m for m in metrics if _report.METRICS[m].objects)
    if not chosen:
        for flag, used in (
            ("--connectivity", connectivity is not None),
            ("--matching", matching is not None),
            ("--regions", regions is not None),
        ):
            if used:
                raise _io.InputError(
                    None,
                    f"{flag} applies to object metrics: add --metrics "
                    f"{','.join(OBJECT_METRICS)} (any of them)",
                )
        return None
    conn = 1 if connectivity is None else connectivity
    if not 1 <= conn <= 3:
        raise _io.InputError(
            None, f"--connectivity must be 1..ndim (1, 2 or 3 for volumes); got {conn}"
        )
    if matching is not None and matching not in MATCHINGS:
        raise _io.InputError(
            None, f"--matching must be one of {', '.join(MATCHINGS)}; got {matching!r}"
        )
    groups = parse_regions(regions, num_classes) if regions is not None else None
    return Setup(chosen, num_classes, conn, matching or "threshold", groups, tuple(ignore))


# -- one pair ---------------------------------------------------------------------------


def pair_state(
    pred: np.ndarray,
    label: np.ndarray,
    objects: Setup,
    spacing: Sequence[float] | None = None,
) -> Any:
    """The per-image state (batch shape ``[1]``) of one pair of mapped class maps.

    Equal to ``PanopticStats.from_semantic(pred[None], label[None], ...)`` on the
    unpadded maps, with no segment past the cap (see the module docstring).
    """
    import jax.numpy as jnp

    import jaxseg
    from jaxseg import _evaluate_distance

    pred, label = _evaluate_distance._int32(pred), _evaluate_distance._int32(label)
    shape = tuple(_evaluate_distance.bucket(n) for n in pred.shape)
    p = _evaluate_distance._pad(pred, shape)[None]
    g = _evaluate_distance._pad(label, shape)[None]
    kw = dict(
        num_classes=objects.num_classes,
        connectivity=objects.connectivity,
        regions=objects.regions,
        ignore_index=objects.ignore or None,
        include_background=False,
        instance_metrics=objects.instance_metrics,
        spacing=tuple(spacing) if objects.instance_metrics and spacing is not None else None,
        **MATCHINGS[objects.matching],
    )
    cap = FIRST_CAP
    while True:
        state = jaxseg.PanopticStats.from_semantic(p, g, max_segments=cap, **kw)
        if cap >= MAX_CAP or not float(jnp.sum(state.num_overflow)):
            return state
        cap *= 4


# -- over the dataset -------------------------------------------------------------------


def _scores(state: Any, metric: str, average: str | None) -> Any:
    import jaxseg

    if metric == "pq":
        return jaxseg.panoptic_quality(state, average=average)
    if metric == "sq":
        return jaxseg.segmentation_quality(state, average=average)
    if metric in ("rq", "instance_f1"):  # the detection F1 is the recognition quality
        return jaxseg.recognition_quality(state, average=average)
    if metric == "lesion_dice":
        return jaxseg.lesion_wise(state, metric="dice", fill=0.0, average=average)
    return jaxseg.lesion_wise(state, metric="hd95", fill=HD95_FILL, average=average)


@functools.cache
def _program() -> Any:
    """One jitted program for every score of the run (eager scoring compiles op by op)."""
    import jax

    @functools.partial(jax.jit, static_argnames="metrics")
    def run(batched: Any, metrics: tuple[str, ...]) -> dict[str, Any]:
        dataset = batched.reduce()
        return {
            m: (_scores(batched, m, None), _scores(dataset, m, None), _scores(dataset, m, "macro"))
            for m in metrics
        }

    return run


def add_to_report(
    report: dict[str, Any], states: Sequence[Any], objects: Setup
) -> dict[str, np.ndarray]:
    """Add the object section, per-image object values and the case counts to ``report``.

    ``states`` are the per-image :class:`jaxseg.PanopticStats` of :func:`pair_state`
    (one per entry of ``report["images"]``). Per category: the scores of the summed
    state (objects pooled over cases) and the mean of the finite case values
    (through :class:`jaxseg.DistanceStats`, NaN and infinite cases counted).
    Returns the per-image values ``{"tp"/"fp"/"fn"/metric: [N, K], "counted": [K]}``.
    """
    import jax

    batched = jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *states)
    # instance_f1 is the recognition quality: computed once
    scored = tuple(dict.fromkeys("rq" if m == "instance_f1" else m for m in objects.metrics))
    got = jax.tree.map(np.asarray, _program()(batched, scored))
    got["instance_f1"] = got.get("rq")
    counted = np.ones(batched.num_classes, bool)
    counted[list(batched.ignore_classes)] = False
    counts = batched.to_numpy()  # int64 [N, 3, K]
    per_image: dict[str, np.ndarray] = {"tp": counts[:, 0], "fp": counts[:, 1], "fn": counts[:, 2]}
    # the regions, or the classes by the names of the class table (--class-names)
    names = objects.categories if objects.regions else [r["name"] for r in report["classes"]]
    total = counts.sum(0)
    has_objects = counts.sum(1) > 0  # [N, K]
    zero_tp = has_objects & (counts[:, 0] == 0)
    section: dict[str, Any] = {
        "metrics": list(objects.metrics),
        "connectivity": objects.connectivity,
        "matching": objects.matching,
        "matching_rule": _DESCRIBE[objects.matching],
        **{k: val for k, val in MATCHINGS[objects.matching].items() if k != "matching"},
        "regions": None
        if objects.regions is None
        else {k: list(ids) for k, ids in objects.regions.items()},
        "lesion_hd95_fill": HD95_FILL if "lesion_hd95" in objects.metrics else None,
        "categories": [],
        "num_overflow": int(np.asarray(batched.num_overflow).sum()),
        "cases_zero_tp": int(zero_tp[:, counted].any(1).sum()),
        "cases": {},
    }
    for k, name in enumerate(names):
        if not counted[k]:
            continue
        entry: dict[str, Any] = {"id": k, "name": name}
        if objects.regions is not None:
            entry["classes"] = list(objects.regions[name])
        entry.update(
            tp=int(total[0, k]),
            fp=int(total[1, k]),
            fn=int(total[2, k]),
            num_reference=int(total[0, k] + total[2, k]),
            num_predicted=int(total[0, k] + total[1, k]),
            cases_with_objects=int(has_objects[:, k].sum()),
            cases_zero_tp=int(zero_tp[:, k].sum()),
        )
        section["categories"].append(entry)
    for m in objects.metrics:
        values, pooled, macro = got[m]
        per_image[m] = values.astype(np.float64)
        cases = {
            "finite": np.isfinite(values).sum(0),
            "nan": np.isnan(values).sum(0),
            "inf": np.isinf(values).sum(0),
        }
        finite = np.where(np.isfinite(values), values, 0.0)
        with np.errstate(invalid="ignore"):
            case_mean = finite.sum(0, dtype=np.float64) / cases["finite"]  # NaN: no finite case
        for entry in section["categories"]:
            k = entry["id"]
            entry[m] = _report._float32(pooled[k])
            entry[f"{m}_case_mean"] = float(case_mean[k])
            entry[f"{m}_cases"] = {n: int(c[k]) for n, c in cases.items()}
        means = case_mean[counted & np.isfinite(case_mean)]
        section[f"mean_{m}"] = float(macro)
        section[f"mean_{m}_case_mean"] = float(means.mean()) if means.size else math.nan
        section["cases"][m] = {n: int(c[counted].sum()) for n, c in cases.items()}
    report["objects"] = section
    for i, entry in enumerate(report["images"]):
        entry["objects"] = {
            names[k]: {
                "tp": int(per_image["tp"][i, k]),
                "fp": int(per_image["fp"][i, k]),
                "fn": int(per_image["fn"][i, k]),
                **{m: _report.json_value(per_image[m][i, k]) for m in objects.metrics},
            }
            for k in range(len(names))
            if counted[k]
        }
    return {**per_image, "counted": counted}


# -- text and CSV -----------------------------------------------------------------------


def _fmt(x: float | None, width: int = 7) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return f"{'n/a':>{width}}"
    if isinstance(x, float) and math.isinf(x):
        return f"{'inf':>{width}}"
    return f"{x:>{width}.4f}" if abs(x) < 100 else f"{x:>{width}.2f}"


def format_objects(report: dict[str, Any]) -> str:
    """The object table (dataset-level scores per category), the means and the case counts."""
    sec = report["objects"]
    metrics = sec["metrics"]
    titles = {m: _report.METRICS[m].title for m in metrics}
    width = max([8, *(len(e["name"]) for e in sec["categories"])])
    how = (
        f"objects: connected components ({sec['connectivity']}-connectivity"
        f"{', regions' if sec['regions'] else ''}), matched by {sec['matching_rule']}"
    )
    head = (
        f"{'category':<{width}}  {'Ref':>5}  {'Pred':>5}  {'TP':>5}  {'FP':>5}  {'FN':>5}"
        + "".join(f"  {titles[m]:>8}" for m in metrics)
    )
    lines = [how, head, "-" * len(head)]
    for e in sec["categories"]:
        cells = "".join(f"  {_fmt(e[m], 8)}" for m in metrics)
        lines.append(
            f"{e['name']:<{width}}  {e['num_reference']:>5}  {e['num_predicted']:>5}  "
            f"{e['tp']:>5}  {e['fp']:>5}  {e['fn']:>5}{cells}"
        )
    lines.append("-" * len(head))
    rows = []
    for m in metrics:
        rows.append((f"mean {titles[m]}, dataset-level (objects pooled over cases)", f"mean_{m}"))
        rows.append((f"mean {titles[m]}, case-wise (mean of case values)", f"mean_{m}_case_mean"))
    w = max(len(t) for t, _ in rows)
    lines += [f"{t:<{w}}  {_fmt(sec[k], 6).strip():>6}" for t, k in rows]
    zero = [f"{e['name']}: {e['cases_zero_tp']}" for e in sec["categories"] if e["cases_zero_tp"]]
    empty = {m: sec["cases"][m]["nan"] for m in metrics}
    lines.append(
        f"cases with objects but no match (zero TP): {sec['cases_zero_tp']}"
        + (f" (per category: {', '.join(zero)})" if zero else "")
    )
    if any(empty.values()):
        n = max(empty.values())
        lines.append(
            f"case values left out of the case-wise means: {n} category-case(s) with no "
            "object in either map (n/a)"
        )
    inf = {m: sec["cases"][m]["inf"] for m in metrics if sec["cases"][m]["inf"]}
    if inf:
        lines.append(
            "infinite case values left out: "
            + ", ".join(f"{titles[m]} {n}" for m, n in inf.items())
        )
    if sec.get("lesion_hd95_fill") is not None:
        lines.append(
            f"L.HD95: a missed or false lesion scores {sec['lesion_hd95_fill']:g} (BraTS 2023)"
        )
    return "\n".join(lines)


def per_image_csv_bytes(
    image_names: Sequence[str],
    class_names: Sequence[str],
    pixel: dict[str, np.ndarray],
    distances: dict[str, np.ndarray],
    values: dict[str, np.ndarray],
    objects: Setup,
    columns: dict[str, np.ndarray] | None = None,
) -> bytes:
    """The per-image CSV of :func:`jaxseg._report.per_image_csv_bytes` with object columns.

    Columns ``objects_tp, objects_fp, objects_fn`` and one per object metric join
    the class rows; with ``--regions`` each image has one more row per region
    (``class_id`` empty, ``class_name`` the region, no pixel cells).
    """
    base = _report.per_image_csv_bytes(image_names, class_names, pixel, distances, columns)
    base = base.decode()
    rows = list(csv.reader(io.StringIO(base)))
    head, body = rows[0], rows[1:]
    extra = ["objects_tp", "objects_fp", "objects_fn", *objects.metrics]
    counted = values["counted"]

    def cells(i: int, k: int) -> list[str]:
        if not counted[k]:
            return [""] * len(extra)
        ints = [str(int(values[n][i, k])) for n in ("tp", "fp", "fn")]
        return ints + [_cell(values[m][i, k]) for m in objects.metrics]

    index = {name: i for i, name in enumerate(image_names)}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*head, *extra])
    blank = [""] * (len(head) - 3)
    done: set[int] = set()

    def regions_of(i: int) -> None:
        if objects.regions is not None and i not in done:
            done.add(i)
            for k, name in enumerate(objects.categories):
                writer.writerow([image_names[i], "", name, *blank, *cells(i, k)])

    previous = None
    for row in body:
        i = index[row[0]]
        if previous is not None and previous != i:
            regions_of(previous)
        previous = i
        k = int(row[1])
        writer.writerow([*row, *(cells(i, k) if objects.regions is None else [""] * len(extra))])
    for i in range(len(image_names)):
        regions_of(i)
    return out.getvalue().encode()


def _cell(x: float) -> str:
    if math.isnan(x):
        return ""
    return "inf" if math.isinf(x) else repr(_report._float32(float(x)))
