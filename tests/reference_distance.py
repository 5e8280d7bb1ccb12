"""Slow NumPy references for the boundary band and the surface-distance metrics.

* :func:`mask_to_boundary` follows boundary-iou-api's function of that name
  with OpenCV's erosion semantics written out: pad the mask with one zero pixel
  on each side, erode ``d`` times with a 3x3 square (pixels beyond the padded
  image never erode anything, OpenCV's default border for erosion), crop,
  subtract. One erosion per class, as the API does.
* :func:`monai_metric` calls MONAI's ``compute_*`` on one-hot tensors.
* :func:`deepmind_metric` calls DeepMind's ``surface-distance`` package.
"""

from __future__ import annotations

import math

import numpy as np


def band_width(h: int, w: int, ratio: float) -> int:
    return max(1, round(ratio * math.sqrt(h**2 + w**2)))


def _erode3x3(img: np.ndarray) -> np.ndarray:
    """One 3x3 erosion; neighbours outside the array are ignored (border = +inf)."""
    h, w = img.shape
    big = np.pad(img, 1, constant_values=np.iinfo(np.int64).max)
    out = np.full_like(img, np.iinfo(np.int64).max)
    for dy in range(3):
        for dx in range(3):
            out = np.minimum(out, big[dy : dy + h, dx : dx + w])
    return out


def mask_to_boundary(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """boundary-iou-api's ``mask_to_boundary`` (0/1 mask -> 0/1 band)."""
    h, w = mask.shape
    d = band_width(h, w, ratio)
    padded = np.pad(mask.astype(np.int64), 1, constant_values=0)
    for _ in range(d):
        padded = _erode3x3(padded)
    return mask.astype(np.int64) - padded[1 : h + 1, 1 : w + 1]


def mask_to_boundary_3d(mask: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """jaxseg's 3-D band, written out: ``mask_to_boundary`` with a 3x3x3 cube.

    ``d = max(1, round(ratio * sqrt(D^2 + H^2 + W^2)))``; the volume is padded
    with one voxel of background and eroded ``d`` times, each time taking the
    minimum over the 27 voxels of the cube, in float64, voxels beyond the padded
    volume ignored (+inf); the band is the mask minus the cropped erosion.
    """
    dims = mask.shape
    d = max(1, round(ratio * math.sqrt(sum(n**2 for n in dims))))
    x = np.pad(mask.astype(np.float64), 1, constant_values=0.0)
    for _ in range(d):
        big = np.pad(x, 1, constant_values=np.inf)
        out = np.full_like(x, np.inf)
        for i in range(3):
            for j in range(3):
                for k in range(3):
                    out = np.minimum(
                        out, big[i : i + x.shape[0], j : j + x.shape[1], k : k + x.shape[2]]
                    )
        x = out
    inner = x[1 : dims[0] + 1, 1 : dims[1] + 1, 1 : dims[2] + 1]
    return mask.astype(np.float64) - inner


def boundary_counts(pred, label, num_classes, ratio=0.02, ignore=()):
    """int64 ``[4, C]`` rows tp, fp, fn, tn of the bands; one image ``[H, W]`` or volume."""
    valid = ~np.isin(label, list(ignore)) & (label >= 0) & (label < num_classes)
    band = mask_to_boundary if label.ndim == 2 else mask_to_boundary_3d
    out = np.zeros((4, num_classes), np.int64)
    for c in range(num_classes):
        g = band(label == c, ratio).astype(bool) & valid
        p = band(pred == c, ratio).astype(bool) & valid
        out[0, c] = np.sum(g & p)
        out[1, c] = np.sum(p & ~g)
        out[2, c] = np.sum(g & ~p)
        out[3, c] = np.sum(valid) - out[:3, c].sum()
    return out


def monai_metric(name, pred, label, num_classes, **kw):
    """MONAI ``compute_*`` on one-hot ``[B, C, *spatial]`` float tensors -> ``[B, C]``."""
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    def onehot(x):
        eye = np.eye(num_classes, dtype=np.float32)[x]  # [B, *spatial, C]
        return torch.from_numpy(np.moveaxis(eye, -1, 1).copy())

    fn = {
        "hd": compute_hausdorff_distance,
        "asd": compute_average_surface_distance,
        "nsd": compute_surface_dice,
    }[name]
    if name == "nsd":
        kw.setdefault("class_thresholds", [kw.pop("tolerance")] * num_classes)
    return fn(onehot(pred), onehot(label), include_background=True, **kw).numpy()


def deepmind_metric(name, pred, label, num_classes, spacing, *, percentile=None, tol=None):
    """DeepMind surface-distance per image and class, with MONAI's empty rule.

    ``hd``: ``compute_robust_hausdorff`` (percentile 100 for the maximum);
    ``asd_directed``: prediction-to-label average; ``asd``: both directions
    pooled, area weighted; ``nsd``: ``compute_surface_dice_at_tolerance``.
    """
    import surface_distance as sd

    out = np.zeros((pred.shape[0], num_classes))
    for b in range(pred.shape[0]):
        for c in range(num_classes):
            p, g = pred[b] == c, label[b] == c
            if not p.any() and not g.any():
                out[b, c] = np.nan
                continue
            if not p.any() or not g.any():
                out[b, c] = 0.0 if name == "nsd" else np.inf
                continue
            d = sd.compute_surface_distances(g, p, spacing)
            if name == "hd":
                out[b, c] = sd.compute_robust_hausdorff(
                    d, 100 if percentile is None else percentile
                )
            elif name == "nsd":
                out[b, c] = sd.compute_surface_dice_at_tolerance(d, tol)
            elif name == "asd_directed":
                out[b, c] = sd.compute_average_surface_distance(d)[1]
            else:
                num = np.sum(d["distances_gt_to_pred"] * d["surfel_areas_gt"]) + np.sum(
                    d["distances_pred_to_gt"] * d["surfel_areas_pred"]
                )
                out[b, c] = num / (np.sum(d["surfel_areas_gt"]) + np.sum(d["surfel_areas_pred"]))
    return out


def random_maps(rng, shape, num_classes, kind):
    """Label maps ``[B, *spatial]`` of a few kinds: blobs, thin, dots, border, empty."""
    b, *spatial = shape
    x = np.zeros(shape, np.int32)
    grids = np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij")
    for i in range(b):
        for c in range(1, num_classes):
            if kind == "empty" and c == num_classes - 1:
                continue
            if kind == "dots":
                idx = tuple(rng.integers(0, n) for n in spatial)
                x[(i, *idx)] = c
                continue
            centre = [rng.uniform(0, n) for n in spatial]
            radius = [rng.uniform(1, n / 2.5) for n in spatial]
            if kind == "thin":
                radius[0] = 0.6
            r = sum(((g - m) / s) ** 2 for g, m, s in zip(grids, centre, radius, strict=True))
            blob = r <= 1.0
            if kind == "border":
                blob |= grids[0] == 0
            x[i][blob] = c
    return x


def deepmind_percentile(distances, areas, q, tie=1e-9):
    """The robust-HD rule of ``surface_distance`` on one sorted direction, ties decided.

    ``surface_distance.compute_robust_hausdorff`` takes the first surfel whose
    cumulative area fraction is ``>= q / 100`` in float64; where that fraction
    equals ``q / 100`` exactly, its own summation rounding decides. Here a
    fraction within ``tie`` (relative) of ``q / 100`` counts as reaching it.
    """
    if len(distances) == 0:
        return np.inf
    cum = np.cumsum(areas) / np.sum(areas)
    p = q / 100.0
    idx = int(np.argmax(cum >= p * (1 - tie))) if np.any(cum >= p * (1 - tie)) else len(cum) - 1
    return float(distances[idx])


def rectangle_or_blob_pairs(rng, n, shape):
    """``n`` pairs ``(pred, label)`` of int32 0/1 maps: boxes and blobs, alternating."""
    pred = np.zeros((n, *shape), np.int32)
    label = np.zeros((n, *shape), np.int32)
    for i in range(n):
        for out in (pred, label):
            while not out[i].any():
                if i % 2 == 0:
                    lo = [int(rng.integers(0, s - 1)) for s in shape]
                    hi = [int(rng.integers(a + 1, s + 1)) for a, s in zip(lo, shape, strict=True)]
                    out[(i, *[slice(a, b) for a, b in zip(lo, hi, strict=True)])] = 1
                else:
                    out[i] = random_maps(rng, (1, *shape), 2, "blobs")[0]
    return pred, label
