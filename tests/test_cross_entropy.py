"""Cross-entropy and focal losses against float64 loop references and optax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxseg
from tests import reference_losses as ref
from tests.test_losses import _cotangent, _data, _directional_check

CE_OPTS = [
    {},
    {"ignore_index": 255},
    {"ignore_index": (255, 2), "class_weights": [1.0, 2.0, 0.5, 3.0]},
    {"ignore_index": 255, "label_smoothing": 0.2},
    {"ignore_index": 255, "label_smoothing": 0.1, "class_weights": [1.0, 2.0, 0.5, 3.0]},
    {"ignore_index": 255, "axis": ()},
    {"ignore_index": 255, "axis": (), "class_weights": [1.0, 2.0, 0.5, 3.0]},
    {"ignore_index": 255, "axis": (0, 1, 2), "use_where": True},
    {"soft": True, "label_smoothing": 0.1, "class_weights": [1.0, 2.0, 0.5, 3.0]},
]
GAMMAS = [None, 0.0, 2.0]
CE_CASES = [(o, g) for g in GAMMAS for o in CE_OPTS]


def _ce_case(opts, gamma):
    """(loss, labels, keyword arguments) of one reference case."""
    if gamma is not None and "label_smoothing" in opts:
        opts = {k: val for k, val in opts.items() if k != "label_smoothing"}
    logits, labels, where = _data(4, seed=41)
    opts = dict(opts)
    if opts.pop("soft", False):
        _, labels, _ = _data(4, seed=41, soft=True)
    if opts.pop("use_where", False):
        opts["where"] = where
    if gamma is not None:
        opts["gamma"] = gamma
    fn = jaxseg.cross_entropy_loss if gamma is None else jaxseg.focal_loss
    return fn, logits, labels, opts


@pytest.fixture(scope="module")
def ce_results():
    """Every CE_CASES value, in one compilation."""
    cases = [_ce_case(o, g) for o, g in CE_CASES]
    logits = cases[0][1]

    @jax.jit
    def run(x):
        return [fn(x, labels, **kw) for fn, _, labels, kw in cases]

    return run(logits)


@pytest.mark.parametrize("i", range(len(CE_CASES)), ids=[f"{g}-{o}" for o, g in CE_CASES])
def test_cross_entropy_and_focal_against_reference(i, ce_results):
    _, logits, labels, kw = _ce_case(*CE_CASES[i])
    want = ref.cross_entropy_loss(logits, labels, **kw)
    assert ce_results[i].shape == np.shape(want)
    np.testing.assert_allclose(ce_results[i], want, rtol=1e-5, atol=1e-6)


def test_focal_gamma_zero_is_cross_entropy_exactly():
    logits, labels, _ = _data(5, seed=42)
    w = jnp.asarray([1.0, 2.0, 0.5, 3.0, 1.0])
    kw = {"ignore_index": 255, "class_weights": w}

    @jax.jit  # one compilation for the three poolings
    def run(x):
        return [
            (
                jaxseg.focal_loss(x, labels, gamma=0.0, axis=axis, **kw),
                jaxseg.cross_entropy_loss(x, labels, axis=axis, **kw),
            )
            for axis in (None, (), (0, 1, 2))
        ]

    for a, b in run(logits):
        np.testing.assert_array_equal(a, b)


def test_cross_entropy_matches_optax():
    logits, labels, _ = _data(5, seed=43, ignore_frac=0.0)

    @jax.jit  # one compilation
    def run(x):
        return (
            optax.softmax_cross_entropy_with_integer_labels(x, labels),
            jaxseg.cross_entropy_loss(x, labels, axis=()),
            jaxseg.cross_entropy_loss(x, labels),
        )

    want, got, mean = run(logits)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean, want.mean(axis=(1, 2)), rtol=1e-5)


SIGMOID_OPTS = [
    {"ignore_index": 255},
    {"ignore_index": 255, "alpha": 0.25, "class_weights": [1.0, 0.0, 2.0]},
    {"ignore_index": 255, "alpha": 0.75, "gamma": 0.5, "axis": ()},
    {"element_where": True, "gamma": 1.0, "axis": (0, 1, 2)},
    {"soft": True, "alpha": 0.25},
]


def _sigmoid_case(opts):
    logits, labels, _ = _data(3, seed=44, sigmoid=True)
    opts = dict(opts)
    if opts.pop("soft", False):
        labels = np.random.default_rng(4).random(labels.shape).astype(np.float32)
    if opts.pop("element_where", False):
        opts["where"] = labels != 255
        labels = np.where(labels == 255, 0, labels)
    return logits, labels, opts


@pytest.fixture(scope="module")
def sigmoid_results():
    """Every SIGMOID_OPTS value and the optax comparison's values, in one compilation."""
    cases = [_sigmoid_case(o) for o in SIGMOID_OPTS]
    logits = cases[0][0]
    ologits, olabels, _ = _data(3, seed=45, sigmoid=True, ignore_frac=0.0)

    @jax.jit
    def run(x, ox):
        ours = [jaxseg.sigmoid_focal_loss(x, labels, **kw) for _, labels, kw in cases]
        vs_optax = [
            (
                jaxseg.sigmoid_focal_loss(ox, olabels, alpha=a, gamma=2.0, axis=(0, 1, 2)),
                optax.sigmoid_focal_loss(ox, olabels.astype(np.float32), alpha=a, gamma=2.0),
            )
            for a in (None, 0.25)
        ]
        return ours, vs_optax

    return run(logits, ologits)


@pytest.mark.parametrize("i", range(len(SIGMOID_OPTS)), ids=[str(o) for o in SIGMOID_OPTS])
def test_sigmoid_focal_against_reference(i, sigmoid_results):
    logits, labels, opts = _sigmoid_case(SIGMOID_OPTS[i])
    want = ref.sigmoid_focal_loss(logits, labels, **opts)
    got = sigmoid_results[0][i]
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_sigmoid_focal_matches_optax(sigmoid_results):
    for got, want in sigmoid_results[1]:
        np.testing.assert_allclose(got, want.mean(), rtol=1e-5)


def test_pixelwise_gradients():
    # the three gradients in one compilation, not every eager op
    logits, labels, _ = _data(4, seed=46)
    slogits, slabels, _ = _data(3, seed=47, sigmoid=True)
    w = [1.0, 2.0, 0.5, 3.0]
    kw = {"ignore_index": 255, "class_weights": w}
    skw = {"alpha": 0.25, "ignore_index": 255}
    cases = [
        (
            lambda x: jaxseg.cross_entropy_loss(x, labels, label_smoothing=0.1, **kw),
            lambda x: ref.cross_entropy_loss(x, labels, label_smoothing=0.1, **kw),
            logits,
        ),
        (
            lambda x: jaxseg.focal_loss(x, labels, gamma=1.5, **kw),
            lambda x: ref.cross_entropy_loss(x, labels, gamma=1.5, **kw),
            logits,
        ),
        (
            lambda x: jaxseg.sigmoid_focal_loss(x, slabels, **skw),
            lambda x: ref.sigmoid_focal_loss(x, slabels, **skw),
            slogits,
        ),
    ]
    # the cotangents _directional_check draws (seed 1)
    cots = [jnp.asarray(_cotangent(r, x, 1)[1], jnp.float32) for _, r, x in cases]

    @jax.jit
    def run(xs, cots):
        return [
            jax.grad(lambda z, f=f, c=c: jnp.sum(f(z) * c))(x)
            for (f, _, _), x, c in zip(cases, xs, cots, strict=True)
        ]

    grads = run([x for _, _, x in cases], cots)
    for (f, r, x), g in zip(cases, grads, strict=True):
        _directional_check(f, r, x, grads=g)
