"""Parity of the losses with the established peers: MONAI and torch (channels-first)."""

from __future__ import annotations

import numpy as np
import pytest

import jaxseg

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


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize(
    ("monai_kw", "ours"),
    [
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
    ],
    ids=str,
)
def test_monai_dice_loss(c, batch, monai_kw, ours):
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
    name, kw = ours
    kw = dict(kw)
    if not kw.pop("background", True):
        kw["class_weights"] = np.r_[0.0, np.ones(c - 1)].astype(np.float32)
    axis = (0, 1, 2) if batch else None
    got = getattr(jaxseg, name)(logits, labels.astype(np.int32), axis=axis, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
def test_monai_generalized_dice_loss(c, batch, w_type):
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
    axis = (0, 1, 2) if batch else None
    got = jaxseg.generalized_dice_loss(
        logits, labels.astype(np.int32), weighting=w_type, smooth=1e-5, axis=axis
    )
    np.testing.assert_allclose(np.reshape(got, -1), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("batch", [False, True])
def test_monai_tversky_loss(c, batch):
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
    axis = (0, 1, 2) if batch else None
    got = jaxseg.tversky_loss(
        logits, labels.astype(np.int32), alpha=0.3, beta=0.7, smooth=1.0, axis=axis
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_monai_focal_loss(c, weighted):
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
    got = jaxseg.focal_loss(
        logits, labels.astype(np.int32), gamma=2.0, class_weights=w, axis=(0, 1, 2)
    )
    pix_w = labels.size if w is None else w[labels].sum()
    np.testing.assert_allclose(float(got) * pix_w / (labels.size * c), want, rtol=1e-5)


@pytest.mark.parametrize("c", CLASSES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_torch_cross_entropy(c, smoothing, weighted):
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
    ours = dict(ignore_index=255, label_smoothing=smoothing, class_weights=w)
    lab = labels.astype(np.int32)
    np.testing.assert_allclose(
        float(jaxseg.cross_entropy_loss(logits, lab, axis=(0, 1, 2), **ours)), mean, rtol=1e-5
    )
    np.testing.assert_allclose(
        jaxseg.cross_entropy_loss(logits, lab, axis=(), **ours), none, rtol=1e-5, atol=1e-6
    )
