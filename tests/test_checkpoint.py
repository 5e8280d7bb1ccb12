"""Count states survive a mid-epoch checkpoint (orbax and plain NumPy) exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import _counts

C = 4
IGNORE = 255


def _batches(n=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        logits = rng.normal(size=(2, 5, 5, C)).astype(np.float32)
        labels = rng.integers(0, C, size=(2, 5, 5)).astype(np.int32)
        labels[rng.random(labels.shape) < 0.2] = IGNORE
        out.append((logits, labels))
    return out


def _reference(batches, offset=0):
    m = np.full((C, C), offset, np.int64)
    for logits, labels in batches:
        keep = labels != IGNORE
        np.add.at(m, (labels[keep], logits.argmax(-1)[keep]), 1)
    return m


@jax.jit
def _step(state, logits, labels):
    return state + jaxseg.ConfusionMatrix.from_logits(logits, labels, ignore_index=IGNORE)


def _start_state():
    """A state already past 2**32 per cell, so the round trip must keep all limbs."""
    big = (1 << 33) + 12345
    return jaxseg.ConfusionMatrix(
        counts=_counts.from_python_int(np.full((C, C), big, np.uint64)),
        invalid=_counts.zeros(()),
        num_classes=C,
    ), big


def _accumulate(state, batches):
    for b in batches:
        state = _step(state, *b)
    return state


def test_orbax_round_trip_mid_epoch(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    batches = _batches()
    state, big = _start_state()
    state = _accumulate(state, batches[:2])
    path = tmp_path / "step_2"
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, state)
        ckpt.wait_until_finished()
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        restored = ckpt.restore(path, target)
    assert type(restored) is jaxseg.ConfusionMatrix
    assert restored.num_classes == C
    np.testing.assert_array_equal(restored.to_numpy(), state.to_numpy())
    final = _accumulate(restored, batches[2:])
    np.testing.assert_array_equal(final.to_numpy(), _reference(batches, big))


def test_numpy_round_trip_mid_epoch(tmp_path):
    batches = _batches(seed=1)
    state, big = _start_state()
    state = _accumulate(state, batches[:2])
    # save: the leaves (uint32 limbs) under their field names
    path = tmp_path / "state.npz"
    np.savez(path, counts=np.asarray(state.counts), invalid=np.asarray(state.invalid))
    # load: into an empty state of the same configuration
    with np.load(path) as z:
        restored = jaxseg.ConfusionMatrix(
            counts=jnp.asarray(z["counts"]),
            invalid=jnp.asarray(z["invalid"]),
            num_classes=C,
        )
    final = _accumulate(restored, batches[2:])
    np.testing.assert_array_equal(final.to_numpy(), _reference(batches, big))
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        assert (got.dtype, got.shape) == (want.dtype, want.shape)


def test_flax_metric_round_trip(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    nnx = pytest.importorskip("flax.nnx")
    from jaxseg.flax import StateMetric

    Counts = jaxseg.ConfusionMatrix.configure(C, ignore_index=IGNORE)
    batches = _batches(seed=2)
    metric = StateMetric(Counts)
    for logits, labels in batches[:2]:
        metric.update(logits=logits, labels=labels)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "metric", nnx.state(metric))
        ckpt.wait_until_finished()
        fresh = StateMetric(Counts)
        restored = ckpt.restore(tmp_path / "metric", nnx.state(fresh))
    nnx.update(fresh, restored)
    for logits, labels in batches[2:]:
        fresh.update(logits=logits, labels=labels)
    np.testing.assert_array_equal(fresh.state.to_numpy(), _reference(batches))
