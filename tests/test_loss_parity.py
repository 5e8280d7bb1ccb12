"""Parity of the losses with the established peers: MONAI and torch (channels-first)."""

from __future__ import annotations

import numpy as np
import pytest

import jaxseg
from tests.test_losses import _run_once

torch = pytest.importorskip("torch")
monai_losses = pytest.importorskip("monai.losses")

CLASSES = [2, 5, 19]


def _data(c, seed, ignore=False):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(2, 6, 5, c)) * 2).astype(np.float32)
    labels = rng.integers(0, c, size=(2, 6, 5)).astype(np.int64)
    if c > 2:
        labels[0][labels[0] == 1] = 0  # class 1 absent from image 0
    if ignore:
        labels[rng.random(labels.shape) < 0.15] = 255
    return logits, labels


def _torch(logits, labels):
    """Channels-last arrays -> channels-first tensors: input [B, C, H, W], target [B, 1, H, W]."""
    x = torch.from_numpy(np.moveaxis(logits, -1, 1).copy())
    y = torch.from_numpy(labels[:, None].copy())
    return x, y


def _monai_per_example(loss, x, y, batch):
    out = loss(x, y).detach().numpy()
    return out.reshape(out.shape[:2] if not batch else (out.shape[0],)).astype(np.float64)


DICE_OPTIONS = [
    ({"smooth_nr": 1e-5, "smooth_dr": 1e-5}, ("dice_loss", {"smooth": 1e-5})),
    ({"smooth_nr": 1.0, "smooth_dr": 1.0}, ("dice_loss", {"smooth": 1.0})),
    (
        {"smooth_nr": 0.5, "smooth_dr": 0.5, "include_background": False},
        ("dice_loss", {"smooth": 0.5, "background": False}),
    ),
    (
        {"smooth_nr": 1.0, "smooth_dr": 1.0, "squared_pred": True},
        ("dice_loss", {"smooth": 1.0, "squared": True}),
    ),
    # MONAI's jaccard=True with smooth s is our IoU loss with s / 2
    ({"smooth_nr": 1.0, "smooth_dr": 1.0, "jaccard": True}, ("iou_loss", {"smooth": 0.5})),
]


def _dice_case(c, batch, ours):
    name, kw = ours
    kw = dict(kw)
    if not kw.pop("background", True):
        kw["class_weights"] = np.r_[0.0, np.ones(c - 1)].astype(np.float32)
    axis = (0, 1, 2) if batch else None
    return getattr(jaxseg, name), {"axis": axis, **kw}


def _our_cases():
    """(loss, number of classes, data seed, keyword arguments) of every comparison below."""
    cases = {}
    for c in CLASSES:
        for batch in (False, True):
            axis = (0, 1, 2) if batch else None
            for k, (_, ours) in enumerate(DICE_OPTIONS):
                fn, kw = _dice_case(c, batch, ours)
                cases["dice", c, batch, k] = (fn, c, c, False, kw)
            for w_type in ("square", "simple", "uniform"):
                kw = {"weighting": w_type, "smooth": 1e-5, "axis": axis}
                cases["gdl", c, batch, w_type] = (
                    jaxseg.generalized_dice_loss,
                    c,
                    10 + c,
                    False,
                    kw,
                )
            kw = {"alpha": 0.3, "beta": 0.7, "smooth": 1.0, "axis": axis}
            cases["tversky", c, batch] = (jaxseg.tversky_loss, c, 20 + c, False, kw)
        for weighted in (False, True):
            w = np.linspace(0.5, 2.0, c).astype(np.float32) if weighted else None
            kw = {"gamma": 2.0, "class_weights": w, "axis": (0, 1, 2)}
            cases["focal", c, weighted] = (jaxseg.focal_loss, c, 30 + c, False, kw)
            for smoothing in (0.0, 0.1):
                for axis in ((0, 1, 2), ()):
                    kw = dict(
                        ignore_index=255, label_smoothing=smoothing, class_weights=w, axis=axis
                    )
                    cases["ce", c, smoothing, weighted, axis] = (
                        jaxseg.cross_entropy_loss,
                        c,
                        40 + c,
                        True,
                        kw,
                    )
    return cases


@pytest.fixture(scope="module")
def ours():
    """Every jaxseg value the tests compare, in one compilation."""
    cases = _our_cases()
    data = []
    for _, c, seed, ignore, _ in cases.values():
        logits, labels = _data(c, seed, ignore)
        data.append((logits, labels.astype(np.int32)))

    def run(data):
        pairs = zip(cases.values(), data, strict=True)
        return [fn(x, y, **case[-1]) for (fn, *case), (x, y) in pairs]

    return dict(zip(cases, _run_once(run, data), strict=True))


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("k", range(len(DICE_OPTIONS)), ids=[str(o[0]) for o in DICE_OPTIONS])
def test_monai_dice_loss(c, batch, k, ours):
    monai_kw = DICE_OPTIONS[k][0]
    logits, labels = _data(c, seed=c)
    x, y = _torch(logits, labels)
    monai_kw = dict(monai_kw)
    include_bg = monai_kw.pop("include_background", True)
    loss = monai_losses.DiceLoss(
        softmax=True,
        to_onehot_y=True,
        include_background=include_bg,
        batch=batch,
        reduction="none",
        **monai_kw,
    )
    per_class = loss(x, y).detach().numpy().astype(np.float64)
    want = per_class.reshape(-1).mean() if batch else per_class.reshape(2, -1).mean(-1)
    got = ours["dice", c, batch, k]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
def test_monai_generalized_dice_loss(c, batch, w_type, ours):
    logits, labels = _data(c, seed=10 + c)
    x, y = _torch(logits, labels)
    loss = monai_losses.GeneralizedDiceLoss(
        softmax=True,
        to_onehot_y=True,
        w_type=w_type,
        batch=batch,
        reduction="none",
        smooth_nr=1e-5,
        smooth_dr=1e-5,
    )
    want = loss(x, y).detach().numpy().astype(np.float64).reshape(-1)
    got = ours["gdl", c, batch, w_type]
    np.testing.assert_allclose(np.reshape(got, -1), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("batch", [False, True])
def test_monai_tversky_loss(c, batch, ours):
    logits, labels = _data(c, seed=20 + c)
    x, y = _torch(logits, labels)
    loss = monai_losses.TverskyLoss(
        softmax=True,
        to_onehot_y=True,
        alpha=0.3,
        beta=0.7,
        batch=batch,
        reduction="none",
        smooth_nr=1.0,
        smooth_dr=1.0,
    )
    per_class = loss(x, y).detach().numpy().astype(np.float64)
    want = per_class.reshape(-1).mean() if batch else per_class.reshape(2, -1).mean(-1)
    got = ours["tversky", c, batch]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_monai_focal_loss(c, weighted, ours):
    """MONAI averages over all N*C elements; we normalise by the weight of the valid pixels."""
    logits, labels = _data(c, seed=30 + c)
    x, y = _torch(logits, labels)
    w = np.linspace(0.5, 2.0, c).astype(np.float32) if weighted else None
    loss = monai_losses.FocalLoss(
        use_softmax=True,
        to_onehot_y=True,
        gamma=2.0,
        weight=None if w is None else w.tolist(),
        reduction="mean",
    )
    want = float(loss(x, y))
    got = ours["focal", c, weighted]
    pix_w = labels.size if w is None else w[labels].sum()
    np.testing.assert_allclose(float(got) * pix_w / (labels.size * c), want, rtol=1e-5)


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_torch_cross_entropy(c, smoothing, weighted, ours):
    logits, labels = _data(c, seed=40 + c, ignore=True)
    x, y = _torch(logits, labels)
    y = y[:, 0]
    w = np.linspace(0.5, 2.0, c).astype(np.float32) if weighted else None
    kw = {
        "weight": None if w is None else torch.from_numpy(w),
        "ignore_index": 255,
        "label_smoothing": smoothing,
    }
    F = torch.nn.functional
    mean = float(F.cross_entropy(x, y, reduction="mean", **kw))
    none = F.cross_entropy(x, y, reduction="none", **kw).numpy()
    pooled = ours["ce", c, smoothing, weighted, (0, 1, 2)]
    assert pooled.shape == ()
    np.testing.assert_allclose(float(pooled), mean, rtol=1e-5)
    np.testing.assert_allclose(ours["ce", c, smoothing, weighted, ()], none, rtol=1e-5, atol=1e-6)
