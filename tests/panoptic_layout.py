"""Random but realistic panoptic pairs, written in the real Cityscapes / COCO layouts.

Each :class:`PanopticCase` holds one image's reference and prediction as id maps
in jaxseg's convention (``id = category * 1000 + instance``; a thing category
with instance 0 is a crowd region; 0 is VOID) and writes them as cityscapesScripts'
``createPanopticImgs.py`` and a COCO panoptic prediction would:

* ``gtFine/cityscapes_panoptic_val/<name>_gtFine_panoptic.png``: RGB-encoded ids
  (``id = R + 256 G + 256**2 B``) with Cityscapes' own segment ids (stuff and
  crowd: the category id; things: ``category * 1000 + instance``);
* ``gtFine/cityscapes_panoptic_val.json``: ``images``, ``annotations`` (``file_name``,
  ``segments_info`` with ``id, category_id, area, bbox, iscrowd``) and
  ``categories`` (``id, name, color, supercategory, isthing``);
* ``results/cityscapes_panoptic_val/<name>_panoptic.png`` and
  ``results/cityscapes_panoptic_val.json``: the prediction in COCO panoptic result
  format, its segment ids renumbered at random (large RGB ids included).

Nothing here calls jaxseg. The cases cover crowd regions, VOID (also under
predicted segments), tiny segments, categories absent from the reference or from
the prediction, and predictions that split, merge, shift, relabel, drop or invent
segments.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

DIVISOR = 1000

#: Cityscapes' 19 evaluated categories (labelIds), as ``createPanopticImgs.py`` lists them.
CITYSCAPES_CATEGORIES = [
    {"id": i, "name": n, "color": list(c), "supercategory": s, "isthing": t}
    for i, n, c, s, t in [
        (7, "road", (128, 64, 128), "flat", 0),
        (8, "sidewalk", (244, 35, 232), "flat", 0),
        (11, "building", (70, 70, 70), "construction", 0),
        (12, "wall", (102, 102, 156), "construction", 0),
        (13, "fence", (190, 153, 153), "construction", 0),
        (17, "pole", (153, 153, 153), "object", 0),
        (19, "traffic light", (250, 170, 30), "object", 0),
        (20, "traffic sign", (220, 220, 0), "object", 0),
        (21, "vegetation", (107, 142, 35), "nature", 0),
        (22, "terrain", (152, 251, 152), "nature", 0),
        (23, "sky", (70, 130, 180), "sky", 0),
        (24, "person", (220, 20, 60), "human", 1),
        (25, "rider", (255, 0, 0), "human", 1),
        (26, "car", (0, 0, 142), "vehicle", 1),
        (27, "truck", (0, 0, 70), "vehicle", 1),
        (28, "bus", (0, 60, 100), "vehicle", 1),
        (31, "train", (0, 80, 100), "vehicle", 1),
        (32, "motorcycle", (0, 0, 230), "vehicle", 1),
        (33, "bicycle", (119, 11, 32), "vehicle", 1),
    ]
]
STUFF = [c["id"] for c in CITYSCAPES_CATEGORIES if not c["isthing"]]
THINGS = [c["id"] for c in CITYSCAPES_CATEGORIES if c["isthing"]]
CITIES = ("frankfurt", "lindau", "munster")


@dataclasses.dataclass
class PanopticCase:
    """One image: id maps ``int64 [H, W]`` in jaxseg's convention (divisor 1000)."""

    name: str
    label_ids: np.ndarray
    pred_ids: np.ndarray
    #: Extra crowd segments written to the reference PNG/JSON as separate segments of
    #: the same category (COCO allows several; Cityscapes has one): ``[H, W]`` bool
    #: masks, each a part of that category's crowd region ``category * 1000``.
    split_crowd: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


# -- generation -------------------------------------------------------------------------


def _blob(rng, shape, size):
    """A random filled rectangle or ellipse of about ``size`` pixels (bool mask)."""
    h, w = shape
    bh = int(np.clip(rng.integers(1, max(2, int(np.sqrt(size) * 1.5))), 1, h))
    bw = int(np.clip(max(1, size // max(bh, 1)), 1, w))
    y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    mask = np.zeros(shape, bool)
    if rng.random() < 0.5 or bh < 3 or bw < 3:
        mask[y : y + bh, x : x + bw] = True
    else:
        yy, xx = np.mgrid[:bh, :bw]
        cy, cx = (bh - 1) / 2, (bw - 1) / 2
        mask[y : y + bh, x : x + bw] = ((yy - cy) / (bh / 2)) ** 2 + (
            (xx - cx) / (bw / 2)
        ) ** 2 <= 1
    return mask


def random_label(rng, shape=(24, 40)) -> np.ndarray:
    """A reference id map: stuff bands, thing instances (some tiny), crowd, VOID."""
    h, w = shape
    # stuff: 2-5 categories as horizontal bands with wavy borders
    cats = rng.choice(STUFF, size=int(rng.integers(2, 6)), replace=False)
    edges = np.sort(rng.integers(1, h, size=len(cats) - 1))
    rows = np.arange(h)[:, None] + np.round(1.5 * np.sin(np.arange(w) / rng.uniform(2, 6)))[None]
    band = np.searchsorted(edges, rows, side="right")
    ids = np.asarray(cats)[band].astype(np.int64) * DIVISOR
    # things: instances of 1-4 categories, several per category, some tiny
    for cat in rng.choice(THINGS, size=int(rng.integers(1, 5)), replace=False):
        for k in range(1, int(rng.integers(1, 5)) + 1):
            size = int(rng.choice([1, 2, 4, 20, 40, 80]))
            ids[_blob(rng, shape, size)] = cat * DIVISOR + k
        if rng.random() < 0.4:  # a crowd region of the category
            ids[_blob(rng, shape, int(rng.integers(6, 40)))] = cat * DIVISOR
    # VOID: a border, an "ego vehicle" at the bottom, or scattered pixels
    r = rng.random()
    if r < 0.3:
        ids[:, : int(rng.integers(1, 3))] = 0
    elif r < 0.6:
        ids[h - int(rng.integers(1, 4)) :, w // 4 : 3 * w // 4] = 0
    elif r < 0.8:
        ids[rng.random(shape) < 0.05] = 0
    return ids


def _surrounding(ids, mask):
    """The most frequent id on the one-pixel ring around ``mask`` (the first stuff id if none)."""
    grown = mask.copy()
    for axis in (0, 1):
        for d in (-1, 1):
            grown |= np.roll(mask, d, axis)
    ring = ids[grown & ~mask]
    if ring.size == 0:
        return STUFF[0] * DIVISOR
    values, counts = np.unique(ring, return_counts=True)
    return int(values[np.argmax(counts)])


def _relabel(ids, old, new):
    out = ids.copy()
    out[ids == old] = new
    return out


def random_prediction(rng, label: np.ndarray) -> np.ndarray:
    """A prediction derived from ``label`` with realistic errors."""
    h, w = label.shape
    pred = label.copy()
    # VOID and crowd pixels get predicted as something (the nearest stuff above)
    for y in range(h):
        for x in range(w):
            if pred[y, x] == 0:
                pred[y, x] = pred[y - 1, x] if y > 0 else rng.choice(STUFF) * DIVISOR
    segs = [int(s) for s in np.unique(label) if s]
    things = [s for s in segs if s % DIVISOR and s // DIVISOR in THINGS]
    next_instance = 900
    for s in things:
        mask = label == s
        r = rng.random()
        if r < 0.12:  # missed: becomes what surrounds it
            pred[mask] = _surrounding(pred, mask)
        elif r < 0.24:  # split into two instances
            xs = np.nonzero(mask)[1]
            next_instance += 1
            pred[mask & (np.arange(w)[None] >= np.median(xs))] = (
                s // DIVISOR
            ) * DIVISOR + next_instance
        elif r < 0.34:  # wrong category
            other = [c for c in THINGS if c != s // DIVISOR]
            pred[mask] = int(rng.choice(other)) * DIVISOR + (s % DIVISOR)
        elif r < 0.5:  # shifted sideways by one or two pixels
            pred[mask] = _surrounding(pred, mask)
            pred[np.roll(mask, int(rng.choice([-2, -1, 1, 2])), 1)] = s
    # merge two instances of one category
    by_cat: dict[int, list[int]] = {}
    for s in things:
        by_cat.setdefault(s // DIVISOR, []).append(s)
    for group in by_cat.values():
        if len(group) >= 2 and rng.random() < 0.5:
            pred = _relabel(pred, group[1], group[0])
    # crowd regions: predicted as one or two instances of the category
    for s in segs:
        if s % DIVISOR == 0 and s // DIVISOR in THINGS and rng.random() < 0.7:
            mask = label == s
            pred[mask] = s + 700
            if rng.random() < 0.5:
                pred[mask & (np.arange(h)[:, None] % 2 == 0)] = s + 701
    # invented segments: things (some on VOID), a stuff category absent from the label
    for _ in range(int(rng.integers(0, 3))):
        next_instance += 1
        pred[_blob(rng, label.shape, int(rng.choice([3, 12, 30])))] = (
            int(rng.choice(THINGS)) * DIVISOR + next_instance
        )
    if rng.random() < 0.3:
        absent = [c for c in STUFF if c * DIVISOR not in segs]
        pred[_blob(rng, label.shape, 25)] = int(rng.choice(absent)) * DIVISOR
    # jittered stuff borders
    if rng.random() < 0.5:
        stuff = (pred % DIVISOR == 0) & np.isin(pred // DIVISOR, STUFF)
        shifted = np.roll(pred, 1, 0)
        pred = np.where(
            stuff & (rng.random(label.shape) < 0.3) & (shifted % DIVISOR == 0), shifted, pred
        )
    # a predicted VOID patch (unlabelled pixels in the prediction)
    if rng.random() < 0.2:
        pred[_blob(rng, label.shape, 10)] = 0
    return pred.astype(np.int64)


def random_cases(n: int, seed: int = 0, shape=(24, 40)) -> list[PanopticCase]:
    """``n`` random cases; every fifth one splits a crowd region into two segments."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        label = random_label(rng, shape)
        pred = random_prediction(rng, label)
        name = f"{CITIES[i % 3]}_{i:06d}_{rng.integers(0, 10**6):06d}"
        case = PanopticCase(name, label, pred)
        crowds = [
            int(s) for s in np.unique(label) if s and s % DIVISOR == 0 and s // DIVISOR in THINGS
        ]
        if crowds and i % 5 == 4:
            s = crowds[0]
            mask = label == s
            case.split_crowd[s] = mask & (np.arange(shape[1])[None] >= np.nonzero(mask)[1].mean())
        cases.append(case)
    return cases


# -- writing the layouts ----------------------------------------------------------------


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """COCO panoptic encoding ``uint8 [H, W, 3]``: ``id = R + 256 G + 256**2 B``."""
    ids = np.asarray(ids, np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 256**2 % 256], -1).astype(np.uint8)


def _segment(seg_id, category, mask, iscrowd):
    ys, xs = np.nonzero(mask)
    bbox = [
        int(xs.min()),
        int(ys.min()),
        int(xs.max() - xs.min() + 1),
        int(ys.max() - ys.min() + 1),
    ]
    return {
        "id": int(seg_id),
        "category_id": int(category),
        "area": int(mask.sum()),
        "bbox": bbox,
        "iscrowd": int(iscrowd),
    }


def _cityscapes_gt(case: PanopticCase) -> tuple[np.ndarray, list[dict]]:
    """The reference as createPanopticImgs.py writes it: (PNG ids, segments_info)."""
    png = np.zeros(case.label_ids.shape, np.int64)
    info = []
    for s in np.unique(case.label_ids):
        s = int(s)
        if s == 0:
            continue
        cat, inst = divmod(s, DIVISOR)
        crowd = cat in THINGS and inst == 0
        seg_id = cat if inst == 0 else s  # Cityscapes: stuff and crowd carry the label id
        mask = case.label_ids == s
        parts = [(seg_id, mask)]
        if s in case.split_crowd:  # a second crowd segment of the same category
            extra = case.split_crowd[s] & mask
            parts = [(seg_id, mask & ~extra), (cat * DIVISOR + 999, extra)]
        for pid, m in parts:
            if m.any():
                png[m] = pid
                info.append(_segment(pid, cat, m, crowd))
    return png, info


def _coco_pred(case: PanopticCase, rng) -> tuple[np.ndarray, list[dict]]:
    """The prediction with its segments renumbered at random (COCO result format)."""
    png = np.zeros(case.pred_ids.shape, np.int64)
    info = []
    segs = [int(s) for s in np.unique(case.pred_ids) if s]
    new_ids = rng.choice(np.arange(1, 256**3), size=len(segs), replace=False)
    for s, new in zip(segs, new_ids, strict=True):
        mask = case.pred_ids == s
        png[mask] = new
        info.append(_segment(new, s // DIVISOR, mask, 0))
    rng.shuffle(info)
    return png, info


def write_cityscapes_panoptic(
    root: Path | str, cases: list[PanopticCase], *, seed: int = 0, categories=None
) -> dict[str, Path]:
    """Write the reference in Cityscapes' panoptic layout and the prediction as COCO results.

    Returns the paths: ``gt_json``, ``gt_folder``, ``pred_json``, ``pred_folder``.
    """
    from PIL import Image

    root = Path(root)
    categories = CITYSCAPES_CATEGORIES if categories is None else categories
    gt_folder = root / "gtFine" / "cityscapes_panoptic_val"
    pred_folder = root / "results" / "cityscapes_panoptic_val"
    gt_folder.mkdir(parents=True, exist_ok=True)
    pred_folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, gt_anns, pred_anns = [], [], []
    for case in cases:
        h, w = case.label_ids.shape
        gt_png, gt_info = _cityscapes_gt(case)
        pred_png, pred_info = _coco_pred(case, rng)
        gt_name = f"{case.name}_gtFine_panoptic.png"
        pred_name = f"{case.name}_panoptic.png"
        Image.fromarray(id2rgb(gt_png)).save(gt_folder / gt_name)
        Image.fromarray(id2rgb(pred_png)).save(pred_folder / pred_name)
        images.append(
            {
                "id": case.name,
                "width": w,
                "height": h,
                "file_name": f"{case.name}_gtFine_leftImg8bit.png",
            }
        )
        gt_anns.append({"image_id": case.name, "file_name": gt_name, "segments_info": gt_info})
        pred_anns.append(
            {"image_id": case.name, "file_name": pred_name, "segments_info": pred_info}
        )
    gt_json = root / "gtFine" / "cityscapes_panoptic_val.json"
    pred_json = root / "results" / "cityscapes_panoptic_val.json"
    gt_json.write_text(
        json.dumps({"images": images, "annotations": gt_anns, "categories": categories}, indent=1)
    )
    pred_json.write_text(json.dumps({"annotations": pred_anns}, indent=1))
    return {
        "gt_json": gt_json,
        "gt_folder": gt_folder,
        "pred_json": pred_json,
        "pred_folder": pred_folder,
    }


def read_coco_panoptic(
    json_path: Path | str, folder: Path | str
) -> dict[str, tuple[np.ndarray, dict]]:
    """``{image_id: (ids int64 [H, W], {segment id: segment info})}`` from a COCO panoptic JSON."""
    from PIL import Image

    out = {}
    for ann in json.loads(Path(json_path).read_text())["annotations"]:
        rgb = np.asarray(Image.open(Path(folder) / ann["file_name"]), np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]
        out[ann["image_id"]] = (ids, {s["id"]: s for s in ann["segments_info"]})
    return out
