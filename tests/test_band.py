"""The boundary band by doubling passes equals the running min / max window it replaced:
a pixel is in the band iff the min and max of its ``(2d + 1)^k`` window differ, or it
lies within ``d`` of the border."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax import lax

from jaxseg import _boundary


def _band_min_max(x, d, k):
    """The reference: two separable ``lax.reduce_window`` passes (min and max)."""
    lo, hi = x, x
    for axis in range(x.ndim - k, x.ndim):
        dims, pad = [1] * x.ndim, [(0, 0)] * x.ndim
        dims[axis], pad[axis] = 2 * d + 1, (d, d)
        strides = (1,) * x.ndim
        lo = lax.reduce_window(lo, np.iinfo(np.int32).max, lax.min, dims, strides, pad)
        hi = lax.reduce_window(hi, np.iinfo(np.int32).min, lax.max, dims, strides, pad)
    near = np.zeros(x.shape[-k:], bool)
    for axis, n in enumerate(x.shape[-k:]):
        i = np.arange(n).reshape([n if a == axis else 1 for a in range(k)])
        near = near | (i < d) | (i >= n - d)
    return (lo != hi) | near.reshape((1,) * (x.ndim - k) + near.shape)


def _maps(rng, shape, n):
    """Maps of 1-5 classes (ids up to 240): noise, and blocks of 2-4 pixels."""
    out = []
    for i in range(n):
        f = 1 + i % 4  # block size
        x = rng.integers(0, 1 + i % 5, [-(-s // f) for s in shape]) * (1 + 60 * (i % 3))
        for axis in range(len(shape)):
            x = np.repeat(x, f, axis)
        out.append(x[tuple(slice(s) for s in shape)])
    return np.stack(out).astype(np.int32)


@pytest.mark.parametrize(
    ("shape", "d"), [((37, 53), 1), ((37, 53), 14), ((40, 33), 40), ((9, 11, 13), 3)]
)
def test_band_equals_running_min_max(shape, d):
    rng = np.random.default_rng(d)
    x = _maps(rng, shape, 48)
    k = len(shape)
    got = jax.jit(lambda x: _boundary.boundary_band(x, d, k))(x)
    want = jax.jit(lambda x: _band_min_max(x, d, k))(x)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    if 2 * d < min(shape):  # an interior exists: neither empty nor everything
        assert 0 < np.asarray(got).mean() < 1
