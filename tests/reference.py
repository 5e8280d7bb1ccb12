"""Slow, obvious NumPy / Python-loop references for the statistics and scores.

Everything here loops over pixels and classes in plain Python with float64
arithmetic, so that it can be read and checked by eye. Tests compare jaxseg
against these functions; nothing here calls jaxseg.
"""

from __future__ import annotations

import math

import numpy as np

# -- hard statistics -------------------------------------------------------------


def _flat(x, shape=None):
    x = np.asarray(x)
    if shape is not None:
        x = np.broadcast_to(x, shape)
    return [v.item() for v in x.reshape(-1)]


def normalize_ignore(ignore_index) -> tuple[int, ...]:
    if ignore_index is None:
        return ()
    if isinstance(ignore_index, int | np.integer):
        return (int(ignore_index),)
    return tuple(int(i) for i in ignore_index)


def confusion(preds, labels, num_classes, ignore_index=None, where=None, *, with_void=False):
    """``(M, invalid)``: ``M[label, pred]`` counts of valid pixels, int64.

    A valid pixel whose label lies outside ``[0, C)`` is invalid; one whose
    prediction lies outside is a void prediction, counted per label class in
    ``void`` (returned as ``(M, void, invalid)`` with ``with_void=True``).
    """
    ignored = normalize_ignore(ignore_index)
    labels_l = _flat(labels)
    preds_l = _flat(preds)
    where_l = _flat(True if where is None else where, np.shape(labels))
    m = np.zeros((num_classes, num_classes), np.int64)
    void = np.zeros(num_classes, np.int64)
    invalid = 0
    for y, p, w in zip(labels_l, preds_l, where_l, strict=True):
        y, p = int(y), int(p)
        if not w or y in ignored:
            continue
        if not 0 <= y < num_classes:
            invalid += 1
        elif 0 <= p < num_classes:
            m[y, p] += 1
        else:
            void[y] += 1
    return (m, void, invalid) if with_void else (m, invalid)


def counted_classes(num_classes, ignore_index=None):
    ignored = normalize_ignore(ignore_index)
    return np.array([c not in ignored for c in range(num_classes)])


def stats_from_matrix(m, void=None):
    """Per-class ``tp, fp, fn, tn`` (int64) from a ``[C, C]`` matrix, by loops.

    ``void[k]`` pixels of label ``k`` predicted outside the classes are misses:
    false negatives of ``k``, false positives of nobody.
    """
    c = m.shape[0]
    void = np.zeros(c, np.int64) if void is None else void
    total = int(sum(int(m[i, j]) for i in range(c) for j in range(c))) + int(sum(void))
    tp, fp, fn, tn = (np.zeros(c, np.int64) for _ in range(4))
    for k in range(c):
        tp[k] = m[k, k]
        fp[k] = sum(int(m[r, k]) for r in range(c) if r != k)
        fn[k] = sum(int(m[k, j]) for j in range(c) if j != k) + int(void[k])
        tn[k] = total - tp[k] - fp[k] - fn[k]
    return tp, fp, fn, tn


def binary_stats(preds, labels, ignore_index=None, where=None):
    """``([4, C] counts tp/fp/fn/tn, invalid)`` for 0/1 labels per channel ``[..., C]``."""
    ignored = normalize_ignore(ignore_index)
    preds = np.asarray(preds)
    labels = np.asarray(labels)
    c = preds.shape[-1]
    p2 = preds.reshape(-1, c)
    y2 = labels.reshape(-1, c)
    if where is None:
        w2 = np.ones_like(y2, bool)
    else:
        w = np.asarray(where)
        if w.shape != preds.shape:
            w = np.broadcast_to(w, preds.shape[:-1])[..., None]
        w2 = np.broadcast_to(w, preds.shape).reshape(-1, c)
    out = np.zeros((4, c), np.int64)
    invalid = 0
    for i in range(p2.shape[0]):
        for k in range(c):
            y = int(y2[i, k])
            if not w2[i, k] or y in ignored:
                continue
            if y not in (0, 1):
                invalid += 1
                continue
            p = bool(p2[i, k])
            row = {(True, 1): 0, (True, 0): 1, (False, 1): 2, (False, 0): 3}[(p, y)]
            out[row, k] += 1
    return out, invalid


# -- scores ----------------------------------------------------------------------


def _terms(name, tp, fp, fn, tn, params):
    if name == "iou":
        return tp, tp + fp + fn
    if name == "dice":
        return 2 * tp, 2 * tp + fp + fn
    if name == "fbeta":
        b2 = params.get("beta", 1.0) ** 2
        return (1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp
    if name == "tversky":
        a, b = params.get("alpha", 0.5), params.get("beta", 0.5)
        return tp, tp + a * fp + b * fn
    if name == "precision":
        return tp, tp + fp
    if name == "recall":
        return tp, tp + fn
    raise ValueError(name)


def _ratio(num, den):
    return 0.0 if den == 0 else num / den


def score(name, tp, fp, fn, tn, counted, *, average="macro", empty=math.nan, **params):
    """A region score with the empty-class rule and an average, by loops in float64."""
    c = len(tp)
    tp, fp, fn, tn = ([float(x) for x in a] for a in (tp, fp, fn, tn))
    if average == "micro":
        s = [sum(a[k] for k in range(c) if counted[k]) for a in (tp, fp, fn, tn)]
        if s[0] + s[1] + s[2] == 0:
            return float(empty)
        return _ratio(*_terms(name, *s, params))
    per = []
    for k in range(c):
        if not counted[k]:
            per.append(math.nan)
        elif tp[k] + fp[k] + fn[k] == 0:
            per.append(float(empty))
        else:
            per.append(_ratio(*_terms(name, tp[k], fp[k], fn[k], tn[k], params)))
    if average is None:
        return np.array(per)
    keep = [k for k in range(c) if counted[k] and not math.isnan(per[k])]
    if average == "macro":
        return sum(per[k] for k in keep) / len(keep) if keep else math.nan
    if average == "weighted":
        total = sum(tp[k] + fn[k] for k in keep)
        if total == 0:
            return math.nan
        return sum(per[k] * (tp[k] + fn[k]) for k in keep) / total
    raise ValueError(average)


def pixel_accuracy(tp, fp, fn, tn, counted, exclusive=True):
    ks = [k for k in range(len(tp)) if counted[k]]
    if exclusive:
        num = sum(float(tp[k]) for k in ks)
        den = sum(float(tp[k] + fn[k]) for k in ks)
    else:
        num = sum(float(tp[k] + tn[k]) for k in ks)
        den = sum(float(tp[k] + fp[k] + fn[k] + tn[k]) for k in ks)
    return math.nan if den == 0 else num / den


def generalized_dice(tp, fp, fn, counted, *, weighting="square", empty=math.nan):
    """Sudre et al. 2017; an absent class takes the largest weight of the present ones."""
    c = len(tp)
    w = [0.0] * c
    present = [counted[k] and tp[k] + fn[k] > 0 for k in range(c)]
    for k in range(c):
        if present[k]:
            t = float(tp[k] + fn[k])
            w[k] = {"square": 1 / (t * t), "simple": 1 / t, "uniform": 1.0}[weighting]
    fill = max([w[k] for k in range(c) if present[k]], default=0.0) or 1.0
    for k in range(c):
        if counted[k] and not present[k]:
            w[k] = fill
    if sum(float(tp[k] + fp[k] + fn[k]) for k in range(c) if counted[k]) == 0:
        return float(empty)
    num = sum(w[k] * 2 * float(tp[k]) for k in range(c))
    den = sum(w[k] * float(2 * tp[k] + fp[k] + fn[k]) for k in range(c))
    return _ratio(num, den)


def class_weights(n, scheme, enet_c=1.02):
    """Class weights from label counts ``n``; absent classes get 0."""
    n = [float(x) for x in n]
    present = [k for k in range(len(n)) if n[k] > 0]
    total = sum(n)
    w = [0.0] * len(n)
    if not present:
        return np.array(w)
    if scheme == "inverse":
        for k in present:
            w[k] = total / (len(present) * n[k])
    elif scheme == "inverse_sqrt":
        scale = total / sum(math.sqrt(n[k]) for k in present)  # sum(w n) = total
        for k in present:
            w[k] = scale / math.sqrt(n[k])
    elif scheme == "median":
        med = float(np.median([n[k] / total for k in present]))
        for k in present:
            w[k] = med / (n[k] / total)
    elif scheme == "enet":
        for k in present:
            w[k] = 1 / math.log(enet_c + n[k] / total)
    else:
        raise ValueError(scheme)
    return np.array(w)


# -- soft statistics -------------------------------------------------------------


def soft_stats(probs, targets, valid):
    """L1-form soft ``tp, fp, fn, tn`` per class; ``valid`` has ``probs.shape``."""
    p = np.asarray(probs, np.float64).reshape(-1, np.shape(probs)[-1])
    y = np.asarray(targets, np.float64).reshape(p.shape)
    v = np.broadcast_to(np.asarray(valid), np.shape(probs)).reshape(p.shape)
    out = np.zeros((4, p.shape[1]))
    for i in range(p.shape[0]):
        for k in range(p.shape[1]):
            if v[i, k]:
                a, b = p[i, k], y[i, k]
                out[0, k] += min(a, b)
                out[1, k] += max(a - b, 0.0)
                out[2, k] += max(b - a, 0.0)
                out[3, k] += min(1 - a, 1 - b)
    return out
