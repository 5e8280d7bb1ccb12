"""Exact wide counts: limb arithmetic and states pushed past 2**32 and 2**40 per cell."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import ConfusionMatrix, _counts


def _value(limbs) -> list[int]:
    """Python ints from limbs, independent of ``to_int64_numpy``."""
    arr = np.asarray(limbs).reshape(-1, 3)
    return [int(a) + (int(b) << 16) + (int(c) << 32) for a, b, c in arr]


def test_from_python_int_round_trip():
    values = [0, 1, 65535, 65536, 2**31 + 5, 2**32 - 1, 2**32, 2**40 + 12345, 2**48 - 1, 2**50 + 3]
    limbs = _counts.from_python_int(values)
    assert limbs.dtype == jnp.uint32 and limbs.shape == (len(values), 3)
    assert _value(limbs) == values
    assert _counts.to_int64_numpy(limbs).tolist() == values
    # normal form: the two low limbs are below 2**16
    assert np.all(np.asarray(limbs)[:, :2] < 2**16)


def test_from_int_splits_int32():
    x = jnp.array([0, 1, 65536, 2**31 - 1], jnp.int32)
    assert _value(_counts.from_int(x)) == [0, 1, 65536, 2**31 - 1]


def test_normalize_moves_carries():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 2**31, size=(50, 3)).astype(np.uint32)
    raw[:, 2] = rng.integers(0, 2**15, size=50)
    out = _counts.normalize(jnp.asarray(raw))
    assert _value(out) == _value(raw)
    assert np.all(np.asarray(out)[:, :2] < 2**16)


def test_normalize_signed_after_exact_subtraction():
    rng = np.random.default_rng(1)
    a = [int(x) for x in rng.integers(2**33, 2**47, size=40)]
    b = [int(x) for x in rng.integers(0, 2**33, size=40)]
    la = np.asarray(_counts.from_python_int(a)).astype(np.int32)
    lb = np.asarray(_counts.from_python_int(b)).astype(np.int32)
    out = _counts.normalize_signed(jnp.asarray(la - lb))  # limbs may be negative
    assert out.dtype == jnp.uint32
    assert _value(out) == [x - y for x, y in zip(a, b, strict=True)]
    assert np.all(np.asarray(out)[:, :2] < 2**16)


def test_sum_limbs_over_more_than_65536_summands():
    n = _counts.MAX_SUMMANDS + 4465  # 70,001 summands
    one = _counts.from_python_int([2**32 - 1, 65535])  # largest normal-form low limbs
    stacked = jnp.broadcast_to(one, (n, 2, 3))
    naive = np.asarray(jnp.sum(stacked, axis=0, dtype=jnp.uint32))
    total = _counts.sum_limbs(stacked, 0)
    assert _value(total) == [n * (2**32 - 1), n * 65535]
    assert _value(naive) != [n * (2**32 - 1), n * 65535]  # a plain uint32 sum wraps
    # several axes at once
    grid = jnp.broadcast_to(one, (300, 250, 2, 3))
    assert _value(_counts.sum_limbs(grid, (0, 1))) == [75000 * (2**32 - 1), 75000 * 65535]


def test_to_float_exact_below_2_24_and_close_above():
    values = [0, 1, 2**24 - 1, 2**24, 3 * 2**40]
    f = _counts.to_float(_counts.from_python_int(values))
    assert f.dtype == jnp.float32
    assert np.asarray(f).tolist() == [float(v) for v in values]
    big = [2**40 + 12345]
    np.testing.assert_allclose(_counts.to_float(_counts.from_python_int(big)), big, rtol=1e-7)


def _small_state():
    labels = jnp.array([0, 0, 1, 2, 2, 2, 255])
    preds = jnp.array([0, 1, 1, 2, 0, 2, 1])
    return ConfusionMatrix.from_predictions(preds, labels, num_classes=3, ignore_index=255)


@pytest.mark.parametrize("doublings", [33, 41])
def test_merge_doubling_past_2_32_and_2_40(doublings):
    s = _small_state()
    base = s.to_numpy()
    merge = jax.jit(lambda a: a + a)
    for _ in range(doublings):
        s = merge(s)
    want = [[int(x) << doublings for x in row] for row in base.tolist()]
    assert s.to_numpy().tolist() == want
    assert max(max(r) for r in want) >= 2**doublings
    # statistics stay exact: these values are exactly representable in float32
    tp = [want[k][k] for k in range(3)]
    fp = [sum(want[r][k] for r in range(3)) - want[k][k] for k in range(3)]
    fn = [sum(want[k]) - want[k][k] for k in range(3)]
    total = sum(map(sum, want))
    tn = [total - tp[k] - fp[k] - fn[k] for k in range(3)]
    for name, w in zip(("tp", "fp", "fn", "tn"), (tp, fp, fn, tn), strict=True):
        assert np.asarray(getattr(s, name)).tolist() == [float(x) for x in w], name


def test_sum_of_stacked_states_and_vmap_reduce_are_exact():
    s = _small_state()
    for _ in range(38):
        s = s + s  # every nonzero cell >= 2**38
    n = 900
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), s)
    want = [[int(x) * n for x in row] for row in s.to_numpy().tolist()]
    assert max(max(r) for r in want) > 2**47
    assert stacked.reduce().to_numpy().tolist() == want
    # a plain jnp.sum over the stacked limbs then normalize (what psum does)
    summed = _counts.normalize(jnp.sum(stacked.counts, axis=0, dtype=jnp.uint32))
    assert _counts.to_int64_numpy(summed).tolist() == want
    # vmap produces per-example states; reduce folds them exactly
    per = jax.vmap(lambda i: s + ConfusionMatrix.empty(3, ignore_index=255))(jnp.arange(n))
    assert per.batch_shape == (n,)
    assert per.reduce().to_numpy().tolist() == want


def test_tn_exact_when_totals_are_large():
    m = [[2**40, 0], [0, 1]]
    s = ConfusionMatrix(
        counts=_counts.from_python_int(m),
        invalid=_counts.zeros(()),
        num_classes=2,
    )
    # float32 arithmetic on the totals would give tn_0 = (2**40 + 1) - 2**40 = 0
    assert np.asarray(s.tn).tolist() == [1.0, float(2**40)]
    assert np.asarray(s.tp).tolist() == [float(2**40), 1.0]


def test_single_call_counts_are_int32_exact():
    # one call counts in int32: a large uniform map is exact
    labels = jnp.zeros((4, 1024, 1024), jnp.int32)
    cm = jax.jit(lambda y: ConfusionMatrix.from_predictions(y, y, num_classes=2))(labels)
    assert cm.to_numpy().tolist() == [[4 * 2**20, 0], [0, 0]]
