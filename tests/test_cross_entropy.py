"""Cross-entropy and focal losses against float64 loop references and optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxseg
from tests import reference_losses as ref
from tests.test_losses import _data, _directional_check


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"ignore_index": 255},
        {"ignore_index": (255, 2), "class_weights": [1.0, 2.0, 0.5, 3.0]},
        {"ignore_index": 255, "label_smoothing": 0.2},
        {"ignore_index": 255, "label_smoothing": 0.1, "class_weights": [1.0, 2.0, 0.5, 3.0]},
        {"ignore_index": 255, "axis": ()},
        {"ignore_index": 255, "axis": (), "class_weights": [1.0, 2.0, 0.5, 3.0]},
        {"ignore_index": 255, "axis": (0, 1, 2), "use_where": True},
        {"soft": True, "label_smoothing": 0.1, "class_weights": [1.0, 2.0, 0.5, 3.0]},
    ],
    ids=str,
)
@pytest.mark.parametrize("gamma", [None, 0.0, 2.0])
def test_cross_entropy_and_focal_against_reference(opts, gamma):
    if gamma is not None and "label_smoothing" in opts:
        opts = {k: val for k, val in opts.items() if k != "label_smoothing"}
    c = 4
    logits, labels, where = _data(c, seed=41)
    opts = dict(opts)
    if opts.pop("soft", False):
        _, labels, _ = _data(c, seed=41, soft=True)
    if opts.pop("use_where", False):
        opts["where"] = where
    if gamma is None:
        got = jaxseg.cross_entropy_loss(logits, labels, **opts)
        want = ref.cross_entropy_loss(logits, labels, **opts)
    else:
        got = jaxseg.focal_loss(logits, labels, gamma=gamma, **opts)
        want = ref.cross_entropy_loss(logits, labels, gamma=gamma, **opts)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_focal_gamma_zero_is_cross_entropy_exactly():
    logits, labels, _ = _data(5, seed=42)
    w = jnp.asarray([1.0, 2.0, 0.5, 3.0, 1.0])
    for axis in (None, (), (0, 1, 2)):
        a = jaxseg.focal_loss(
            logits, labels, gamma=0.0, ignore_index=255, class_weights=w, axis=axis
        )
        b = jaxseg.cross_entropy_loss(logits, labels, ignore_index=255, class_weights=w, axis=axis)
        np.testing.assert_array_equal(a, b)


def test_cross_entropy_matches_optax():
    logits, labels, _ = _data(5, seed=43, ignore_frac=0.0)
    want = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), labels)
    got = jaxseg.cross_entropy_loss(logits, labels, axis=())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        jaxseg.cross_entropy_loss(logits, labels), want.mean(axis=(1, 2)), rtol=1e-5
    )


@pytest.mark.parametrize(
    "opts",
    [
        {"ignore_index": 255},
        {"ignore_index": 255, "alpha": 0.25, "class_weights": [1.0, 0.0, 2.0]},
        {"ignore_index": 255, "alpha": 0.75, "gamma": 0.5, "axis": ()},
        {"element_where": True, "gamma": 1.0, "axis": (0, 1, 2)},
        {"soft": True, "alpha": 0.25},
    ],
    ids=str,
)
def test_sigmoid_focal_against_reference(opts):
    logits, labels, _ = _data(3, seed=44, sigmoid=True)
    opts = dict(opts)
    if opts.pop("soft", False):
        labels = np.random.default_rng(4).random(labels.shape).astype(np.float32)
    if opts.pop("element_where", False):
        opts["where"] = labels != 255
        labels = np.where(labels == 255, 0, labels)
    got = jaxseg.sigmoid_focal_loss(logits, labels, **opts)
    want = ref.sigmoid_focal_loss(logits, labels, **opts)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_sigmoid_focal_matches_optax():
    logits, labels, _ = _data(3, seed=45, sigmoid=True, ignore_frac=0.0)
    for alpha in (None, 0.25):
        want = optax.sigmoid_focal_loss(
            jnp.asarray(logits), labels.astype(np.float32), alpha=alpha, gamma=2.0
        )
        got = jaxseg.sigmoid_focal_loss(logits, labels, alpha=alpha, gamma=2.0, axis=(0, 1, 2))
        np.testing.assert_allclose(got, want.mean(), rtol=1e-5)


def test_pixelwise_gradients():
    # jitted losses: jax.grad compiles one forward and one backward program, not every eager op
    logits, labels, _ = _data(4, seed=46)
    w = [1.0, 2.0, 0.5, 3.0]
    kw = {"ignore_index": 255, "class_weights": w}
    _directional_check(
        jax.jit(lambda x: jaxseg.cross_entropy_loss(x, labels, label_smoothing=0.1, **kw)),
        lambda x: ref.cross_entropy_loss(x, labels, label_smoothing=0.1, **kw),
        logits,
    )
    _directional_check(
        jax.jit(lambda x: jaxseg.focal_loss(x, labels, gamma=1.5, **kw)),
        lambda x: ref.cross_entropy_loss(x, labels, gamma=1.5, **kw),
        logits,
    )
    logits, labels, _ = _data(3, seed=47, sigmoid=True)
    _directional_check(
        jax.jit(lambda x: jaxseg.sigmoid_focal_loss(x, labels, alpha=0.25, ignore_index=255)),
        lambda x: ref.sigmoid_focal_loss(x, labels, alpha=0.25, ignore_index=255),
        logits,
    )
