"""``jaxseg evaluate --panoptic PRED_JSON GT_JSON``: panoptic quality of COCO panoptic folders.

The COCO panoptic format (also Cityscapes' panoptic layout, e.g.
``gtFine/cityscapes_panoptic_val.json`` next to ``gtFine/cityscapes_panoptic_val/``):
a JSON file with ``annotations`` (one per image: ``image_id``, ``file_name`` and
``segments_info``, each segment an ``id``, a ``category_id`` and, in the ground
truth, ``iscrowd``) and, in the ground truth, the ``categories`` (``id``,
``name``, ``isthing``); a PNG per image in the folder named like the JSON file
without its suffix, whose colour is the segment id, ``R + 256 G + 256² B``
(0 is VOID).

The pipeline: read and check both JSON files (:func:`load`), pair the
annotations by ``image_id`` (:func:`pair_annotations`), check that every PNG
exists and that no output names an input, then decode the pairs in a pool of
threads (:func:`jaxseg._evaluate._stream`; Pillow and NumPy release the GIL).
Each pair becomes one segment-overlap table in a single pass over its pixels
(:func:`overlap_table`), which the library's panopticapi rules score on the host
(:func:`jaxseg._panoptic_rules.panoptic_rules`, the core of
:meth:`jaxseg.PanopticStats.from_panoptic`). The exact per-category counts and
float64 IoU sums are summed over images and scored by
:func:`jaxseg.panoptic_summary` on the host state, so every number equals the
API's and panopticapi's (to float64 rounding). Nothing is compiled, and JAX is
not even imported (:mod:`jaxseg._panoptic_rules` is NumPy unless handed JAX
arrays): image sizes cost nothing extra, and the process saves the second or so
of CPU that importing JAX takes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import mmap
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxseg import _io

#: Largest segment id of a COCO panoptic PNG (three 8-bit channels).
MAX_SEGMENT_ID = (1 << 24) - 1
VOID = 0


@dataclasses.dataclass
class Options:
    """Everything ``jaxseg evaluate --panoptic`` needs, already parsed."""

    pred_json: str
    gt_json: str
    pred_folder: str | None = None
    gt_folder: str | None = None
    json: str | None = None
    csv: str | None = None
    jobs: int = 0
    batch_size: int = 0
    max_pixels: int = _io.DEFAULT_MAX_PIXELS
    quiet: bool = False


@dataclasses.dataclass(frozen=True)
class Category:
    id: int
    name: str
    isthing: bool


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One image of a panoptic JSON: its PNG and its segments ``{id: (category_id, iscrowd)}``."""

    image_id: Any
    file_name: str
    png: Path
    segments: dict[int, tuple[int, bool]]


@dataclasses.dataclass(frozen=True)
class PanopticFile:
    """A checked panoptic JSON file: annotations by image id (in file order), categories."""

    path: str
    folder: Path
    annotations: dict[Any, Annotation]
    categories: dict[int, Category] | None


@dataclasses.dataclass(frozen=True)
class Pair:
    """The ground truth and prediction of one image."""

    gt: Annotation
    pred: Annotation


@dataclasses.dataclass
class Result:
    """Per-category counts ``int64 [3, K]`` (tp, fp, fn) and pair sums ``float64 [2, K]``."""

    pair: Pair
    counts: np.ndarray | None = None
    sums: np.ndarray | None = None
    error: _io.InputError | None = None


# -- the JSON files ------------------------------------------------------------------


def _describe(image_id: Any) -> str:
    return json.dumps(image_id)


def load(path: str, folder: str | None, *, option: str, ground_truth: bool) -> PanopticFile:
    """Read and check one panoptic JSON file; the PNG folder defaults to ``path`` without
    its suffix (panopticapi's layout).

    Raises:
      InputError: unreadable or invalid JSON, a missing or ill-typed key, an image
        listed twice, a segment id listed twice in one image or outside
        ``1 … 2^24 - 1``, a category id listed twice (ground truth) — each naming
        the file and the image.
    """

    def bad(why: str) -> _io.InputError:
        return _io.InputError(path, f"{option}: {why}")

    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise bad(f"cannot read the file ({_io._reason(e)})") from None
    except ValueError as e:
        raise bad(f"not valid JSON ({_io._reason(e)})") from None
    if not isinstance(data, dict):
        raise bad(f"expected a JSON object with 'annotations'; got a JSON {type(data).__name__}")

    def field(obj: Any, key: str, kinds: tuple[type, ...], where: str) -> Any:
        if not isinstance(obj, dict):
            raise bad(f"{where} is a JSON {type(obj).__name__}, not an object")
        if key not in obj:
            raise bad(f"{where} has no {key!r}")
        val = obj[key]
        if not isinstance(val, kinds) or (isinstance(val, bool) and bool not in kinds):
            names = " or ".join(
                {int: "an integer", bool: "a boolean", str: "a string", list: "a list"}[k]
                for k in kinds
            )
            raise bad(f"{where}: {key!r} is {json.dumps(val)[:40]}, not {names}")
        return val

    categories = None
    if ground_truth:
        categories = {}
        for i, cat in enumerate(field(data, "categories", (list,), "the file")):
            where = f"categories[{i}]"
            cid = field(cat, "id", (int,), where)
            if cid in categories:
                raise bad(f"{where}: category id {cid} is listed twice")
            isthing = field(cat, "isthing", (int, bool), where)
            if isthing not in (0, 1):  # True and False too
                raise bad(f"{where}: 'isthing' is {json.dumps(isthing)}, not 0 or 1")
            name = cat.get("name", str(cid))
            categories[cid] = Category(cid, str(name), bool(isthing))
        if not categories:
            raise bad("'categories' is empty")
    root = Path(folder) if folder is not None else Path(os.path.splitext(path)[0])
    annotations: dict[Any, Annotation] = {}
    for i, ann in enumerate(field(data, "annotations", (list,), "the file")):
        where = f"annotations[{i}]"
        image_id = field(ann, "image_id", (int, str), where)
        where = f"image_id {_describe(image_id)}"
        file_name = field(ann, "file_name", (str,), where)
        key = image_id  # COCO's integers or Cityscapes' names, compared as written
        if key in annotations:
            raise bad(f"{where} has two annotations")
        segments: dict[int, tuple[int, bool]] = {}
        for j, seg in enumerate(field(ann, "segments_info", (list,), where)):
            at = f"{where}, segments_info[{j}]"
            sid = field(seg, "id", (int,), at)
            if not 0 < sid <= MAX_SEGMENT_ID:
                raise bad(f"{at}: segment id {sid} is not in 1 … {MAX_SEGMENT_ID} (0 is VOID)")
            if sid in segments:
                raise bad(f"{where}: segment id {sid} is listed twice in segments_info")
            cat = field(seg, "category_id", (int,), at)
            crowd = seg.get("iscrowd", 0) if ground_truth else 0
            if type(crowd) not in (int, bool) or crowd not in (0, 1):
                raise bad(f"{at}: 'iscrowd' is {json.dumps(crowd)}, not 0 or 1")
            segments[sid] = (cat, bool(crowd))
        annotations[key] = Annotation(image_id, file_name, root / file_name, segments)
    return PanopticFile(path, root, annotations, categories)


def pair_annotations(pred: PanopticFile, gt: PanopticFile) -> list[Pair]:
    """Pairs by ``image_id`` in the ground truth's order; every category id must be known.

    Raises:
      InputError: an image annotated on one side only, or a segment whose
        ``category_id`` is not among the ground truth's categories.
    """
    assert gt.categories is not None
    for side in (gt, pred):
        for ann in side.annotations.values():
            for sid, (cat, _) in ann.segments.items():
                if cat not in gt.categories:
                    raise _io.InputError(
                        side.path,
                        f"image_id {_describe(ann.image_id)}: segment {sid} has category_id "
                        f"{cat}, which is not among the categories of {gt.path}",
                    )
    missing = [k for k in gt.annotations if k not in pred.annotations]
    if missing:
        raise _io.InputError(
            pred.path,
            f"no prediction for image_id {_describe(gt.annotations[missing[0]].image_id)} of "
            f"{gt.path} ({len(missing)} image(s) without a prediction)",
        )
    extra = [k for k in pred.annotations if k not in gt.annotations]
    if extra:
        raise _io.InputError(
            pred.path,
            f"image_id {_describe(pred.annotations[extra[0]].image_id)} has no annotation in "
            f"{gt.path} ({len(extra)} prediction(s) without ground truth)",
        )
    return [Pair(a, pred.annotations[k]) for k, a in gt.annotations.items()]


# -- the PNGs ------------------------------------------------------------------------

#: Pixels per slice of the counting loop (the slice's buffers stay in cache).
_CHUNK = 1 << 16


def read_ids(path: Path, max_pixels: int) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG, ``R + 256 G + 256² B``, as ``uint32 [H, W]``
    words whose high byte is *not* cleared (use ``& MAX_SEGMENT_ID``).

    Pillow hands the pixels out as RGBX words (its own layout of RGB images), so
    the ids are read without building an array of ids here.

    Raises:
      InputError: unreadable, not a PNG, not 8-bit RGB, or over ``max_pixels``.
    """
    image_mod = _io._import_pil()
    try:
        with image_mod.open(path) as img:
            if img.format != "PNG":
                raise _io.InputError(path, f"not a PNG file (format {img.format})")
            if img.mode != "RGB":
                raise _io.InputError(
                    path,
                    f"expected an RGB panoptic PNG (segment id = R + 256 G + 256² B); got "
                    f"an image of mode {img.mode}",
                )
            width, height = img.size
            if width * height > max_pixels:
                raise _io.InputError(
                    path,
                    f"image of {width}x{height} = {width * height:,} pixels is over the "
                    f"limit of {max_pixels:,} (raise it with --max-pixels)",
                )
            raw = img.tobytes("raw", "RGBX")
    except FileNotFoundError:
        raise _io.InputError(path, "missing: the PNG of an annotation") from None
    except image_mod.DecompressionBombError as e:
        raise _io.InputError(
            path, f"{_io._reason(e)} (raise the limit with --max-pixels)"
        ) from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow raises these on bad data
        raise _io.InputError(path, f"cannot read image ({_io._reason(e)})") from None
    return np.frombuffer(raw, "<u4").reshape(height, width)


def _lookup(segments: Sequence[int], scale: int) -> np.ndarray:
    """``intp [2^24]``: id -> ``(k + 1) * scale`` for ``segments[k]``, VOID -> ``(S + 1) * scale``,
    any other id -> 0.

    The table lies in an anonymous memory map, which the operating system hands out
    zeroed page by page: only the pages of the listed ids are ever touched, so it
    costs a few kilobytes, not 128 MB (NumPy's own large allocations ask for huge
    pages, and zeroing 2 MB per listed id took longer than the counting).
    """
    lut = np.frombuffer(mmap.mmap(-1, (MAX_SEGMENT_ID + 1) * np.dtype(np.intp).itemsize), np.intp)
    lut[np.asarray(segments, np.int64)] = np.arange(1, len(segments) + 1) * scale
    lut[VOID] = (len(segments) + 1) * scale
    return lut


def overlap_table(pair: Pair, gt_ids: np.ndarray, pred_ids: np.ndarray) -> np.ndarray:
    """The segment-overlap table ``int64 [R + 1, P + 1]`` of one image.

    ``table[r, p]`` counts the pixels of ground-truth segment ``r`` and predicted
    segment ``p`` (in ``segments_info`` order, from 1); row and column 0 are VOID,
    as :func:`jaxseg._panoptic.overlaps` lays it out. One pass over the pixels, in
    slices: both colours go through a lookup table to a joint index, which one
    ``bincount`` counts; ids outside ``segments_info`` land in an extra row or column.

    Raises:
      InputError: a colour that is not VOID and not in ``segments_info``, or a
        listed segment with no pixel (naming the PNG, the image and the id).
    """
    gt, pred = pair.gt, pair.pred
    rows, cols = len(gt.segments) + 2, len(pred.segments) + 2  # + unknown, + VOID
    lut_gt = _lookup(list(gt.segments), cols)
    lut_pred = _lookup(list(pred.segments), 1)
    joint = np.zeros(rows * cols, np.int64)
    flat_gt, flat_pred = gt_ids.reshape(-1), pred_ids.reshape(-1)
    size = min(_CHUNK, flat_gt.size)
    ids = np.empty(size, np.uint32)
    index, other = np.empty(size, np.intp), np.empty(size, np.intp)
    for start in range(0, flat_gt.size, _CHUNK):
        n = min(_CHUNK, flat_gt.size - start)
        np.bitwise_and(flat_gt[start : start + n], MAX_SEGMENT_ID, out=ids[:n])
        np.take(lut_gt, ids[:n], out=index[:n], mode="clip")  # ids < 2^24: never clipped
        np.bitwise_and(flat_pred[start : start + n], MAX_SEGMENT_ID, out=ids[:n])
        np.take(lut_pred, ids[:n], out=other[:n], mode="clip")
        index[:n] += other[:n]
        joint += np.bincount(index[:n], minlength=rows * cols)
    table = joint.reshape(rows, cols)
    for ann, ids_map, unknown, present in (
        (gt, gt_ids, table[0].sum(), table[1:-1].sum(1)),
        (pred, pred_ids, table[:, 0].sum(), table[:, 1:-1].sum(0)),
    ):
        if unknown:
            listed = np.asarray(list(ann.segments), np.int64)
            found = np.unique(ids_map & MAX_SEGMENT_ID)
            bad = found[(found != VOID) & ~np.isin(found, listed)]
            raise _io.InputError(
                ann.png,
                f"image_id {_describe(ann.image_id)}: segment id {int(bad[0])} (colour "
                f"{_colour(int(bad[0]))}) is in the PNG but not in segments_info "
                f"({unknown:,} pixels of {bad.size} such id(s))",
            )
        if not present.all():
            sid = list(ann.segments)[int(np.flatnonzero(present == 0)[0])]
            raise _io.InputError(
                ann.png,
                f"image_id {_describe(ann.image_id)}: segment id {sid} of segments_info has "
                f"no pixel in the PNG (colour {_colour(sid)})",
            )
    # VOID (the last row and column) first, then the segments; the unknown slots are empty
    order_r = np.r_[rows - 1, 1 : rows - 1]
    order_c = np.r_[cols - 1, 1 : cols - 1]
    return table[order_r][:, order_c]


def _colour(sid: int) -> str:
    return f"RGB {sid & 255},{sid >> 8 & 255},{sid >> 16 & 255}"


def image_counts(
    pair: Pair, table: np.ndarray, categories: Sequence[Category]
) -> tuple[np.ndarray, np.ndarray]:
    """One image's per-category ``(tp, fp, fn)`` ``int64 [3, K]`` and the matched pairs'
    IoU and Dice sums ``float64 [2, K]``.

    The library's panopticapi rules score the overlap table on the host
    (:func:`jaxseg._panoptic_rules.panoptic_rules`, the core of
    :meth:`jaxseg.PanopticStats.from_panoptic`), with each segment's category,
    crowd flag and the crowd region that counts per category read from
    ``segments_info`` as :func:`jaxseg._panoptic.panoptic_image_counts` reads it.
    """
    from jaxseg import _panoptic_rules as rules

    gt, pred = pair.gt, pair.pred
    cat_ids = tuple(c.id for c in categories)
    things = tuple(c.isthing for c in categories)
    # each segment once (a 1-D "image" of the listed ids): categories, crowd flags, picks
    _, cat_r, ok_r, crowd_r, pick_r = rules._host_segments(
        np.asarray(list(gt.segments), np.int64), gt.segments, "label_ids", 1, cat_ids, things, True
    )
    pred_cats = {sid: cat for sid, (cat, _) in pred.segments.items()}
    _, cat_p, ok_p, _, _ = rules._host_segments(
        np.asarray(list(pred.segments), np.int64), pred_cats, "pred_ids", 1, cat_ids, things, False
    )
    counts, sums = rules.panoptic_rules(
        table, cat_r, ok_r, crowd_r, pick_r, cat_p, ok_p, len(cat_ids)
    )
    return np.asarray(counts, np.int64), np.asarray(sums, np.float64)


# -- the job -------------------------------------------------------------------------


def _score_pair(pair: Pair, categories: Sequence[Category], max_pixels: int) -> Result:
    try:
        gt = read_ids(pair.gt.png, max_pixels)
        pred = read_ids(pair.pred.png, max_pixels)
        if gt.shape != pred.shape:
            raise _io.InputError(
                pair.pred.png,
                f"image_id {_describe(pair.gt.image_id)}: size {pred.shape[1]}x{pred.shape[0]} "
                f"differs from the ground truth's {gt.shape[1]}x{gt.shape[0]} ({pair.gt.png})",
            )
        table = overlap_table(pair, gt, pred)
        counts, sums = image_counts(pair, table, categories)
        return Result(pair, counts, sums)
    except _io.InputError as e:
        return Result(pair, error=e)
    except MemoryError:
        return Result(pair, error=_io.InputError(pair.pred.png, "out of memory reading this pair"))


def _inputs(
    pred: PanopticFile, gt: PanopticFile, pairs: Sequence[Pair]
) -> Iterable[tuple[str, Any]]:
    yield "the prediction JSON", pred.path
    yield "the ground-truth JSON", gt.path
    for p in pairs:
        yield "a ground-truth PNG", p.gt.png
        yield "a prediction PNG", p.pred.png


def run(opts: Options, out: Any = None) -> int:
    """Run ``jaxseg evaluate --panoptic``; returns the exit status (0)."""
    from jaxseg import _evaluate

    out = out or sys.stdout
    t0 = time.perf_counter()
    outputs = [(o, p) for o, p in (("--json", opts.json), ("--csv", opts.csv)) if p]
    _io.check_outputs(outputs)
    gt = load(opts.gt_json, opts.gt_folder, option="GT_JSON", ground_truth=True)
    pred = load(opts.pred_json, opts.pred_folder, option="PRED_JSON", ground_truth=False)
    for side, flag in ((gt, "--gt-folder"), (pred, "--pred-folder")):
        if not side.folder.is_dir():
            raise _io.InputError(
                side.folder,
                f"not a folder: the PNGs of {side.path} (name the folder with {flag})",
            )
    pairs = pair_annotations(pred, gt)
    if not pairs:
        raise _io.InputError(gt.path, "GT_JSON: no annotations to evaluate")
    for p in pairs:
        for ann, what in ((p.gt, "ground truth"), (p.pred, "prediction")):
            if not ann.png.is_file():
                raise _io.InputError(
                    ann.png, f"missing: the {what} PNG of image_id {_describe(ann.image_id)}"
                )
    _io.check_outputs_not_inputs(outputs, _inputs(pred, gt, pairs))

    assert gt.categories is not None
    cats = list(gt.categories.values())
    k = len(cats)
    total = np.zeros((3, k), np.int64)
    sums = np.zeros((2, k), np.float64)
    jobs = opts.jobs or min(4, os.cpu_count() or 1)
    window = max(opts.batch_size or jobs, jobs)
    progress = _evaluate._progress(len(pairs), opts.quiet)
    try:
        for result in _evaluate._stream(
            pairs, lambda p: _score_pair(p, cats, opts.max_pixels), jobs, window
        ):
            if progress is not None:
                progress.update(1)
            if result.error is not None:
                raise result.error
            total += result.counts
            sums += result.sums
    finally:
        if progress is not None:
            progress.close()

    from jaxseg import _panoptic_rules as rules

    coco = [{"id": c.id, "name": c.name, "isthing": int(c.isthing)} for c in cats]
    summary = rules.panoptic_summary(rules.host_state(total, sums, coco))
    report: dict[str, Any] = {
        "task": "panoptic",
        "pred_json": str(opts.pred_json),
        "gt_json": str(opts.gt_json),
        "pred_folder": str(pred.folder),
        "gt_folder": str(gt.folder),
        "num_images": len(pairs),
        "rules": "panopticapi: a match has IoU > 0.5 with the prediction's VOID pixels left "
        "out of the union; crowd segments never match; an unmatched prediction lying more "
        "than half in VOID or in the (last listed) crowd segment of its category is not a "
        "false positive; categories with tp + fp + fn = 0 are left out of the means",
        **{g: summary[g] for g in ("All", "Things", "Stuff")},
        "categories": [
            {
                "id": c.id,
                "name": c.name,
                "isthing": int(c.isthing),
                **{m: summary["per_class"][c.id][m] for m in ("pq", "sq", "rq")},
                "tp": int(total[0, i]),
                "fp": int(total[1, i]),
                "fn": int(total[2, i]),
                "iou_sum": float(sums[0, i]),
                "in_averages": bool(total[:, i].any()),
            }
            for i, c in enumerate(cats)
        ],
    }
    rendered: list[tuple[str, bytes]] = []
    if opts.json:
        from jaxseg import _report

        rendered.append((opts.json, _report.json_bytes(report)))
    if opts.csv:
        rendered.append((opts.csv, csv_bytes(report)))
    for path, data in rendered:
        _io.write_output(path, data)

    to_stdout = any(p in ("-", "/dev/stdout") for p, _ in rendered)
    text = out if not to_stdout else sys.stderr
    lines = [
        f"evaluated {len(pairs)} panoptic image pairs, {k} categories "
        f"({sum(c.isthing for c in cats)} things, {sum(not c.isthing for c in cats)} stuff) "
        f"in {time.perf_counter() - t0:.1f} s",
        format_table(report),
        *(f"wrote {p}" for p, _ in rendered if p != "-"),
    ]
    text.write("\n".join(lines) + "\n")
    text.flush()
    return 0


# -- rendering -----------------------------------------------------------------------


def _pct(x: float) -> str:
    return "  n/a" if math.isnan(x) else f"{100 * x:5.1f}"


def format_table(report: dict[str, Any]) -> str:
    """panopticapi's table (per category, then All / Things / Stuff; in percent) with
    the counts."""
    width = max(14, *(len(c["name"]) for c in report["categories"]))
    head = f"{'Category':{width}s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} " + (
        f"{'TP':>6s} {'FP':>6s} {'FN':>6s}  kind"
    )
    lines = [head]
    for c in report["categories"]:
        lines.append(
            f"{c['name']:{width}s}| {_pct(c['pq'])}  {_pct(c['sq'])}  {_pct(c['rq'])} "
            f"{c['tp']:6d} {c['fp']:6d} {c['fn']:6d}  {'thing' if c['isthing'] else 'stuff'}"
        )
    lines.append("-" * len(head))
    lines.append(f"{'':{width}s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'N':>6s}")
    for group in ("All", "Things", "Stuff"):
        g = report[group]
        lines.append(
            f"{group:{width}s}| {_pct(g['pq'])}  {_pct(g['sq'])}  {_pct(g['rq'])} {g['n']:6d}"
        )
    if not all(c["in_averages"] for c in report["categories"]):
        lines.append("n/a: no segment of the category in either (left out of the means)")
    return "\n".join(lines)


def csv_bytes(report: dict[str, Any]) -> bytes:
    """The per-category table as CSV (fractions, an empty cell for NaN)."""
    from jaxseg import _report

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["category_id", "name", "isthing", "pq", "sq", "rq", "tp", "fp", "fn"])
    for c in report["categories"]:
        writer.writerow(
            [c["id"], c["name"], c["isthing"], *(_report._cell(c[m]) for m in ("pq", "sq", "rq")),
             c["tp"], c["fp"], c["fn"]]
        )  # fmt: skip
    return buf.getvalue().encode()
