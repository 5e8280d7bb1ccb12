"""jaxseg.flax.StateMetric: one NNX adapter for every state (docs/flax.md runs in test_docs)."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

nnx = pytest.importorskip("flax.nnx")
optax = pytest.importorskip("optax")

import jaxseg  # noqa: E402
from jaxseg.flax import StateMetric  # noqa: E402

C = 3
IGNORE = 255


def _reference(batches):
    m = np.zeros((C, C), np.int64)
    for logits, labels, where in batches:
        preds = np.asarray(logits).argmax(-1)
        keep = np.broadcast_to(where, labels.shape) & (labels != IGNORE)
        np.add.at(m, (labels[keep], preds[keep]), 1)
    return m


def _soft_reference(batches):
    """float64 sums of softmax probabilities against one-hot labels, per class."""
    tp = np.zeros(C)
    total = np.zeros(C)
    support = np.zeros(C)
    for logits, labels, where in batches:
        x = np.asarray(logits, np.float64)
        p = np.exp(x - x.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        keep = np.broadcast_to(where, labels.shape) & (labels != IGNORE)
        y = np.eye(C)[np.where(keep, labels, 0)] * keep[..., None]
        p = p * keep[..., None]
        tp += (p * y).reshape(-1, C).sum(0)
        total += p.reshape(-1, C).sum(0)
        support += y.reshape(-1, C).sum(0)
    return tp, total - tp, support - tp


def _batches(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        images = rng.normal(size=(2, 6, 5, 1)).astype(np.float32)
        labels = rng.integers(0, C, size=(2, 6, 5)).astype(np.int32)
        labels[rng.random(labels.shape) < 0.2] = IGNORE
        out.append((images, labels, rng.random(labels.shape) < 0.7))
    return out


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, C, kernel_size=(3, 3), rngs=rngs)

    def __call__(self, x):
        return self.conv(x)


def test_two_states_in_a_jitted_training_step():
    model = _Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    counts = StateMetric(jaxseg.ConfusionMatrix.configure(C, ignore_index=IGNORE))
    soft = StateMetric(jaxseg.SoftStats.empty(C, ignore_index=IGNORE))
    traces = []

    @nnx.jit
    def train_step(model, optimizer, counts, soft, images, labels, where):
        traces.append(1)

        def loss_fn(model):
            logits = model(images)
            loss = jaxseg.cross_entropy_loss(logits, labels, ignore_index=IGNORE, where=where)
            return jnp.mean(loss), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        counts.update(logits=logits, labels=labels, mask=where, loss=loss)
        soft.update(logits=logits, labels=labels, mask=where)
        return logits

    batches = _batches()
    seen = []
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int and float
        for images, labels, where in batches:
            logits = train_step(model, optimizer, counts, soft, images, labels, where)
            seen.append((np.asarray(logits), labels, where))
    assert len(traces) == 1
    ref = _reference(seen)
    np.testing.assert_array_equal(counts.state.to_numpy(), ref)
    tp = np.diag(ref).astype(np.float64)
    ious = tp / (ref.sum(0) + ref.sum(1) - tp)
    np.testing.assert_allclose(counts.compute(), ious.mean(), rtol=1e-6)
    stp, sfp, sfn = _soft_reference(seen)
    np.testing.assert_allclose(soft.state.tp, stp, rtol=1e-5)
    np.testing.assert_allclose(soft.state.fp, sfp, rtol=1e-5)
    np.testing.assert_allclose(soft.state.fn, sfn, rtol=1e-5)
    np.testing.assert_allclose(soft.compute(), np.mean(stp / (stp + sfp + sfn)), rtol=1e-5)
    counts.reset()
    soft.reset()
    assert counts.state.to_numpy().sum() == 0 and float(soft.state.tp.sum()) == 0
    with jax.numpy_dtype_promotion("standard"):
        train_step(model, optimizer, counts, soft, *batches[0])
    assert len(traces) == 1  # reset keeps shapes and dtypes: no retrace


def test_multimetric_distances_and_custom_compute():
    rng = np.random.default_rng(1)
    metrics = nnx.MultiMetric(
        boundary=StateMetric(
            jaxseg.BoundaryStats.configure(C),
            compute=lambda s: jaxseg.dice(s, average=None),
        ),
        hd=StateMetric(jaxseg.DistanceStats.empty(C)),
    )
    values = rng.uniform(0, 5, (4, C)).astype(np.float32)
    values[0, 1] = np.inf
    logits = rng.normal(size=(2, 8, 8, C)).astype(np.float32)
    labels = rng.integers(0, C, (2, 8, 8)).astype(np.int32)
    for i in range(2):
        metrics.update(logits=logits, labels=labels, values=values[2 * i : 2 * i + 2])
    out = metrics.compute()
    finite = np.where(np.isfinite(values), values, 0).astype(np.float64)
    np.testing.assert_allclose(out["hd"], finite.sum(0) / np.isfinite(values).sum(0), rtol=1e-6)
    want = jaxseg.BoundaryStats.from_logits(logits, labels)
    np.testing.assert_array_equal(metrics.boundary.state.to_numpy(), 2 * want.to_numpy())
    np.testing.assert_allclose(out["boundary"], jaxseg.dice(want + want, average=None))


def test_merge_state_and_bad_input():
    _, labels, where = _batches(1, seed=4)[0]
    logits = np.random.default_rng(4).normal(size=(*labels.shape, C)).astype(np.float32)
    metric = StateMetric(jaxseg.ConfusionMatrix.configure(C, ignore_index=IGNORE))
    state = jaxseg.ConfusionMatrix.from_logits(logits, labels, ignore_index=IGNORE, where=where)
    metric.merge_state(state)
    metric.merge_state(state)
    np.testing.assert_array_equal(
        metric.state.to_numpy(), 2 * _reference([(logits, labels, where)])
    )
    with pytest.raises(ValueError, match=r"`logits` must have 3 classes.*\(2, 4\)"):
        metric.update(logits=jnp.zeros((2, 4)), labels=jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="different `num_classes`: 3 and 4"):
        metric.merge_state(jaxseg.ConfusionMatrix.empty(4, ignore_index=IGNORE))
    with pytest.raises(TypeError, match=r"`state` must be a jaxseg state class"):
        StateMetric(3)
    with pytest.raises(TypeError, match=r"`state` must be a jaxseg state class"):
        StateMetric(jaxseg.iou)


def test_flax_not_imported_by_jaxseg():
    code = "import sys, jaxseg; print('flax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
