"""``jaxseg evaluate``: exact confusion counts over folders of label maps.

The pipeline: pair files (:mod:`jaxseg._io`), decode them in a pool of threads
(Pillow and zlib release the GIL), count each pair on the host into an exact
``int64`` table ``[C, C + 1]`` whose last column holds void predictions, sum
the tables, and score the sum in float64 (:mod:`jaxseg._report`).

Counting on the host, not in a jitted function, is a measured choice: a
``bincount`` needs no compilation, so any mix of image sizes costs nothing
extra (a jitted count compiles once per shape: 200 sizes took 78 s before), and
for 8-bit maps a single ``bincount`` of ``label << 8 | pred`` into 65,536 bins
followed by a fold of that small joint histogram (label maps, ignore ids,
void predictions) is faster than any per-pixel work. Memory is bounded by the
pairs in flight (``--jobs`` decoding threads plus ``--batch-size`` waiting),
never by padding.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import json
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxseg import _io, _report

# Cityscapes labels (name, labelId, trainId): the published table of the dataset.
# Ids not evaluated have trainId 255; license plate (-1) only exists in polygons.
CITYSCAPES_LABELS = (
    ("unlabeled", 0, 255),
    ("ego vehicle", 1, 255),
    ("rectification border", 2, 255),
    ("out of roi", 3, 255),
    ("static", 4, 255),
    ("dynamic", 5, 255),
    ("ground", 6, 255),
    ("road", 7, 0),
    ("sidewalk", 8, 1),
    ("parking", 9, 255),
    ("rail track", 10, 255),
    ("building", 11, 2),
    ("wall", 12, 3),
    ("fence", 13, 4),
    ("guard rail", 14, 255),
    ("bridge", 15, 255),
    ("tunnel", 16, 255),
    ("pole", 17, 5),
    ("polegroup", 18, 255),
    ("traffic light", 19, 6),
    ("traffic sign", 20, 7),
    ("vegetation", 21, 8),
    ("terrain", 22, 9),
    ("sky", 23, 10),
    ("person", 24, 11),
    ("rider", 25, 12),
    ("car", 26, 13),
    ("truck", 27, 14),
    ("bus", 28, 15),
    ("caravan", 29, 255),
    ("trailer", 30, 255),
    ("train", 31, 16),
    ("motorcycle", 32, 17),
    ("bicycle", 33, 18),
    ("license plate", -1, 255),
)


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """An id map applied to label (and prediction) values before counting.

    Ids not in ``mapping`` become ``default`` (255: ignored in labels when 255
    is an ignore id, a void prediction in predictions).
    """

    mapping: dict[int, int]
    default: int = 255
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None

    def lut(self, size: int) -> np.ndarray:
        table = np.full(size, self.default, np.int64)
        for k, val in self.mapping.items():
            if 0 <= k < size:
                table[k] = val
        return table

    def apply(self, values: np.ndarray) -> np.ndarray:
        keys = np.array(sorted(self.mapping), np.int64)
        vals = np.array([self.mapping[k] for k in sorted(self.mapping)], np.int64)
        flat = values.astype(np.int64)
        pos = np.clip(np.searchsorted(keys, flat), 0, max(len(keys) - 1, 0))
        hit = keys[pos] == flat if len(keys) else np.zeros(flat.shape, bool)
        return np.where(hit, vals[pos] if len(keys) else self.default, self.default)


def cityscapes_map() -> LabelMap:
    train = sorted((t, n) for n, i, t in CITYSCAPES_LABELS if t != 255)
    return LabelMap(
        {i: t for _, i, t in CITYSCAPES_LABELS},
        default=255,
        num_classes=len(train),
        class_names=tuple(n for _, n in train),
    )


def load_label_map(spec: str) -> LabelMap:
    """``cityscapes`` or a JSON file ``{"7": 0, "8": 1, ...}``.

    The file may also hold ``{"map": {...}, "default": 255}``. Keys are
    integer ids written as JSON strings (``"-1"``, ``"7"``), values are JSON
    integers; both must fit in 64-bit signed integers (the ids label maps can
    hold). Floats, booleans, other strings, an id listed twice and an empty
    map are refused: each is a sign that the file is not what was meant.
    """
    if spec.lower() == "cityscapes":
        return cityscapes_map()

    def bad(why: str) -> _io.InputError:
        return _io.InputError(
            spec, f'--label-map: {why} (expected a JSON object of integer ids, e.g. {{"7": 0}})'
        )

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, val in pairs:
            if k in out:
                raise bad(f"key {k!r} appears twice")
            out[k] = val
        return out

    def value(val: Any, what: str) -> int:
        if type(val) is not int:  # bool is an int subclass; floats and strings are refused
            raise bad(f"{what} is {json.dumps(val)}, not an integer")
        if not _INT64_MIN <= val <= _INT64_MAX:
            raise bad(f"{what} {val} does not fit in a 64-bit integer")
        return val

    try:
        text = Path(spec).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _io.InputError(
            spec, f"--label-map: cannot read the file ({_io._reason(e)})"
        ) from None
    try:
        data = json.loads(text, object_pairs_hook=unique)
    except ValueError as e:
        raise _io.InputError(spec, f"--label-map: not valid JSON ({_io._reason(e)})") from None
    default = 255
    if isinstance(data, dict) and "map" in data:
        unknown = sorted(set(data) - {"map", "default"})
        if unknown:
            raise bad(f'unknown entry {unknown[0]!r} next to "map"')
        default = value(data.get("default", 255), '"default"')
        data = data["map"]
    if not isinstance(data, dict):
        raise bad(f"got a JSON {type(data).__name__}")
    if not data:
        raise bad("the map is empty")
    mapping: dict[int, int] = {}
    for k, val in data.items():
        if not _ID.fullmatch(k):
            raise bad(f"key {k!r} is not an integer id")
        key = value(int(k), "key")
        if key in mapping:
            raise bad(f"id {key} is listed twice (key {k!r})")
        mapping[key] = value(val, f"the value of {k!r}")
    return LabelMap(mapping, default=default)


#: A label-map key: an integer in decimal ASCII digits.
_ID = re.compile(r"-?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# -- counting ---------------------------------------------------------------------

#: Pixels per slice of the 8-bit counting path (2 MiB of intp indices).
_CHUNK = 1 << 18


#: Above this many classes the command line counts per class (``ClassCounts``' four
#: sums, ``[4, C]``), not the ``[C, C + 1]`` table: a table is then at least 8 MB per
#: image (int64), kept per image for the image-wise scores (8 GB for 1,000 images),
#: and zeroed and folded per image; every common dataset below it (Cityscapes 19,
#: ADE20K 150, COCO-Stuff 182) keeps its confusion matrix, LVIS (1,203) and
#: ADE20K-full (3,688) do not. The scores are the same (the matrix's sums).
PER_CLASS_ABOVE = 1024


def class_rows(lab: np.ndarray, col: np.ndarray, c: int, n: np.ndarray | None = None) -> np.ndarray:
    """Per-class counts ``int64 [4, C]`` (labels, predictions, hits, void) of valid pixels.

    ``lab`` are in-range label ids, ``col`` the prediction columns (``C`` for a
    void prediction), ``n`` optional pixel counts per entry.
    """

    def count(ids: np.ndarray, keep: np.ndarray) -> np.ndarray:
        w = None if n is None else n[keep]
        return np.bincount(ids[keep], weights=w, minlength=c)[:c].astype(np.int64)

    everything = np.ones(lab.shape, bool)
    return np.stack(
        [
            count(lab, everything),
            count(col, col < c),
            count(lab, col == lab),
            count(lab, col == c),
        ]
    )


@dataclasses.dataclass(frozen=True)
class Counter:
    """Counts one pair of label maps into an exact ``int64 [C, C + 1]`` table.

    With ``per_class``, into per-class counts ``int64 [4, C]`` (:func:`class_rows`).
    """

    num_classes: int
    ignore: tuple[int, ...] = ()
    label_map: LabelMap | None = None
    map_predictions: bool = True
    binary: bool = False
    per_class: bool = False

    def _map(self, raw: np.ndarray, *, is_label: bool) -> np.ndarray:
        """Mapped ids of raw values (a LUT over 256 values or an array of any values)."""
        out = raw.astype(np.int64)
        if self.label_map is not None and (is_label or self.map_predictions):
            out = self.label_map.apply(out)
        if self.binary:
            ignored = np.isin(out, self.ignore) if is_label and self.ignore else False
            out = np.where(ignored, out, (out != 0).astype(np.int64))
        return out

    @functools.cached_property
    def _luts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For raw 8-bit values: mapped label ids, kept labels, prediction columns."""
        c = self.num_classes
        values = np.arange(256)
        lab_ids = self._map(values, is_label=True)
        keep = ~np.isin(lab_ids, self.ignore) if self.ignore else np.ones(256, bool)
        pred_ids = self._map(values, is_label=False)
        return lab_ids, keep, np.where((pred_ids >= 0) & (pred_ids < c), pred_ids, c)

    def count(self, pair: _io.Pair, pred: np.ndarray, label: np.ndarray) -> np.ndarray:
        c = self.num_classes
        if pred.dtype == np.uint8 and label.dtype == np.uint8:
            # label << 8 | pred in slices of _CHUNK pixels: one small index buffer
            # (bincount needs intp), not an 8-byte copy of the whole image.
            lab_flat, pred_flat = label.reshape(-1), pred.reshape(-1)
            joint = np.zeros(1 << 16, np.int64)
            buf = np.empty(min(_CHUNK, lab_flat.size), np.intp)
            for start in range(0, lab_flat.size, _CHUNK):
                part = buf[: min(_CHUNK, lab_flat.size - start)]
                np.copyto(part, lab_flat[start : start + part.size], casting="unsafe")
                part <<= 8
                part |= pred_flat[start : start + part.size]
                joint += np.bincount(part, minlength=1 << 16)
            return self._fold(pair, joint)
        lab = self._map(label.ravel(), is_label=True)
        prd = self._map(pred.ravel(), is_label=False)
        keep = ~np.isin(lab, self.ignore) if self.ignore else np.ones(lab.shape, bool)
        self._check_labels(pair, lab[keep & ((lab < 0) | (lab >= c))])
        lab, prd = lab[keep], prd[keep]
        col = np.where((prd >= 0) & (prd < c), prd, c)
        if self.per_class:
            return class_rows(lab, col, c)
        return np.bincount(lab * (c + 1) + col, minlength=c * (c + 1)).reshape(c, c + 1)

    def _fold(self, pair: _io.Pair, joint: np.ndarray) -> np.ndarray:
        """Fold a joint histogram of raw 8-bit values (``label << 8 | pred``) into ``[C, C+1]``."""
        c = self.num_classes
        lab_ids, keep, pcol = self._luts
        code = np.flatnonzero(joint)  # the few hundred (label, pred) value pairs present
        n = joint[code]
        li, pi = code >> 8, code & 255
        kept = keep[li]
        lab = lab_ids[li]
        bad = kept & ((lab < 0) | (lab >= c))
        if bad.any():
            self._check_labels(pair, np.repeat(lab[bad], n[bad]))
        ok = kept & ~bad
        if self.per_class:
            return class_rows(lab[ok], pcol[pi[ok]], c, n[ok])
        out = np.zeros(c * (c + 1), np.int64)
        np.add.at(out, lab[ok] * (c + 1) + pcol[pi[ok]], n[ok])
        return out.reshape(c, c + 1)

    def _check_labels(self, pair: _io.Pair, bad_values: np.ndarray) -> None:
        if bad_values.size:
            raise _io.InputError(
                pair.label,
                f"label value {int(bad_values.max())} is not a class id in "
                f"[0, {self.num_classes}) and not ignored ({bad_values.size} pixels; "
                "use --ignore-index to leave it out)",
            )


# -- the job ----------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    """Everything ``jaxseg evaluate`` needs, already parsed."""

    pred_dir: str
    label_dir: str
    num_classes: int | None = None
    ignore_index: tuple[int, ...] | None = None
    label_map: str | None = None
    map_predictions: bool = True
    binary: bool = False
    include_background: bool = True
    pred_pattern: str | None = None
    label_pattern: str | None = None
    recursive: bool = True
    metrics: tuple[str, ...] = _report.DEFAULT_METRICS
    spacing: tuple[float, ...] | None = None
    tolerance: float | None = None
    class_names: str | None = None
    json: str | None = None
    csv: str | None = None
    per_image: str | None = None
    plot: str | None = None
    jobs: int = 0
    batch_size: int = 0
    max_pixels: int = _io.DEFAULT_MAX_PIXELS
    skip_bad: bool = False
    quiet: bool = False
    num_bins: int | None = None
    prob_pattern: str | None = None
    independent: bool = False
    connectivity: int | None = None
    matching: str | None = None
    regions: str | None = None
    instances: str | None = None
    instance_pattern: str | None = None


@dataclasses.dataclass
class Result:
    """Counts of one pair, or the error that made it unusable."""

    pair: _io.Pair
    counts: np.ndarray | None = None
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    error: _io.InputError | None = None


def _read_class_names(path: str, num_classes: int) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _io.InputError(path, f"cannot read class names ({_io._reason(e)})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != num_classes:
        raise _io.InputError(
            path, f"--class-names has {len(names)} names; --num-classes is {num_classes}"
        )
    return names


def _inputs(opts: Options, pairs: Sequence[_io.Pair]) -> Iterable[tuple[str, Any]]:
    """The files a run reads, as ``(what, path)``: no output may name one of them."""
    if opts.label_map and opts.label_map.lower() != "cityscapes":
        yield "the --label-map file", opts.label_map
    if opts.class_names:
        yield "the --class-names file", opts.class_names
    for pair in pairs:
        yield "the prediction", pair.pred
        yield "the label map", pair.label


def _evaluate_pair(
    pair: _io.Pair,
    counter: Counter,
    opts: Options,
    distances: Sequence[str],
    objects: Any = None,
    iiou: Any = None,
) -> Result:
    try:
        label = _io.read_label_map(pair.label, max_pixels=opts.max_pixels)
        pred = _io.read_label_map(pair.pred, max_pixels=opts.max_pixels)
        if pred.values.shape != label.values.shape:
            raise _io.InputError(
                pair.pred,
                f"shape {'x'.join(map(str, pred.values.shape))} differs from the label's "
                f"{'x'.join(map(str, label.values.shape))} ({pair.label})",
            )
        label = _io.resolve_spacing(pair, pred, label, opts.spacing)
        if distances and label.values.ndim not in (2, 3):
            raise _io.InputError(
                pair.label,
                f"--metrics {','.join(distances)}: needs 2-D or 3-D maps; got shape "
                f"{'x'.join(map(str, label.values.shape))}",
            )
        counts = counter.count(pair, pred.values, label.values)
        extra = _distances(pair, counter, opts, distances, pred, label) if distances else {}
        if objects is not None:
            extra["objects"] = _objects(pair, counter, objects, pred, label)
        if iiou is not None:  # Cityscapes iIoU terms (jaxseg._evaluate_iiou)
            extra["iiou"] = iiou.terms(pair, pred.values, label.values, opts.max_pixels)
        return Result(pair, counts, extra)
    except _io.InputError as e:
        return Result(pair, error=e)
    except MemoryError:
        return Result(pair, error=_io.InputError(pair.pred, "out of memory reading this pair"))


def _distances(
    pair: _io.Pair,
    counter: Counter,
    opts: Options,
    distances: Sequence[str],
    pred: _io.LabelArray,
    label: _io.LabelArray,
) -> dict[str, np.ndarray]:
    """The distance metrics ``{name: [C]}`` of one pair (one compiled program per size bucket)."""
    from jaxseg import _evaluate_distance

    spacing = opts.spacing or label.spacing
    _evaluate_distance.check_spacing(spacing, label.values.ndim, pair.label)
    out = _evaluate_distance.per_image_metrics(
        counter._map(pred.values, is_label=False),
        counter._map(label.values, is_label=True),
        num_classes=counter.num_classes,
        metrics=tuple(distances),
        spacing=spacing,
        tolerance=1.0 if opts.tolerance is None else opts.tolerance,
        ignore_index=counter.ignore or None,
        include_background=opts.include_background,
    )
    return {m: out[m] for m in distances}


def _objects(
    pair: _io.Pair, counter: Counter, objects: Any, pred: _io.LabelArray, label: _io.LabelArray
) -> Any:
    """The object state of one pair (:mod:`jaxseg._evaluate_objects`)."""
    from jaxseg import _evaluate_objects

    objects.check_ndim(label.values.ndim, pair.label)
    return _evaluate_objects.pair_state(
        counter._map(pred.values, is_label=False),
        counter._map(label.values, is_label=True),
        objects,
        spacing=label.spacing,
    )


def _progress(total: int, quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, unit="img", file=sys.stderr, desc="evaluate", leave=False)


def _stream(pairs: Sequence[_io.Pair], work: Any, jobs: int, window: int) -> Iterable[Result]:
    """Results in order, with at most ``window`` pairs submitted and not yet consumed.

    The workers are daemon threads: after Ctrl-C the process exits at once,
    even while a worker is blocked reading a file.
    """
    if jobs <= 1:
        for pair in pairs:
            yield work(pair)
        return
    todo: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def worker() -> None:
        while (item := todo.get()) is not None:
            future, pair = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work(pair))
                except BaseException as e:  # handed to the consumer
                    future.set_exception(e)

    threads = [
        threading.Thread(target=worker, name=f"jaxseg-read-{i}", daemon=True) for i in range(jobs)
    ]
    for t in threads:
        t.start()
    pending: collections.deque[concurrent.futures.Future[Result]] = collections.deque()
    it = iter(pairs)

    def submit() -> bool:
        pair = next(it, None)
        if pair is None:
            return False
        future: concurrent.futures.Future[Result] = concurrent.futures.Future()
        todo.put((future, pair))
        pending.append(future)
        return True

    try:
        while len(pending) < window and submit():
            pass
        while pending:
            result = pending.popleft().result()
            submit()
            yield result
    finally:
        for future in pending:
            future.cancel()
        for _ in threads:
            todo.put(None)


def _check_plot(opts: Options) -> None:
    """``--plot`` needs matplotlib: refuse before any file is read."""
    if opts.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _io.InputError(
                None, "--plot needs matplotlib: pip install 'jaxseg[cli]'"
            ) from None


def _skipper(opts: Options) -> tuple[list[_io.InputError], Callable[[_io.InputError], None]]:
    """The files left out, and ``bad(err)``: raises ``err``, or with ``--skip-bad`` keeps it."""
    skipped: list[_io.InputError] = []

    def bad(err: _io.InputError) -> None:
        if not opts.skip_bad:
            raise err
        skipped.append(err)

    return skipped, bad


def run(opts: Options, out: Any = None) -> int:
    """Run ``jaxseg evaluate``; returns the exit status (0, or 3 if files were skipped)."""
    out = out or sys.stdout
    t0 = time.perf_counter()
    label_map = load_label_map(opts.label_map) if opts.label_map else None
    c = opts.num_classes
    if opts.binary:
        if c not in (None, 2):
            raise _io.InputError(None, f"--binary means 2 classes; got --num-classes {c}")
        c = 2
    if c is None and label_map is not None:
        c = label_map.num_classes
    if c is None:
        raise _io.InputError(
            None, "--num-classes is required (or --binary, or --label-map cityscapes)"
        )
    ignore = opts.ignore_index
    if ignore is None:
        ignore = (255,) if label_map is not None else ()
    names = None
    if opts.class_names:
        names = _read_class_names(opts.class_names, c)
    elif label_map is not None and label_map.class_names and label_map.num_classes == c:
        names = list(label_map.class_names)
    elif opts.binary:
        names = ["background", "foreground"]
    names = names or [str(i) for i in range(c)]
    include_background = opts.include_background
    outputs = [
        (opt, path)
        for opt, path in (
            ("--json", opts.json),
            ("--csv", opts.csv),
            ("--per-image", opts.per_image),
            ("--plot", opts.plot),
        )
        if path
    ]
    _io.check_outputs(outputs)
    from jaxseg import _evaluate_iiou

    iiou = _evaluate_iiou.setup(opts, label_map)
    if _probability_options(opts):
        return _run_probabilities(opts, out, t0, label_map, c, tuple(ignore), names, outputs)
    per_class = c > PER_CLASS_ABOVE
    from jaxseg import _evaluate_objects

    objects = _evaluate_objects.setup(
        opts.metrics,
        c,
        connectivity=opts.connectivity,
        matching=opts.matching,
        regions=opts.regions,
        ignore=ignore,
    )
    if opts.plot and per_class:
        raise _io.InputError(
            None,
            f"--plot draws the confusion matrix, which is not kept above {PER_CLASS_ABOVE} "
            f"classes (--num-classes {c} counts per class)",
        )
    _check_plot(opts)

    skipped, bad = _skipper(opts)

    pairs, unmatched = _io.match_files(
        opts.pred_dir,
        opts.label_dir,
        pred_pattern=opts.pred_pattern,
        label_pattern=opts.label_pattern,
        recursive=opts.recursive,
    )
    for err in unmatched:
        bad(err)
    if not pairs:
        raise _io.InputError(
            None, f"no pairs of label maps found in {opts.pred_dir} and {opts.label_dir}"
        )
    _io.check_outputs_not_inputs(outputs, _inputs(opts, pairs))
    if iiou is not None:
        _io.check_outputs_not_inputs(outputs, iiou.inputs(pairs))

    counter = Counter(
        c,
        ignore=tuple(ignore),
        label_map=label_map,
        map_predictions=opts.map_predictions,
        binary=opts.binary,
        per_class=per_class,
    )
    distances = [m for m in opts.metrics if _report.METRICS[m].distance]
    jobs = opts.jobs or min(4, os.cpu_count() or 1)
    window = max(opts.batch_size or jobs, jobs)
    total = np.zeros((4, c) if per_class else (c, c + 1), np.int64)
    image_names: list[str] = []
    image_counts: list[np.ndarray] = []
    extras: dict[str, list[Any]] = {m: [] for m in (*distances, *(["objects"] * bool(objects)))}
    if iiou is not None:
        extras["iiou"] = []
    progress = _progress(len(pairs), opts.quiet)

    def work(pair: _io.Pair) -> Result:
        return _evaluate_pair(pair, counter, opts, distances, objects, iiou)

    try:
        for result in _stream(pairs, work, jobs, window):
            if progress is not None:
                progress.update(1)
            if result.error is not None:
                bad(result.error)
                continue
            total += result.counts
            image_names.append(result.pair.name)
            image_counts.append(result.counts)
            for k, v in result.extra.items():
                extras[k].append(v)
    finally:
        if progress is not None:
            progress.close()
    if not image_counts:
        raise _io.InputError(None, "no valid image pairs to evaluate")

    report = _report.class_report(
        total,
        names,
        ignored=ignore,
        include_background=include_background,
        metrics=opts.metrics,
        per_class=per_class,
    )
    per_image = _report.image_scores(
        np.stack(image_counts),
        ignored=ignore,
        include_background=include_background,
        per_class=per_class,
    )
    scored = ~np.isnan(per_image["miou"])
    report["miou_imagewise"] = float(per_image["miou"][scored].mean()) if scored.any() else math.nan
    report["mean_dice_imagewise"] = (
        float(per_image["mean_dice"][scored].mean()) if scored.any() else math.nan
    )
    report["num_images"] = len(image_names)
    report["num_images_scored"] = int(scored.sum())
    report["ignore_index"] = list(ignore)
    report["label_map"] = opts.label_map
    report["binary"] = opts.binary
    report["images"] = [
        {
            "name": n,
            "miou": float(per_image["miou"][i]),
            "mean_dice": float(per_image["mean_dice"][i]),
            "iou": per_image["iou"][i].tolist(),
            "dice": per_image["dice"][i].tolist(),
        }
        for i, n in enumerate(image_names)
    ]
    if opts.binary:
        for i, entry in enumerate(report["images"]):
            entry["foreground_iou"] = float(per_image["iou"][i, 1])
            entry["foreground_dice"] = float(per_image["dice"][i, 1])
    distance_values = {m: np.stack(extras[m]) for m in distances}  # [N, C] each
    if distances:
        # distance means leave out ignored classes, and the background under
        # --exclude-background (implied by --binary): MONAI's include_background=False
        scored_classes = np.ones(c, bool)
        scored_classes[[i for i in ignore if 0 <= i < c]] = False
        scored_classes[0] &= include_background
        from jaxseg import _evaluate_distance

        _evaluate_distance.add_to_report(report, distance_values, scored=scored_classes)
    object_values = None
    if objects is not None:
        object_values = _evaluate_objects.add_to_report(report, extras["objects"], objects)
    image_columns = {}
    if iiou is not None:
        image_columns["iiou"] = iiou.add_to_report(report, extras["iiou"])
    # Render every output in memory first, then write each one completely.
    rendered = _report_outputs(opts, report, skipped)
    if opts.per_image:
        rendered.append(
            (
                opts.per_image,
                _report.per_image_csv_bytes(
                    image_names, names, per_image, distance_values, image_columns
                )
                if object_values is None
                else _evaluate_objects.per_image_csv_bytes(
                    image_names,
                    names,
                    per_image,
                    distance_values,
                    object_values,
                    objects,
                    image_columns,
                ),
            )
        )
    if opts.plot:
        fig = _report.confusion_figure(np.asarray(report["confusion_matrix"]), names)
        rendered.append((opts.plot, _report.figure_png_bytes(fig)))
    for path, data in rendered:
        _io.write_output(path, data)

    lines = [
        f"evaluated {len(image_names)} image pairs, {report['num_pixels']:,} pixels "
        f"in {time.perf_counter() - t0:.1f} s",
        (
            f"{c} classes (above {PER_CLASS_ABOVE}): counted per class (labels, predictions, "
            "hits, void), the same scores without the confusion matrix"
            if per_class
            else ""
        ),
        _report.format_table(report),
        _report.format_summary(report),
        _evaluate_objects.format_objects(report) if objects is not None else "",
        _evaluate_iiou.format_lines(report),
        *(f"wrote {p}" for p, _ in rendered if p != "-"),
    ]
    return _summary(out, rendered, lines, skipped)


#: Exit status when ``--skip-bad`` left files out (the results are complete otherwise).
EXIT_SKIPPED = 3


def _report_outputs(opts: Options, report: dict[str, Any], skipped: list[Any]) -> list[Any]:
    """Record the skipped files in ``report``; the ``--json`` and ``--csv`` outputs rendered."""
    report["skipped"] = [{"file": e.path, "reason": e.message} for e in skipped]
    report["num_skipped"] = len(skipped)
    rendered: list[tuple[str, bytes]] = []
    if opts.json:
        rendered.append((opts.json, _report.json_bytes(report)))
    if opts.csv:
        rendered.append((opts.csv, _report.csv_bytes(report)))
    return rendered


def _summary(
    out: Any, rendered: Sequence[tuple[str, bytes]], lines: list[str], skipped: list[Any]
) -> int:
    """Print the summary ``lines`` and the skipped files; the exit status.

    The summary goes to ``out``, or to stderr when an output went to stdout.
    """
    to_stdout = any(p in ("-", "/dev/stdout") for p, _ in rendered)
    text = out if not to_stdout else sys.stderr
    text.write("\n".join(line for line in lines if line) + "\n")
    text.flush()
    if skipped:
        print(
            f"jaxseg evaluate: skipped {len(skipped)} bad file(s); the results leave them out:",
            file=sys.stderr,
        )
        for e in skipped:
            print(f"  {e}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


# -- probability maps -------------------------------------------------------------


def _probability_options(opts: Options) -> bool:
    """Whether the run scores probability maps; refuses options of the other kind."""
    chosen = [m for m in opts.metrics if _report.METRICS[m].probability]
    if not chosen:
        for flag, used in (
            ("--bins", opts.num_bins is not None),
            ("--prob-pattern", opts.prob_pattern is not None),
            ("--independent", opts.independent),
        ):
            if used:
                raise _io.InputError(
                    None, f"{flag} applies to probability maps: add --metrics ece,auroc,ap"
                )
        return False
    other = [m for m in opts.metrics if not _report.METRICS[m].probability]
    if other:
        raise _io.InputError(
            None,
            f"--metrics: {','.join(chosen)} score probability maps, {','.join(other)} score "
            "label maps; run jaxseg evaluate once for each",
        )
    for flag, used in (("--per-image", opts.per_image), ("--pred-pattern", opts.pred_pattern)):
        if used:
            what = "--prob-pattern names the files" if flag == "--pred-pattern" else "not available"
            if flag == "--pred-pattern" and not opts.prob_pattern:
                continue
            raise _io.InputError(None, f"{flag} with --metrics {','.join(chosen)}: {what}")
    return True


def _read_probability_pair(pair: _io.Pair, counter: Counter, opts: Options) -> Result:
    """Probabilities ``float32 [..., C]``, mapped labels and the kept pixels of one pair."""
    c = counter.num_classes
    try:
        paths = [pair.pred]
        if opts.prob_pattern:
            paths = _io.class_files(opts.prob_pattern, pair, c)
        label = _io.read_label_map(pair.label, max_pixels=opts.max_pixels).values
        probs = _io.read_probability_map(
            paths, c, foreground_shape=label.shape if counter.binary else None
        )
        if probs.shape[:-1] != label.shape:
            raise _io.InputError(
                pair.pred,
                f"probabilities of shape {'x'.join(map(str, probs.shape))} [..., C] do not "
                f"match the label's {'x'.join(map(str, label.shape))} ({pair.label})",
            )
        lab = counter._map(label, is_label=True)
        keep = ~np.isin(lab, counter.ignore) if counter.ignore else np.ones(lab.shape, bool)
        counter._check_labels(pair, lab[keep & ((lab < 0) | (lab >= c))])
        return Result(pair, extra={"probs": probs, "labels": lab, "keep": keep})
    except _io.InputError as e:
        return Result(pair, error=e)
    except MemoryError:
        return Result(pair, error=_io.InputError(pair.pred, "out of memory reading this pair"))


def _run_probabilities(
    opts: Options,
    out: Any,
    t0: float,
    label_map: LabelMap | None,
    c: int,
    ignore: tuple[int, ...],
    names: list[str],
    outputs: list[tuple[str, str]],
) -> int:
    """``jaxseg evaluate --metrics ece,auroc,ap``: probability maps into one exact
    :class:`jaxseg.ProbabilityHistogram`, scored by the library's functions."""
    from jaxseg import _evaluate_probability as ep

    _check_plot(opts)
    pattern = _io.probability_pattern(opts.prob_pattern) if opts.prob_pattern else None
    skipped, bad = _skipper(opts)

    pairs, unmatched = _io.match_files(
        opts.pred_dir,
        opts.label_dir,
        pred_pattern=pattern,
        label_pattern=opts.label_pattern,
        recursive=opts.recursive,
    )
    for err in unmatched:
        bad(err)
    if not pairs:
        raise _io.InputError(
            None,
            f"no pairs of probability and label maps found in {opts.pred_dir} and {opts.label_dir}",
        )
    _io.check_outputs_not_inputs(outputs, _inputs(opts, pairs))
    counter = Counter(
        c, ignore=ignore, label_map=label_map, map_predictions=False, binary=opts.binary
    )
    num_bins = ep.DEFAULT_BINS if opts.num_bins is None else opts.num_bins
    acc = ep.Accumulator(c, num_bins=num_bins, exclusive=not opts.independent, ignore=ignore)
    jobs = opts.jobs or min(4, os.cpu_count() or 1)
    window = max(opts.batch_size or jobs, jobs)
    image_names: list[str] = []
    progress = _progress(len(pairs), opts.quiet)
    try:
        for result in _stream(
            pairs, lambda p: _read_probability_pair(p, counter, opts), jobs, window
        ):
            if progress is not None:
                progress.update(1)
            if result.error is not None:
                bad(result.error)
                continue
            acc.add(result.extra["probs"], result.extra["labels"], result.extra["keep"])
            image_names.append(result.pair.name)
    finally:
        if progress is not None:
            progress.close()
    if not image_names:
        raise _io.InputError(None, "no valid image pairs to evaluate")

    s = ep.scores(acc.state, include_background=opts.include_background)
    exact = acc.state.to_numpy()  # int64 [2, C, B + 1]: negatives, positives per bin
    metrics = list(opts.metrics)
    columns = [*metrics, "best_threshold", "best_dice"]
    top = "top_label_ece" in s
    report: dict[str, Any] = {
        "num_classes": c,
        "metrics": metrics,
        "inputs": "probabilities",
        "num_bins": num_bins,
        "exclusive": not opts.independent,
        "include_background": opts.include_background,
        "probability_columns": columns,
        "titles": {"best_threshold": "Best t", "best_dice": "Dice@t"},
        "classes": [
            {
                "id": k,
                "name": names[k],
                **{m: float(s[m][k]) for m in columns},
                "dice_at_0.5": float(s["dice_at_half"][k]),
                "support": int(exact[1, k].sum()),
                "negatives": int(exact[0, k].sum()),
                "in_averages": bool(s["in_averages"][k]),
            }
            for k in range(c)
        ],
        **{f"mean_{m}": float(s[f"mean_{m}"]) for m in metrics},
        "top_label_ece": float(s["top_label_ece"]) if top else None,
        "top_label_mce": float(s["top_label_mce"]) if top else None,
        "mean_best_dice": s["mean_best_dice"],
        "threshold_sweep": {
            "score": "dice",
            "rule": "predicted positive where p >= threshold (a bin edge k / bins)",
            "best_threshold": s["best_threshold"].tolist(),
            "best_dice": s["best_dice"].tolist(),
            "dice_at_0.5": s["dice_at_half"].tolist(),
        },
        "num_pixels": int(exact[:, 0].sum()),
        "num_invalid": int(s["invalid"]),
        "num_images": len(image_names),
        "ignore_index": list(ignore),
        "label_map": opts.label_map,
        "images": image_names,
    }
    if top:
        conf, accuracy, count = s["top_label_reliability"]
        report["reliability_top_label"] = {
            "confidence": conf.tolist(),
            "accuracy": accuracy.tolist(),
            "count": count.astype(np.int64).tolist(),
        }
    rendered = _report_outputs(opts, report, skipped)
    if opts.plot:
        fig = _report.reliability_figure(
            s["top_label_reliability"] if top else None, s["reliability"], names
        )
        rendered.append((opts.plot, _report.figure_png_bytes(fig)))
    for path, data in rendered:
        _io.write_output(path, data)

    lines = [
        f"evaluated {len(image_names)} probability maps, {report['num_pixels']:,} pixels "
        f"in {time.perf_counter() - t0:.1f} s ({num_bins} bins, "
        f"{'exclusive classes' if not opts.independent else 'independent channels'})",
        _report.format_table(report),
        _report.format_probability_summary(report),
        *(f"wrote {p}" for p, _ in rendered if p != "-"),
    ]
    return _summary(out, rendered, lines, skipped)
