"""The opt-in checked mode: out-of-range labels and NaN logits raise."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import BinaryStats, ConfusionMatrix, SoftStats


def _update(logits, labels, where=None):
    return ConfusionMatrix.from_logits(logits, labels, ignore_index=(255, -1), where=where)


LOGITS = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 3)), jnp.float32)
GOOD = jnp.array([[0, 1, 2, 255], [-1, 0, 1, 2]])
BAD = jnp.array([[0, 1, 7, 255], [-1, 0, 1, -4]])


@pytest.mark.parametrize("wrap", ["jit", "jit-inside", "vmap"])
def test_bad_label_raises_clean_input_passes(wrap):
    if wrap == "plain":
        fn = _update
    elif wrap == "jit":
        fn = jax.jit(_update)
    elif wrap == "jit-inside":
        fn = lambda x, y: jax.jit(_update)(x, y) + ConfusionMatrix.empty(3)  # noqa: E731
    else:
        fn = jax.vmap(_update)
    checked = jaxseg.checked(fn)
    np.testing.assert_array_equal(checked(LOGITS, GOOD).to_numpy(), fn(LOGITS, GOOD).to_numpy())
    with (
        pytest.raises(
            ValueError, match=r"2 label\(s\) outside the class range \[0, 3\).*range over \[-4, 7\]"
        )
        if wrap != "vmap"
        else pytest.raises(ValueError, match=r"outside the class range \[0, 3\)")
    ):
        checked(LOGITS, BAD)


def test_masked_out_bad_labels_pass():
    where = (BAD != 7) & (BAD != -4)
    state = jaxseg.checked(jax.jit(_update))(LOGITS, BAD, where)
    assert state.to_numpy().sum() == 4 and float(state.num_invalid) == 0


def test_nan_logits_raise():
    nan_logits = LOGITS.at[0, 1, 2].set(jnp.nan)
    for fn in (
        lambda x: ConfusionMatrix.from_logits(x, GOOD, ignore_index=(255, -1)),
        lambda x: SoftStats.from_logits(x, GOOD, ignore_index=(255, -1)),
        lambda x: BinaryStats.from_logits(x, jnp.zeros(x.shape, jnp.int32)),
    ):
        with pytest.raises(ValueError, match=r"`logits` of shape \(2, 4, 3\) contains 1 NaN"):
            jaxseg.checked(jax.jit(fn))(nan_logits)
    with pytest.raises(ValueError, match=r"`probs` .* contains 1 NaN"):
        jaxseg.checked(SoftStats.from_probabilities)(nan_logits, GOOD, ignore_index=(255, -1))


def test_binary_labels_checked():
    labels = jnp.ones((2, 4, 3), jnp.int32).at[1, 1, 1].set(2)
    with pytest.raises(ValueError, match=r"outside the class range \[0, 2\).*\[2, 2\]"):
        jaxseg.checked(BinaryStats.from_logits)(LOGITS, labels)


def test_unchecked_calls_unaffected_and_caches_separate():
    traces = []

    @jax.jit
    def update(logits, labels):
        traces.append(1)
        return _update(logits, labels)

    plain = update(LOGITS, BAD)  # counted as invalid, no error
    assert float(plain.num_invalid) == 2
    assert "check" not in str(jax.make_jaxpr(_update)(LOGITS, BAD))
    with pytest.raises(ValueError, match="outside the class range"):
        jaxseg.checked(update)(LOGITS, BAD)
    # the checked trace is not reused outside, nor the plain one inside
    assert float(update(LOGITS, BAD).num_invalid) == 2
    with pytest.raises(ValueError, match="outside the class range"):
        jaxseg.checked(update)(LOGITS, BAD)
    assert len(traces) == 2
