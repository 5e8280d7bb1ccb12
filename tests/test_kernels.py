"""Every counting-kernel path against slow NumPy references, forced on any backend."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxseg
from jaxseg import _kernels
from tests.reference import confusion as ref_counts

ARGMAX_PATHS = [m for m in _kernels.ARGMAX_METHODS if m] + [None]
COUNT_PATHS = [m for m in _kernels.COUNT_METHODS if m] + [None]


def ref_argmax(x: np.ndarray) -> np.ndarray:
    """First maximal index per row; a NaN beats any number; first NaN wins."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    out = np.zeros(flat.shape[0], np.int64)
    for i, row in enumerate(flat):
        best = 0
        for c in range(1, len(row)):
            if np.isnan(row[best]):
                break
            if np.isnan(row[c]) or row[c] > row[best]:
                best = c
        out[i] = best
    return out.reshape(x.shape[:-1])


def tie_logits(rng, shape, c, nan_rate=0.05, dtype=np.float32):
    """Small integer logits (many ties), some NaNs and infinities."""
    x = rng.integers(-2, 3, size=(*shape, c)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = -np.inf
    x[rng.random(x.shape) < 0.02] = np.inf
    x[rng.random(x.shape) < nan_rate] = np.nan
    return x


@pytest.mark.parametrize("method", ARGMAX_PATHS)
@pytest.mark.parametrize("c", [1, 2, 3, 19, 40])
def test_argmax_paths_match_reference(method, c):
    rng = np.random.default_rng(c)
    x = tie_logits(rng, (3, 17), c)
    got = jax.jit(lambda a: _kernels.argmax_classes(a, method=method))(jnp.asarray(x))
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(got), ref_argmax(x))
    # and the semantics are exactly those of jnp.argmax / np.argmax
    np.testing.assert_array_equal(np.asarray(got), np.argmax(x, -1))


@pytest.mark.parametrize("method", ARGMAX_PATHS)
def test_argmax_special_rows(method):
    nan, inf = np.nan, np.inf
    x = np.array(
        [
            [1.0, 3.0, 3.0, 0.0],  # tie: first
            [-inf, -inf, -inf, -inf],  # all -inf: class 0
            [nan, 5.0, nan, 1.0],  # NaN first
            [1.0, nan, 9.0, nan],  # first NaN wins over larger numbers
            [nan, nan, nan, nan],
            [0.0, -0.0, 0.0, 0.0],  # signed zeros compare equal
            [-inf, inf, inf, 2.0],
        ],
        np.float32,
    )
    got = jax.jit(lambda a: _kernels.argmax_classes(a, method=method))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(got), [1, 0, 0, 1, 0, 0, 1])


@pytest.mark.parametrize("method", ARGMAX_PATHS)
def test_argmax_bfloat16(method):
    rng = np.random.default_rng(0)
    x = tie_logits(rng, (4, 9), 7)
    xb = jnp.asarray(x, jnp.bfloat16)
    got = jax.jit(lambda a: _kernels.argmax_classes(a, method=method))(xb)
    np.testing.assert_array_equal(np.asarray(got), ref_argmax(np.asarray(xb, np.float32)))


@pytest.mark.parametrize("width", [2, 3, 16])
@pytest.mark.parametrize("c", [17, 40, 100])
def test_blocked_argmax_any_width_and_leftover(width, c):
    """Ties across lanes and leftover classes go to the lowest class, NaN first."""
    rng = np.random.default_rng(c * width)
    x = tie_logits(rng, (5, 9), c, nan_rate=0.003)
    got = jax.jit(lambda a: _kernels._argmax_blocked(a, width))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(got), ref_argmax(x))


@pytest.mark.parametrize("method", ["reduce", "blocked", None])
def test_argmax_at_1000_classes(method):
    """The large-C paths (LVIS / ADE20K-full class counts) on a tiny image."""
    rng = np.random.default_rng(1000)
    x = tie_logits(rng, (1, 4, 4), 1000, nan_rate=0.0005)
    x[0, 0, 0] = -np.inf  # all -inf: class 0
    x[0, 0, 1, :] = 2.0  # a tie over every class: class 0
    got = jax.jit(lambda a: _kernels.argmax_classes(a, method=method))(jnp.asarray(x))
    np.testing.assert_array_equal(np.asarray(got), ref_argmax(x))
    np.testing.assert_array_equal(np.asarray(got), np.argmax(x, -1))


def test_cpu_argmax_method_by_class_count():
    """A pure function of C: the networks for few classes, the blocked one for many,
    whose graph stays small (compile time does not follow C)."""
    pick = _kernels.cpu_argmax_method
    assert [pick(c) for c in (1, 2, _kernels.TREE_MAX_CLASSES)] == ["tree"] * 3
    assert pick(_kernels.TREE_MAX_CLASSES + 1) == pick(19) == "chain"
    assert pick(_kernels.CHAIN_MAX_CLASSES) == "chain"
    assert pick(_kernels.CHAIN_MAX_CLASSES + 1) == pick(150) == "tree"
    big = (_kernels.UNROLLED_MAX_CLASSES + 1, 300, 1000, 4096)
    assert [pick(c) for c in big] == ["blocked"] * 4
    spec = jax.ShapeDtypeStruct((1, 4, 4, 1000), jnp.float32)
    blocked = jax.make_jaxpr(_kernels._argmax_cpu)(spec)
    chain = jax.make_jaxpr(_kernels._argmax_chain)(spec)
    assert len(blocked.eqns) < len(chain.eqns) / 5, (len(blocked.eqns), len(chain.eqns))


def test_from_logits_at_1000_classes():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1, 4, 4, 1000)).astype(np.float32)
    labels = rng.integers(0, 1000, size=(1, 4, 4)).astype(np.int32)
    labels[0, 0, :2] = 255
    state = jax.jit(lambda a, b: jaxseg.ConfusionMatrix.from_logits(a, b, ignore_index=255))(
        x, labels
    )
    ref = ref_counts(np.argmax(x, -1), labels, 1000, (255,))[0]
    np.testing.assert_array_equal(state.to_numpy(), ref)


@pytest.mark.parametrize("method", COUNT_PATHS)
@pytest.mark.parametrize("use_where", [False, True])
def test_count_paths_match_reference(method, use_where):
    rng = np.random.default_rng(1)
    c = 5
    shape = (3, 11, 7)
    labels = rng.integers(-2, c + 2, size=shape).astype(np.int32)
    labels[rng.random(shape) < 0.1] = 255
    preds = rng.integers(-1, c + 1, size=shape).astype(np.int32)
    where = rng.random(shape) < 0.8 if use_where else None
    ignore = (-2, 255)

    @jax.jit
    def f(p, lab, w):
        return _kernels.confusion_counts(
            p, lab, num_classes=c, ignore_index=ignore, where=w, method=method
        )

    counts, void, invalid = f(preds, labels, None if where is None else jnp.asarray(where))
    ref, ref_void, ref_invalid = ref_counts(preds, labels, c, ignore, where, with_void=True)
    assert counts.dtype == jnp.int32
    assert ref_void.sum() > 0  # the case exercises void predictions
    np.testing.assert_array_equal(np.asarray(counts), ref)
    np.testing.assert_array_equal(np.asarray(void), ref_void)
    assert int(invalid) == ref_invalid


def test_matmul_blocks_and_padding(monkeypatch):
    monkeypatch.setattr(_kernels, "MATMUL_BLOCK", 16)
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=(101,)).astype(np.int32)  # 7 blocks, padded
    preds = rng.integers(0, 4, size=(101,)).astype(np.int32)
    counts, _, _ = _kernels.confusion_counts(
        preds, labels, num_classes=4, ignore_index=(), where=None, method="matmul"
    )
    np.testing.assert_array_equal(np.asarray(counts), ref_counts(preds, labels, 4)[0])


@pytest.mark.parametrize("argmax", ARGMAX_PATHS)
@pytest.mark.parametrize("count", COUNT_PATHS)
def test_paths_compose_under_vmap(argmax, count):
    rng = np.random.default_rng(3)
    x = tie_logits(rng, (2, 6, 5), 4, nan_rate=0.0)
    labels = rng.integers(0, 5, size=(2, 6, 5)).astype(np.int32)

    def one(a, lab):
        p = _kernels.argmax_classes(a, method=argmax)
        return _kernels.confusion_counts(
            p, lab, num_classes=4, ignore_index=(4,), where=None, method=count
        )[0]

    got = jax.jit(jax.vmap(one))(jnp.asarray(x), jnp.asarray(labels))
    for i in range(2):
        ref = ref_counts(ref_argmax(x[i]), labels[i], 4, (4,))[0]
        np.testing.assert_array_equal(np.asarray(got[i]), ref)


def test_from_logits_uses_fast_path_and_matches():
    rng = np.random.default_rng(4)
    x = tie_logits(rng, (2, 8, 8), 6)
    labels = rng.integers(0, 6, size=(2, 8, 8)).astype(np.int32)
    state = jax.jit(lambda a, b: jaxseg.ConfusionMatrix.from_logits(a, b))(x, labels)
    np.testing.assert_array_equal(state.to_numpy(), ref_counts(ref_argmax(x), labels, 6)[0])


def test_unknown_method_is_rejected():
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"`method`.*'fast'"):
        _kernels.argmax_classes(x, method="fast")
    with pytest.raises(ValueError, match=r"`method`.*'bincount'"):
        _kernels.confusion_counts(
            jnp.zeros(2, jnp.int32),
            jnp.zeros(2, jnp.int32),
            num_classes=2,
            ignore_index=(),
            where=None,
            method="bincount",
        )


def test_w1_update_has_no_pixel_by_class_temporaries():
    """Compiled (not run) at the full W1 shape: extra memory stays below 64 MiB."""
    logits = jax.ShapeDtypeStruct((8, 512, 512, 19), jnp.float32)
    labels = jax.ShapeDtypeStruct((8, 512, 512), jnp.int32)
    compiled = (
        jax.jit(lambda a, b: jaxseg.ConfusionMatrix.from_logits(a, b, ignore_index=255))
        .lower(logits, labels)
        .compile()
    )
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp <= 64 * 2**20, temp / 2**20


PROPERTY_N = 40


@settings(max_examples=15, deadline=None)
@given(
    c=st.integers(1, 9),
    n=st.integers(1, PROPERTY_N),
    seed=st.integers(0, 2**16),
    method=st.sampled_from(ARGMAX_PATHS),
    count=st.sampled_from(COUNT_PATHS),
)
def test_property_update_matches_reference(c, n, seed, method, count):
    # One shape for every example (n pixels padded to 40 with ignored labels), so the
    # eager ops compile once per class count, not once per (n, c): the padding must not count.
    rng = np.random.default_rng(seed)
    x = tie_logits(rng, (PROPERTY_N,), c)
    labels = rng.integers(-1, c + 1, size=(PROPERTY_N,)).astype(np.int32)
    labels[n:] = -1
    p = _kernels.argmax_classes(jnp.asarray(x), method=method)
    counts, _, invalid = _kernels.confusion_counts(
        p, jnp.asarray(labels), num_classes=c, ignore_index=(-1,), where=None, method=count
    )
    ref, ref_invalid = ref_counts(ref_argmax(x[:n]), labels[:n], c, (-1,))
    np.testing.assert_array_equal(np.asarray(counts), ref)
    assert int(invalid) == ref_invalid
