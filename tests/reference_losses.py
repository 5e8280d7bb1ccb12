"""Slow, obvious float64 NumPy loop references for the losses.

Everything here is written from the formulas in the papers / peer docs, with
explicit Python loops over groups, classes and pixels, and shares no code with
the library.
"""

from __future__ import annotations

import math

import numpy as np

#: Labelled mass (pixels) at or below which a class counts as absent.
MIN_MASS = 1e-6


def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(x):
    x = np.asarray(x, np.float64)
    return 1.0 / (1.0 + np.exp(-x))


def _ignored(ignore_index):
    if ignore_index is None:
        return ()
    if isinstance(ignore_index, int):
        return (ignore_index,)
    return tuple(ignore_index)


def targets(shape, labels, *, exclusive, ignore_index=None, where=None):
    """Float targets ``shape`` and the validity mask (per pixel or per element)."""
    c = shape[-1]
    labels = np.asarray(labels)
    ign = _ignored(ignore_index)
    pix = shape[:-1]
    if exclusive:
        valid = np.ones(pix, bool) if where is None else np.broadcast_to(where, pix).copy()
    elif where is None:
        valid = np.ones(shape, bool)
    elif np.shape(where) == tuple(shape):
        valid = np.asarray(where, bool).copy()
    else:
        valid = np.broadcast_to(np.broadcast_to(where, pix)[..., None], shape).copy()
    y = np.zeros(shape, np.float64)
    if np.issubdtype(labels.dtype, np.floating):
        y = labels.astype(np.float64).copy()
        if exclusive:
            y[~valid] = 0.0
        else:
            y[~valid] = 0.0
        return y, valid
    top = c if exclusive else 2
    for idx in np.ndindex(*labels.shape):
        lab = int(labels[idx])
        if lab in ign or not 0 <= lab < top:
            valid[idx] = False
        if not valid[idx]:
            continue
        if exclusive:
            y[(*idx, lab)] = 1.0
        else:
            y[idx] = float(lab)
    return y, valid


def pool_axes(axis, pixel_ndim):
    if axis is None:
        return tuple(range(1, pixel_ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % pixel_ndim for a in axis))


def grouped(a, axes, pixel_ndim):
    """Pixel-major array -> ``[G, P, ...]`` plus the kept (output) shape."""
    a = np.asarray(a)
    kept = [d for d in range(pixel_ndim) if d not in axes]
    rest = list(range(pixel_ndim, a.ndim))
    t = np.transpose(a, kept + list(axes) + rest)
    kshape = tuple(a.shape[d] for d in kept)
    psize = int(np.prod([a.shape[d] for d in axes], dtype=np.int64))
    return t.reshape((int(np.prod(kshape, dtype=np.int64)), psize, *a.shape[pixel_ndim:])), kshape


def _weighted_mean(values, include, weights):
    num = den = 0.0
    for val, inc, w in zip(values, include, weights, strict=True):
        if inc:
            num += w * val
            den += w
    return num / den if den > 0 else 0.0


def region_loss(
    logits,
    labels,
    kind,
    *,
    exclusive=True,
    axis=None,
    ignore_index=None,
    where=None,
    class_weights=None,
    smooth=0.0,
    alpha=0.5,
    beta=0.5,
    gamma=1.0,
    log=False,
    squared=False,
):
    """kind in dice / iou / fbeta (``beta``) / tversky (``alpha``, ``beta``)."""
    x = np.asarray(logits, np.float64)
    c = x.shape[-1]
    nd = x.ndim - 1
    p = softmax(x) if exclusive else sigmoid(x)
    y, valid = targets(x.shape, labels, exclusive=exclusive, ignore_index=ignore_index, where=where)
    if exclusive:
        valid = np.broadcast_to(valid[..., None], x.shape)
    axes = pool_axes(axis, nd)
    pg, kshape = grouped(p, axes, nd)
    yg, _ = grouped(y, axes, nd)
    vg, _ = grouped(valid, axes, nd)
    w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    ign = _ignored(ignore_index) if exclusive else ()
    out = np.zeros(pg.shape[0])
    for g in range(pg.shape[0]):
        losses, include = [], []
        for k in range(c):
            tp = fp = fn = spy = sp2 = sy2 = 0.0
            for i in range(pg.shape[1]):
                if not vg[g, i, k]:
                    continue
                pi, yi = pg[g, i, k], yg[g, i, k]
                tp += min(pi, yi)
                fp += max(pi - yi, 0.0)
                fn += max(yi - pi, 0.0)
                spy += pi * yi
                sp2 += pi * pi
                sy2 += yi * yi
            s = smooth
            # absent: no labelled mass (sum y = tp + fn) in the group
            empty = tp + fn <= MIN_MASS
            if kind == "dice" and squared:
                num, den = 2 * spy + s, sp2 + sy2 + s
            else:
                if kind == "dice":
                    num, den = 2 * tp + s, 2 * tp + fp + fn + s
                elif kind == "iou":
                    num, den = tp + s, tp + fp + fn + s
                elif kind == "fbeta":
                    b2 = beta * beta
                    num, den = (1 + b2) * tp + s, (1 + b2) * tp + b2 * fn + fp + s
                elif kind == "tversky":
                    num, den = tp + s, tp + alpha * fp + beta * fn + s
                else:
                    raise ValueError(kind)
            score = num / den if den > 0 else 0.0
            if log:
                loss = -math.log(max(score, 1e-7))
            else:
                loss = max(1.0 - score, 0.0) ** gamma
            losses.append(loss)
            include.append(k not in ign and w[k] != 0 and (smooth > 0 or not empty))
        out[g] = _weighted_mean(losses, include, w)
    return out.reshape(kshape)


def generalized_dice_loss(
    logits,
    labels,
    *,
    weighting="square",
    axis=None,
    ignore_index=None,
    where=None,
    class_weights=None,
    smooth=0.0,
):
    x = np.asarray(logits, np.float64)
    c = x.shape[-1]
    nd = x.ndim - 1
    p = softmax(x)
    y, valid = targets(x.shape, labels, exclusive=True, ignore_index=ignore_index, where=where)
    axes = pool_axes(axis, nd)
    pg, kshape = grouped(p, axes, nd)
    yg, _ = grouped(y, axes, nd)
    vg, _ = grouped(valid, axes, nd)
    cw = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    ign = _ignored(ignore_index)
    out = np.zeros(pg.shape[0])
    for g in range(pg.shape[0]):
        counted = [k not in ign and cw[k] != 0 for k in range(c)]
        vol, inter, total = np.zeros(c), np.zeros(c), np.zeros(c)
        for k in range(c):
            for i in range(pg.shape[1]):
                if vg[g, i]:
                    vol[k] += yg[g, i, k]
                    inter[k] += min(pg[g, i, k], yg[g, i, k])
                    total[k] += pg[g, i, k] + yg[g, i, k]
        raw = {}
        for k in range(c):
            if counted[k] and vol[k] > MIN_MASS:
                raw[k] = {"square": 1 / vol[k] ** 2, "simple": 1 / vol[k], "uniform": 1.0}[
                    weighting
                ]
        fill = max(raw.values()) if raw else 1.0
        num = den = 0.0
        all_empty = True
        for k in range(c):
            if not counted[k]:
                continue
            wk = raw.get(k, fill) * cw[k]
            num += wk * 2 * inter[k]
            den += wk * total[k]
            all_empty = all_empty and vol[k] <= MIN_MASS
        if all_empty:
            out[g] = 0.0
        else:
            out[g] = 1 - (num + smooth) / (den + smooth) if den + smooth > 0 else 1.0
    return out.reshape(kshape)


def cross_entropy_loss(
    logits,
    labels,
    *,
    axis=None,
    ignore_index=None,
    where=None,
    class_weights=None,
    label_smoothing=0.0,
    gamma=0.0,
):
    """Softmax CE (gamma=0) or focal loss, torch's weighted smoothing convention."""
    x = np.asarray(logits, np.float64)
    c = x.shape[-1]
    nd = x.ndim - 1
    y, valid = targets(x.shape, labels, exclusive=True, ignore_index=ignore_index, where=where)
    w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    per_pixel = np.zeros(x.shape[:-1])
    norm = np.zeros(x.shape[:-1])
    for idx in np.ndindex(*x.shape[:-1]):
        if not valid[idx]:
            continue
        row = x[idx]
        m = row.max()
        logz = m + math.log(sum(math.exp(r - m) for r in row))
        term = 0.0
        for k in range(c):
            logp = row[k] - logz
            t = (1 - label_smoothing) * y[(*idx, k)] + label_smoothing / c
            focal = (1 - math.exp(logp)) ** gamma if gamma else 1.0
            term -= w[k] * t * focal * logp
            norm[idx] += w[k] * y[(*idx, k)]
        per_pixel[idx] = term
    axes = pool_axes(axis, nd)
    if not axes:
        return per_pixel
    ng, kshape = grouped(per_pixel, axes, nd)
    dg, _ = grouped(norm, axes, nd)
    out = np.array([ng[g].sum() / dg[g].sum() if dg[g].sum() > 0 else 0.0 for g in range(len(ng))])
    return out.reshape(kshape)


def sigmoid_focal_loss(
    logits,
    labels,
    *,
    alpha=None,
    gamma=2.0,
    axis=None,
    ignore_index=None,
    where=None,
    class_weights=None,
):
    x = np.asarray(logits, np.float64)
    c = x.shape[-1]
    nd = x.ndim - 1
    y, valid = targets(x.shape, labels, exclusive=False, ignore_index=ignore_index, where=where)
    w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    num = np.zeros(x.shape[:-1])
    den = np.zeros(x.shape[:-1])
    for idx in np.ndindex(*x.shape):
        if not valid[idx]:
            continue
        xi, yi = x[idx], y[idx]
        p = 1 / (1 + math.exp(-xi))
        bce = -(yi * math.log(p) + (1 - yi) * math.log(1 - p))
        pt = p * yi + (1 - p) * (1 - yi)
        term = (1 - pt) ** gamma * bce
        if alpha is not None:
            term *= alpha * yi + (1 - alpha) * (1 - yi)
        num[idx[:-1]] += w[idx[-1]] * term
        den[idx[:-1]] += w[idx[-1]]
    axes = pool_axes(axis, nd)
    ng, kshape = grouped(num, axes, nd)
    dg, _ = grouped(den, axes, nd)
    out = np.array([ng[g].sum() / dg[g].sum() if dg[g].sum() > 0 else 0.0 for g in range(len(ng))])
    return out.reshape(kshape)


def _lovasz_class(errors, gt):
    """Lovász extension of the Jaccard loss: sum_k e_k (D(M_k) - D(M_{k-1})).

    ``M_k`` are the ``k`` largest errors; with soft ``gt``,
    ``D(M_k) = 1 - (G - sum_{j<=k} gt_j) / (G + sum_{j<=k} (1 - gt_j))``.
    """
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    total = sum(gt)
    loss, prev, cum_gt, cum_bg = 0.0, 0.0, 0.0, 0.0
    for i in order:
        cum_gt += gt[i]
        cum_bg += 1 - gt[i]
        union = total + cum_bg
        d = 1 - (total - cum_gt) / union
        loss += errors[i] * (d - prev)
        prev = d
    return loss


def lovasz_softmax_loss(
    logits,
    labels,
    *,
    classes="present",
    axis=None,
    ignore_index=None,
    where=None,
    class_weights=None,
):
    x = np.asarray(logits, np.float64)
    c = x.shape[-1]
    nd = x.ndim - 1
    p = softmax(x)
    y, valid = targets(x.shape, labels, exclusive=True, ignore_index=ignore_index, where=where)
    axes = pool_axes(axis, nd)
    pg, kshape = grouped(p, axes, nd)
    yg, _ = grouped(y, axes, nd)
    vg, _ = grouped(valid, axes, nd)
    w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    ign = _ignored(ignore_index)
    out = np.zeros(pg.shape[0])
    for g in range(pg.shape[0]):
        keep = [i for i in range(pg.shape[1]) if vg[g, i]]
        losses, include = [], []
        for k in range(c):
            gt = [yg[g, i, k] for i in keep]
            err = [abs(yg[g, i, k] - pg[g, i, k]) for i in keep]
            losses.append(_lovasz_class(err, gt) if keep else 0.0)
            present = sum(gt) > 0
            include.append(k not in ign and w[k] != 0 and (classes == "all" or present))
        out[g] = _weighted_mean(losses, include, w)
    return out.reshape(kshape)


def lovasz_hinge_loss(
    logits, labels, *, axis=None, ignore_index=None, where=None, class_weights=None
):
    x = np.asarray(logits, np.float64)
    c = x.shape[-1]
    nd = x.ndim - 1
    y, valid = targets(x.shape, labels, exclusive=False, ignore_index=ignore_index, where=where)
    axes = pool_axes(axis, nd)
    xg, kshape = grouped(x, axes, nd)
    yg, _ = grouped(y, axes, nd)
    vg, _ = grouped(valid, axes, nd)
    w = np.ones(c) if class_weights is None else np.asarray(class_weights, np.float64)
    out = np.zeros(xg.shape[0])
    for g in range(xg.shape[0]):
        losses = []
        for k in range(c):
            keep = [i for i in range(xg.shape[1]) if vg[g, i, k]]
            gt = [yg[g, i, k] for i in keep]
            err = [1 - xg[g, i, k] * (2 * yg[g, i, k] - 1) for i in keep]
            # relu after sorting by the raw hinge errors
            order = sorted(range(len(err)), key=lambda i: -err[i])
            err_sorted = [max(err[i], 0.0) for i in order]
            gt_sorted = [gt[i] for i in order]
            losses.append(_lovasz_class(err_sorted, gt_sorted) if keep else 0.0)
        out[g] = _weighted_mean(losses, [w[k] != 0 for k in range(c)], w)
    return out.reshape(kshape)
