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


def test_wide_unsigned_labels_reported_with_their_values():
    preds = jnp.zeros(3, jnp.int32)
    labels = np.array([0, 2**31 + 5, 2**32 - 1], np.uint32)
    update = jaxseg.checked(lambda p, y: ConfusionMatrix.from_predictions(p, y, num_classes=3))
    with pytest.raises(ValueError, match=r"range over \[2147483653, 4294967295\]"):
        update(preds, labels)
    small = np.array([0, 200, 255], np.uint8)
    with pytest.raises(ValueError, match=r"range over \[200, 255\]"):
        update(preds, small)


# -- counts past the documented limits ---------------------------------------------

NEAR_LIMIT = 2**48 - 10


def _big_state(value=NEAR_LIMIT):
    counts = jaxseg._counts.from_python_int([[value, 1], [2, 3]])
    return ConfusionMatrix(counts=counts, invalid=jaxseg._counts.zeros(()), num_classes=2)


@pytest.mark.parametrize(
    "combine",
    [
        lambda s: s.merge(s),
        lambda s: s + s,
        lambda s: jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), s, s).reduce(),
        lambda s: jax.vmap(lambda t: t.psum("i"), axis_name="i")(
            jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), s)
        ),
    ],
    ids=["merge", "add", "reduce", "psum"],
)
def test_count_past_2_48_raises_under_checked(combine):
    s = _big_state()
    with pytest.raises(ValueError, match=r"a count reached 2\*\*48"):
        jaxseg.checked(jax.jit(combine))(s)
    # unchecked: nothing raises, and the sum is still exact in the limbs
    got = combine(s).to_numpy().reshape(-1, 2, 2)[0]
    assert got.tolist() == [[2 * NEAR_LIMIT, 2], [4, 6]]
    # below the limit the checked combine passes
    ok = jaxseg.checked(jax.jit(combine))(_big_state(2**47 - 1))
    assert ok.to_numpy().reshape(-1, 2, 2)[0, 0, 0] == 2**48 - 2


def test_overflow_checks_trace_nothing_when_off():
    s = _big_state()
    for fn in (lambda a: a + a, lambda a: jax.vmap(lambda t: t.psum("i"), axis_name="i")(a)):
        arg = (
            s
            if "vmap" not in str(fn.__code__.co_names)
            else jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), s)
        )
        assert "check" not in str(jax.make_jaxpr(fn)(arg))


def test_psum_over_more_members_than_exact_sums_allow():
    s = ConfusionMatrix.empty(1)
    n = jaxseg._counts.MAX_SUMMANDS + 1
    stacked = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), s)
    with pytest.raises(ValueError, match=r"`psum` over 65537 members; counts are exact"):
        jax.vmap(lambda t: t.psum("i"), axis_name="i")(stacked)
    two = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (2, *x.shape)), _big_state(5))
    out = jaxseg.checked(jax.vmap(lambda t: t.psum("i"), axis_name="i"))(two)
    assert out.to_numpy()[0].tolist() == [[10, 2], [4, 6]]


def test_first_jit_through_jaxseg_compiles_once():
    """Checked mode's flag is a JAX user context, which adds a value to every jit cache
    key when it is created. Created inside a user's first trace (jaxseg's modules load
    on first use), that function and every one compiled before missed their cache and
    compiled twice; ``import jaxseg`` after ``import jax`` now creates it at once."""
    import subprocess
    import sys

    code = (
        "import jax, jax.numpy as jnp\n"
        "import jaxseg\n"
        "g = jax.jit(lambda x: x + 1)\n"
        "f = jax.jit(lambda x, y: jaxseg.dice_loss(x, y))\n"
        "x, y = jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4), jnp.int32)\n"
        "g(x); f(x, y); f(x, y); g(x)\n"
        "print(f._cache_size(), g._cache_size())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"], out.stdout
