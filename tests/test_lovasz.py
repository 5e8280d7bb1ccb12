"""Lovász-Softmax and Lovász hinge against float64 loop references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from tests import reference_losses as ref
from tests.test_losses import _data, _directional_check

SOFTMAX_OPTS = [
    {},
    {"classes": "all"},
    {"ignore_index": 255},
    {"ignore_index": (255, 2), "classes": "all"},
    {"class_weights": [1.0, 0.0, 2.0, 1.0]},
    {"axis": (0, 1, 2), "ignore_index": 255},
    {"axis": 1, "ignore_index": 255, "classes": "all"},
    {"use_where": True, "ignore_index": 255},
    {"soft": True},
]
HINGE_OPTS = [
    {"ignore_index": 255},
    {"ignore_index": 255, "axis": (0, 1, 2), "class_weights": [2.0, 1.0, 0.0]},
    {"element_where": True},
    {"soft": True},
]


def _softmax_case(opts):
    logits, labels, where = _data(4, seed=31)
    labels[0][labels[0] == 3] = 0  # class 3 absent from image 0: "present" skips it
    opts = dict(opts)
    if opts.pop("soft", False):
        _, labels, _ = _data(4, seed=31, soft=True)
    if opts.pop("use_where", False):
        opts["where"] = where
    return logits, labels, opts


def _hinge_case(opts):
    logits, labels, _ = _data(3, seed=32, sigmoid=True)
    opts = dict(opts)
    if opts.pop("soft", False):
        labels = np.random.default_rng(3).random(labels.shape).astype(np.float32)
    if opts.pop("element_where", False):
        opts["where"] = labels != 255
        labels = np.where(labels == 255, 0, labels)
    return logits, labels, opts


@pytest.fixture(scope="module")
def reference_results():
    """Every SOFTMAX_OPTS and HINGE_OPTS value, in one compilation."""
    soft = [_softmax_case(o) for o in SOFTMAX_OPTS]
    hinge = [_hinge_case(o) for o in HINGE_OPTS]

    @jax.jit
    def run(x, xh):
        return (
            [jaxseg.lovasz_softmax_loss(x, y, **kw) for _, y, kw in soft],
            [jaxseg.lovasz_hinge_loss(xh, y, **kw) for _, y, kw in hinge],
        )

    return run(soft[0][0], hinge[0][0])


@pytest.mark.parametrize("i", range(len(SOFTMAX_OPTS)), ids=[str(o) for o in SOFTMAX_OPTS])
def test_lovasz_softmax_against_reference(i, reference_results):
    logits, labels, opts = _softmax_case(SOFTMAX_OPTS[i])
    got = reference_results[0][i]
    want = ref.lovasz_softmax_loss(logits, labels, **opts)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("i", range(len(HINGE_OPTS)), ids=[str(o) for o in HINGE_OPTS])
def test_lovasz_hinge_against_reference(i, reference_results):
    logits, labels, opts = _hinge_case(HINGE_OPTS[i])
    got = reference_results[1][i]
    want = ref.lovasz_hinge_loss(logits, labels, **opts)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lovasz_gradients():
    # jitted losses: jax.grad then compiles one forward and one backward program instead
    # of every eager op (the gradient is the same function's; eager is covered above)
    logits, labels, _ = _data(4, seed=33)
    kw = {"ignore_index": 255}
    _directional_check(
        jax.jit(lambda x: jaxseg.lovasz_softmax_loss(x, labels, **kw)),
        lambda x: ref.lovasz_softmax_loss(x, labels, **kw),
        logits,
    )
    logits, labels, _ = _data(2, seed=34, sigmoid=True)
    _directional_check(
        jax.jit(lambda x: jaxseg.lovasz_hinge_loss(x, labels, **kw)),
        lambda x: ref.lovasz_hinge_loss(x, labels, **kw),
        logits,
    )


def test_lovasz_known_values():
    # Berman et al.: on hard 0/1 errors the Lovász extension equals the Jaccard loss.
    # all in one jitted call: one compilation instead of every eager op at three shapes
    @jax.jit
    def known(logits, labels, x):
        cm = jaxseg.ConfusionMatrix.from_logits(logits[0], labels[0])
        return (
            jaxseg.lovasz_softmax_loss(logits, labels),
            1 - jaxseg.iou(cm),
            jaxseg.lovasz_hinge_loss(x, jnp.asarray([[[1], [0], [1]]])),
            jaxseg.lovasz_softmax_loss(x[..., :1] * 0, jnp.full((1, 3), 255), ignore_index=255),
        )

    labels = np.array([[0, 0, 1, 1]])
    logits = jnp.asarray(1e4 * np.eye(2, dtype=np.float32)[np.array([[0, 1, 1, 1]])])
    # hinge: a margin-1 perfect prediction has loss 0; no present class -> 0
    x = jnp.asarray([[[3.0], [-2.0], [1.5]]])
    softmax, jaccard, hinge, absent = known(logits, labels, x)
    np.testing.assert_allclose(softmax, jaccard, rtol=1e-6)
    assert float(hinge[0]) == 0.0
    assert float(absent[0]) == 0.0


def test_lovasz_is_jittable_with_static_shapes():
    logits, labels, _ = _data(3, seed=35)
    f = jax.jit(lambda x, y: jaxseg.lovasz_softmax_loss(x, y, ignore_index=255))
    np.testing.assert_allclose(
        f(logits, labels), ref.lovasz_softmax_loss(logits, labels, ignore_index=255), rtol=1e-5
    )


@pytest.mark.parametrize("hinge", [False, True], ids=["softmax", "hinge"])
@pytest.mark.parametrize(
    ("shape", "axis", "want"),
    [((0, 3, 4), None, (0,)), ((2, 0, 4), None, (2,)), ((0, 3, 4), (0, 1), ())],
    ids=["empty-batch", "empty-pixels", "empty-pooled"],
)
def test_lovasz_zero_size_inputs(hinge, shape, axis, want):
    logits = jnp.zeros(shape)
    if hinge:
        labels = jnp.zeros(shape, jnp.int32)
        loss = lambda x: jaxseg.lovasz_hinge_loss(x, labels, axis=axis)  # noqa: E731
    else:
        labels = jnp.zeros(shape[:-1], jnp.int32)
        loss = lambda x: jaxseg.lovasz_softmax_loss(x, labels, axis=axis)  # noqa: E731
    # the eager value, and the jitted value and gradient in one compilation (an eager
    # gradient traces the same operations as the jitted one, one compiled op at a time)
    jitted = jax.jit(lambda x: (loss(x), jax.grad(lambda z: jnp.sum(loss(z)))(x)))
    jit_out, grads = jitted(logits)
    for out in (loss(logits), jit_out):
        assert out.shape == want and out.dtype == jnp.float32
        np.testing.assert_array_equal(out, np.zeros(want))
    assert grads.shape == shape
    np.testing.assert_array_equal(grads, np.zeros(shape))
