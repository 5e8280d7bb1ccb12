"""``best_threshold`` visits every bin edge exactly, also where ``k / B`` divided in
float32 on the device is not the edge (``B = 7``: ``3 / 7`` and ``6 / 7``)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxseg

B = 7


def test_best_threshold_equals_brute_force_at_every_edge():
    rng = np.random.default_rng(11)
    p = rng.random((4, 12, 12, 3)).astype(np.float32)
    y = (rng.random(p.shape) < p).astype(np.int32)
    edges = (np.arange(B + 1) / B).astype(np.float32)
    # a class whose best edge is 3 / 7 (and one whose best is 6 / 7): positives exactly
    # the pixels at or above that edge
    y[..., 1] = p[..., 1] >= edges[3]
    y[..., 2] = p[..., 2] >= edges[6]

    @jax.jit
    def run(p, y):
        h = jaxseg.ProbabilityHistogram.from_probabilities(p, y, num_bins=B, exclusive=False)
        h = h.merge(h)  # merged limbs
        return jaxseg.best_threshold(h), jax.vmap(h.at_threshold)(edges)

    (t_best, v_best), at_edges = run(p, y)
    for j in range(3):
        pj, yj = p[..., j].ravel(), y[..., j].ravel() == 1
        dices = []
        for k in range(B + 1):
            pred = pj >= edges[k]
            tp, fp, fn = np.sum(pred & yj), np.sum(pred & ~yj), np.sum(~pred & yj)
            dices.append(2 * tp / (2 * tp + fp + fn))
            want = 2 * np.array([tp, fp, fn, pred.size - tp - fp - fn])
            np.testing.assert_array_equal(at_edges.to_numpy()[k, :, j], want)
        k = int(np.argmax(dices))
        assert float(t_best[j]) == edges[k]
        assert float(v_best[j]) == pytest.approx(dices[k], rel=1e-6)
    assert float(t_best[1]) == edges[3] and float(v_best[1]) == 1.0
    assert float(t_best[2]) == edges[6] and float(v_best[2]) == 1.0
