"""ProbabilityHistogram: exact counts and sums, curves and calibration against the peers."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import _probability

B = 10


def _bins_np(p: np.ndarray, b: int) -> np.ndarray:
    """Reference bin rule: e_k <= p < e_{k+1} with e_k = float32(k / b); p = 1 -> b."""
    edges = (np.arange(b + 1) / b).astype(np.float32)
    k = np.searchsorted(edges, p.astype(np.float32), side="right") - 1
    return np.where(p < 1, np.minimum(k, b - 1), b)


def _reference(probs, labels, b, *, exclusive, ignore=(), where=None):
    """Slow NumPy histogram: counts [2, C, b + 1], fixed sums [C, b + 1], top, invalid."""
    p = np.asarray(probs, np.float32)
    y = np.asarray(labels)
    c = p.shape[-1]
    counts = np.zeros((2, c, b + 1), np.int64)
    sums = np.zeros((c, b + 1), np.int64)
    top = np.zeros((2, b + 1), np.int64)
    top_sums = np.zeros(b + 1, np.int64)
    invalid = 0
    if exclusive:
        w = np.ones(y.shape, bool) if where is None else np.broadcast_to(where, y.shape)
        for px, lab, keep in zip(p.reshape(-1, c), y.reshape(-1), w.reshape(-1), strict=True):
            if not keep or lab in ignore:
                continue
            if not (0 <= lab < c) or not np.all((px >= 0) & (px <= 1)):
                invalid += 1
                continue
            for j in range(c):
                k = _bins_np(px[j], b)
                counts[int(lab == j), j, k] += 1
                sums[j, k] += int(np.round(np.float64(px[j]) * 2**24))
            conf = px.max()
            k = _bins_np(conf, b)
            top[int(np.argmax(px) == lab), k] += 1
            top_sums[k] += int(np.round(np.float64(conf) * 2**24))
    else:
        w = np.ones(p.shape, bool) if where is None else np.broadcast_to(where, p.shape)
        for pv, lab, keep, j in zip(
            p.reshape(-1),
            y.reshape(-1),
            w.reshape(-1),
            np.tile(np.arange(c), p.size // c),
            strict=True,
        ):
            if not keep or lab in ignore:
                continue
            if lab not in (0, 1) or not 0 <= pv <= 1:
                invalid += 1
                continue
            k = _bins_np(pv, b)
            counts[int(lab), j, k] += 1
            sums[j, k] += int(np.round(np.float64(pv) * 2**24))
    return counts, sums, top, top_sums, invalid


def _softmax_data(seed=0, shape=(3, 8, 8), c=4, ignore=255):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(*shape, c)).astype(np.float32) * 2
    labels = rng.integers(0, c, shape).astype(np.int32)
    labels[rng.random(shape) < 0.1] = ignore
    labels[0, 0, :2] = [c + 3, -1]  # invalid labels
    labels[0, 1, :4] = [0, 1, 2, 1]
    p = np.array(jax.nn.softmax(jnp.asarray(logits), -1))
    p[0, 1, 0] = [1.0] + [0.0] * (c - 1)  # p = 1 and 0 exactly
    p[0, 1, 1, :2] = [0.3, 0.7]  # edges (float32 0.3 goes up)
    p[0, 1, 1, 2:] = 0.0
    p[0, 1, 2, 0] = np.nan  # a NaN probability: the whole pixel is invalid
    p[0, 1, 3, 1] = 1.25  # outside [0, 1]: invalid
    return p, labels


@functools.partial(jax.jit, static_argnames=("exclusive", "ignore"))
def _build(p, y, where, *, exclusive, ignore):
    return jaxseg.ProbabilityHistogram.from_probabilities(
        p, y, num_bins=B, exclusive=exclusive, ignore_index=ignore, where=where
    )


def _check_against_reference(h, ref):
    counts, sums, top, top_sums, invalid = ref
    np.testing.assert_array_equal(h.to_numpy(), counts)
    np.testing.assert_array_equal(h.sums_to_numpy(), sums)
    top_limbs = jaxseg.ProbabilityHistogram  # readability only
    del top_limbs
    from jaxseg import _counts

    np.testing.assert_array_equal(_counts.to_int64_numpy(h.top_counts), top)
    parts = _counts.to_int64_numpy(h.top_sums)
    np.testing.assert_array_equal((parts[..., 0] << 12) + parts[..., 1], top_sums)
    assert int(h.num_invalid) == invalid


def _hard_probabilities() -> np.ndarray:
    """Every kind of float32 the bin rule and the fixed-point rounding can trip on."""
    rng = np.random.default_rng(3)
    up, down = np.float32(np.inf), np.float32(0)
    vals = [rng.random(20000, dtype=np.float32), np.float32([0, 1, 0.5, 2**-149, 1e-38])]
    for b in (3, 7, 10, 100, 1000):  # the edges and their float32 neighbours
        e = (np.arange(b + 1) / b).astype(np.float32)
        vals += [e, np.nextafter(e, up), np.nextafter(e, down)]
    n = np.arange(0, 1 << 23, 4099, dtype=np.float64)
    vals.append(((2 * n + 1) * 2.0**-25).astype(np.float32))  # p * 2**24 = n + 1/2: ties
    vals.append((n * 2.0**-24 + 2.0**-1).astype(np.float32))  # p >= 1/2: integers
    vals.append(np.float32([(2**23 - 0.5) * 2**-24, (2**23 - 1.5) * 2**-24, 1 - 2**-24]))
    p = np.concatenate(vals).astype(np.float32)
    return np.clip(p, 0, 1)


@pytest.mark.parametrize("b", [3, 7, 10, 100, 1000])
def test_bin_index_and_fixed_point_equal_numpy_on_edges_and_ties(b):
    """The float-to-int steps are bit tricks (XLA's CPU conversion is slow); on the
    edges, their neighbours, the half-way points of the fixed-point grid and p >= 1/2
    they give NumPy's bins and ``round(p * 2**24)`` (half to even) exactly."""
    p = _hard_probabilities()
    bins = jax.jit(_probability.bin_index, static_argnums=1)(p, b)
    np.testing.assert_array_equal(np.asarray(bins), _bins_np(p, b))
    q = jax.jit(_probability.fixed_point)(p)
    np.testing.assert_array_equal(
        np.asarray(q), np.round(p.astype(np.float64) * 2**24).astype(np.uint32)
    )


def test_softmax_counts_sums_and_top_label_equal_the_numpy_loop():
    p, y = _softmax_data()
    where = np.ones(y.shape, bool)
    where[2, 3] = False
    h = _build(p, y, where, exclusive=True, ignore=(255,))
    _check_against_reference(h, _reference(p, y, B, exclusive=True, ignore=(255,), where=where))
    assert h.counts.shape == (2, 4, B + 1, 3) and h.batch_shape == ()
    # the documented bin rule at the planted pixels: 0.3 in bin 3, p = 1 apart
    assert int(h.to_numpy()[0, 1, 7]) >= 1 and int(h.to_numpy()[:, 0, B].sum()) >= 1


def test_sigmoid_counts_equal_the_numpy_loop_with_per_channel_mask():
    rng = np.random.default_rng(1)
    p = rng.random((2, 6, 6, 3)).astype(np.float32)
    y = rng.integers(0, 2, p.shape).astype(np.int32)
    y[0, 0, 0] = [255, 7, -3]
    p[1, 0, 0] = [np.nan, 1.0, 0.5]
    where = rng.random(p.shape) < 0.9
    h = _build(p, y, where, exclusive=False, ignore=(255,))
    ref = _reference(p, y, B, exclusive=False, ignore=(255,), where=where)
    _check_against_reference(h, ref)
    assert not h.exclusive and ref[4] >= 2


def test_from_logits_softmax_and_sigmoid_equal_from_probabilities():
    p, y = _softmax_data(seed=2)
    logits = np.log(np.clip(np.nan_to_num(p, nan=0.5), 1e-6, 1)).astype(np.float32)
    onehot = np.eye(4, dtype=np.int32)[np.clip(y, 0, 3)]

    @jax.jit
    def both(x):
        P = jaxseg.ProbabilityHistogram
        return [
            P.from_logits(x, y, num_bins=B, ignore_index=255),
            P.from_probabilities(jax.nn.softmax(x), y, num_bins=B, ignore_index=255),
            P.from_logits(x, onehot, num_bins=B, activation="sigmoid"),
            P.from_probabilities(jax.nn.sigmoid(x), onehot, num_bins=B, exclusive=False),
        ]

    soft, soft_ref, sig, sig_ref = both(logits)
    np.testing.assert_array_equal(soft.to_numpy(), soft_ref.to_numpy())
    np.testing.assert_array_equal(sig.to_numpy(), sig_ref.to_numpy())
    assert soft.exclusive and not sig.exclusive


def test_merge_split_psum_and_chunked_updates_are_bit_identical(monkeypatch):
    p, y = _softmax_data(seed=3, shape=(4, 8, 8))

    def build(q, t):
        return jaxseg.ProbabilityHistogram.from_probabilities(q, t, num_bins=B, ignore_index=255)

    @jax.jit
    def combos(p, y):
        per_image = jax.vmap(build)(p, y)
        parts = [jax.tree.map(lambda x, i=i: x[i], per_image) for i in range(4)]
        a = (parts[0] + parts[1]) + (parts[2] + parts[3])
        b = parts[3].merge(parts[1]).merge(parts[0].merge(parts[2]))
        psummed = jax.vmap(lambda s: s.psum("d"), axis_name="d")(per_image)
        empty = jaxseg.ProbabilityHistogram.empty(4, num_bins=B, ignore_index=255)
        return [a, b, per_image.reduce(), jax.tree.map(lambda x: x[0], psummed), empty + a]

    whole = jax.jit(build)(p, y)
    # an update larger than one exact block is summed block by block (scan), exactly
    monkeypatch.setattr(_probability, "_CHUNK", 50)
    chunked = jax.jit(build)(p, y)
    for s in [*combos(p, y), chunked]:
        for leaf, ref in zip(jax.tree.leaves(s), jax.tree.leaves(whole), strict=True):
            np.testing.assert_array_equal(leaf, ref)


def _sk_scores(p, b):
    """Bin-quantised scores: the lower edge of each pixel's bin."""
    return _bins_np(p, b) / b


def _binary_case(kind, rng):
    n = 400
    p = rng.random(n).astype(np.float32)
    y = (rng.random(n) < p).astype(np.int32)
    if kind == "ties_at_edges":
        p = (rng.integers(0, B + 1, n) / B).astype(np.float32)
    elif kind == "all_positive_but_one":
        y[:] = 1
        y[0] = 0
    elif kind == "with_ones":
        p[:40] = 1.0
    return p, y


@pytest.mark.parametrize("x64", [False, True])
def test_auroc_ap_and_curves_equal_sklearn_on_quantised_scores(x64):
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    rng = np.random.default_rng(4)
    kinds = ["random", "ties_at_edges", "all_positive_but_one", "with_ones"]
    cases = [_binary_case(k, rng) for k in kinds]
    p = np.stack([c[0] for c in cases], -1)  # one channel per case
    y = np.stack([c[1] for c in cases], -1)
    tol = 1e-12 if x64 else 2e-6

    @jax.jit
    def curves(h):
        return (
            jaxseg.auroc(h, average=None),
            jaxseg.average_precision(h, average=None),
            jaxseg.roc_curve(h),
            jaxseg.precision_recall_curve(h),
        )

    with jax.enable_x64(x64):
        h = _build(p, y, None, exclusive=False, ignore=())
        big = jax.jit(lambda h: jax.lax.fori_loop(0, 30, lambda i, s: s + s, h))(h)
        # 2**30 times every count (~4e11 pixels): exact limbs
        np.testing.assert_array_equal(big.to_numpy(), h.to_numpy() << 30)
        auc, ap, (fpr, tpr, thr), (prec, rec, pthr) = curves(h)
        auc_big, ap_big, _, _ = curves(big)
    for j in range(len(kinds)):
        s = _sk_scores(p[:, j], B)
        want_auc = roc_auc_score(y[:, j], s)
        want_ap = average_precision_score(y[:, j], s)
        for got_auc, got_ap in ((auc, ap), (auc_big, ap_big)):
            assert abs(float(got_auc[j]) - want_auc) <= tol, (kinds[j], got_auc[j], want_auc)
            assert abs(float(got_ap[j]) - want_ap) <= tol, (kinds[j], got_ap[j], want_ap)
        # the curves hold sklearn's points (ours repeat points for empty bins)
        f, t, _ = roc_curve(y[:, j], s, drop_intermediate=False)
        ours = np.stack([fpr[j], tpr[j]], -1).astype(np.float64)
        want = np.stack([f, t], -1)
        assert np.abs(want[:, None] - ours[None]).max(-1).min(-1).max() <= 10 * tol
        pr, rc, _ = precision_recall_curve(y[:, j], s)
        ours = np.stack([prec[j], rec[j]], -1).astype(np.float64)
        want = np.stack([pr, rc], -1)
        assert np.abs(want[:, None] - ours[None]).max(-1).min(-1).max() <= 10 * tol
    assert thr.shape == (B + 2,) and pthr.shape == (B + 1,) and np.isinf(thr[0])


def test_degenerate_classes_give_nan_and_leave_the_average():
    # class 2 absent from the labels (no positive), class 0 everywhere-or-nothing
    p = np.full((6, 3), 1 / 3, np.float32)
    p[:, 0] = np.linspace(0.1, 0.6, 6)
    p[:, 1] = 1 - p[:, 0] - 0.05
    p[:, 2] = 0.05
    y = np.array([0, 1, 0, 1, 1, 1], np.int32)

    @jax.jit
    def scores(h):
        return (
            jaxseg.auroc(h, average=None),
            jaxseg.average_precision(h, average=None),
            jaxseg.auroc(h),
            jaxseg.auroc(h, include_background=False),
            jaxseg.expected_calibration_error(h),
            jaxseg.roc_curve(h)[0],
        )

    h = _build(p, y, None, exclusive=True, ignore=())
    auc, ap, macro, no_bg, _, _ = scores(h)
    assert np.isnan(auc[2]) and np.isnan(ap[2]) and not np.isnan(auc[:2]).any()
    assert float(macro) == pytest.approx(np.nanmean(np.asarray(auc)))
    assert float(no_bg) == pytest.approx(float(auc[1]))
    _, _, _, _, ece, fpr = scores(jaxseg.ProbabilityHistogram.empty(3, num_bins=B))
    assert np.isnan(ece) and np.all(np.isnan(fpr))


def _monai_ece(p_cf, y_cf, b, reduction, include_background=True):
    import torch
    from monai.metrics import CalibrationErrorMetric

    m = CalibrationErrorMetric(
        num_bins=b, calibration_reduction=reduction, include_background=include_background
    )
    m(y_pred=torch.tensor(p_cf), y=torch.tensor(y_cf))
    return float(m.aggregate())


def test_marginal_ece_equals_monai_per_image_then_mean():
    rng = np.random.default_rng(5)
    n, hw, c = 3, (12, 12), 3
    logits = rng.normal(size=(n, *hw, c)).astype(np.float32) * 2
    p = np.asarray(jax.nn.softmax(jnp.asarray(logits), -1))
    y = rng.integers(0, c, (n, *hw)).astype(np.int32)

    @jax.jit
    def ece(p, y):
        per_image = jax.vmap(
            lambda q, t: jaxseg.ProbabilityHistogram.from_probabilities(q, t, num_bins=B)
        )(p, y)
        return [
            jaxseg.expected_calibration_error(per_image, norm=n, average=None)
            for n in ("l1", "max")
        ]  # [n, C] each

    p_cf = np.moveaxis(p, -1, 1)
    y_cf = np.moveaxis(np.eye(c, dtype=np.float32)[y], -1, 1)
    for values, reduction in zip(ece(p, y), ("expected", "maximum"), strict=True):
        for bg in (True, False):
            ours = np.nanmean(np.asarray(values)[:, 0 if bg else 1 :])
            assert ours == pytest.approx(_monai_ece(p_cf, y_cf, B, reduction, bg), abs=2e-6)


def test_monai_puts_interior_edges_in_the_lower_bin():
    """Documented difference: MONAI's edges are k (1 + eps) / B, so an edge value goes down."""
    q = np.array([0.5, 0.6], np.float32)
    h = jax.jit(
        lambda q: jaxseg.ProbabilityHistogram.from_probabilities(
            q[:, None], jnp.array([[0], [1]]), num_bins=2, exclusive=False
        )
    )(q)
    monai = _monai_ece(q.reshape(1, 1, 2), np.array([[[0.0, 1.0]]], np.float32), 2, "expected")
    # ours: 0.5 goes up, one bin with accuracy 0.5 and confidence 0.55
    np.testing.assert_array_equal(h.to_numpy()[:, 0, :2], [[0, 1], [0, 1]])
    assert float(jax.jit(jaxseg.expected_calibration_error)(h)) == pytest.approx(0.05)
    assert monai == pytest.approx(0.5 * 0.5 + 0.5 * 0.4)  # 0.5 alone in MONAI's lower bin


def test_ece_equals_torchmetrics_binary_and_multiclass():
    import torch
    from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

    norms = ("l1", "l2", "max")

    @functools.partial(jax.jit, static_argnames="mode")
    def eces(h, mode):
        return [
            (
                jaxseg.expected_calibration_error(h, norm=n, mode=mode, ones_bin=True),
                jaxseg.expected_calibration_error(h, norm=n, mode=mode),
            )
            for n in norms
        ]

    rng = np.random.default_rng(6)
    # binary: marginal calibration of the positive channel, p = 1 present
    p = rng.random(500).astype(np.float32) ** 0.5
    p[:25] = 1.0
    y = (rng.random(500) < p).astype(np.int32)
    y[:5] = 0  # confident mistakes at p = 1
    h = jax.jit(
        lambda p, y: jaxseg.ProbabilityHistogram.from_probabilities(
            p[:, None], y[:, None], num_bins=15, exclusive=False
        )
    )(p, y)
    for norm, (got, folded) in zip(norms, eces(h, "marginal"), strict=True):
        want = BinaryCalibrationError(n_bins=15, norm=norm)(torch.tensor(p), torch.tensor(y))
        assert float(got) == pytest.approx(float(want), abs=3e-6), norm
        assert float(folded) != pytest.approx(float(want), abs=1e-5)  # p = 1 apart matters
    # multiclass: top-label, with ignored pixels and saturated softmax (p = 1)
    c = 5
    logits = rng.normal(size=(600, c)).astype(np.float32) * 3
    logits[:30, 0] = 40.0
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits), -1))
    labels = rng.integers(0, c, 600).astype(np.int32)
    labels[rng.random(600) < 0.1] = 255
    hm = jax.jit(
        lambda p, y: jaxseg.ProbabilityHistogram.from_probabilities(
            p, y, num_bins=15, ignore_index=255
        )
    )(probs, labels)
    for norm, (got, _) in zip(norms, eces(hm, "top_label"), strict=True):
        metric = MulticlassCalibrationError(num_classes=c, n_bins=15, norm=norm, ignore_index=255)
        want = metric(torch.tensor(probs), torch.tensor(labels, dtype=torch.long))
        assert float(got) == pytest.approx(float(want), abs=3e-6), norm


def test_at_threshold_equals_binary_stats_and_best_threshold_brute_force():
    rng = np.random.default_rng(7)
    p = rng.random((2, 16, 16, 3)).astype(np.float32)
    y = (rng.random(p.shape) < p).astype(np.int32)
    p[0, 0, :4, 0] = [0.5, 0.2, 0.7, 1.0]  # values on edges

    @jax.jit
    def run(p, y):
        h = jaxseg.ProbabilityHistogram.from_probabilities(p, y, num_bins=B, exclusive=False)
        return h.at_threshold(0.5), h.at_threshold(0.55), jaxseg.best_threshold(h)

    at, between, (t_best, v_best) = run(p, y)
    stats = jax.jit(jaxseg.BinaryStats.from_predictions)
    want = stats(p >= np.float32(0.5), y)
    np.testing.assert_array_equal(at.to_numpy(), want.to_numpy())
    # between edges: rounded up to the next edge (0.6)
    want6 = stats(p >= np.float32(0.6), y)
    np.testing.assert_array_equal(between.to_numpy(), want6.to_numpy())
    # best threshold: brute force over the edges in NumPy
    for j in range(3):
        pj, yj = p[..., j].ravel(), y[..., j].ravel()
        dices = []
        for k in range(B + 1):
            pred = pj >= np.float32(k / B)
            tp = np.sum(pred & (yj == 1))
            dices.append(2 * tp / (2 * tp + np.sum(pred & (yj == 0)) + np.sum(~pred & (yj == 1))))
        k = int(np.argmax(dices))
        assert float(t_best[j]) == pytest.approx(k / B)
        assert float(v_best[j]) == pytest.approx(dices[k], rel=1e-6)
    # softmax states: one-vs-rest statistics per class, served by any score
    ps, ys = _softmax_data(seed=8)
    ok = (ys >= 0) & (ys < 4) & np.all(np.isfinite(ps) & (ps <= 1), -1)
    h = _build(ps, ys, None, exclusive=True, ignore=(255,))
    onehot = np.eye(4, dtype=np.int32)[np.where(ok, ys, 0)]
    want = jax.jit(jaxseg.BinaryStats.from_predictions)(ps >= 0.5, onehot, where=ok)
    f2 = functools.partial(jaxseg.fbeta, beta=2.0)
    at, (best, _) = jax.jit(lambda h: (h.at_threshold(0.5), jaxseg.best_threshold(h, f2)))(h)
    np.testing.assert_array_equal(at.to_numpy(), want.to_numpy())
    assert best.shape == (4,)


def test_every_function_under_jit_and_vmap_equals_per_image_calls():
    p, y = _softmax_data(seed=9, shape=(3, 6, 6), c=3)

    def everything(q, t):
        h = jaxseg.ProbabilityHistogram.from_probabilities(q, t, num_bins=5, ignore_index=255)
        out = [jaxseg.auroc(h), jaxseg.average_precision(h, average=None)]
        for norm in ("l1", "l2", "max"):
            out.append(jaxseg.expected_calibration_error(h, norm=norm, ones_bin=True))
            out.append(jaxseg.expected_calibration_error(h, norm=norm, mode="top_label"))
        out += [*jaxseg.reliability_diagram(h), *jaxseg.reliability_diagram(h, mode="top_label")]
        out += [*jaxseg.roc_curve(h)[:2], *jaxseg.precision_recall_curve(h)[:2]]
        out += [*jaxseg.best_threshold(h), jaxseg.dice(h.at_threshold(0.4), average=None)]
        return out

    batched = jax.jit(jax.vmap(everything))(p, y)
    single = jax.jit(everything)
    for i in range(p.shape[0]):
        for got, want in zip(batched, single(p[i], y[i]), strict=True):
            np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-7)


def test_clu_protocol_traces_once():
    Metric = jaxseg.ProbabilityHistogram.configure(3, num_bins=B, ignore_index=255)
    assert Metric is jaxseg.ProbabilityHistogram.configure(3, num_bins=B, ignore_index=(255,))
    traces = []

    @jax.jit
    def step(state, logits, labels):
        traces.append(1)
        return state.merge(Metric.from_model_output(logits=logits, labels=labels))

    state = Metric.empty()
    rng = np.random.default_rng(10)
    for _ in range(3):
        state = step(
            state,
            rng.normal(size=(4, 3)).astype(np.float32),
            rng.integers(0, 3, 4).astype(np.int32),
        )
    assert len(traces) == 1 and int(state.to_numpy().sum()) == 12 * 3
    assert state.compute().shape == ()
    sig = jaxseg.ProbabilityHistogram.configure(2, num_bins=4, activation="sigmoid")
    assert not sig.empty().exclusive


def test_bad_input_raises_naming_the_argument():
    P = jaxseg.ProbabilityHistogram
    p, y = np.full((4, 2), 0.5, np.float32), np.zeros(4, np.int32)
    for bad in (0, -3, _probability.MAX_BINS + 1):
        with pytest.raises(ValueError, match="`num_bins`"):
            P.from_probabilities(p, y, num_bins=bad)
    for bad in (1.5, True, "10"):
        with pytest.raises(TypeError, match="`num_bins`"):
            P.empty(2, num_bins=bad)
    h = jax.jit(lambda p, y: P.from_probabilities(p, y, num_bins=4))(p, y)
    for t in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="`threshold`"):
            h.at_threshold(t)
    with pytest.raises(TypeError, match="`probs`"):
        P.from_probabilities(np.zeros((4, 2), np.int32), y, num_bins=4)
    with pytest.raises(ValueError, match="`labels`"):
        P.from_probabilities(p, np.zeros(3, np.int32), num_bins=4)
    with pytest.raises(ValueError, match="`activation`"):
        P.from_logits(p, y, num_bins=4, activation="relu")
    for kw in ({"norm": "l3"}, {"mode": "top"}, {"average": "micro"}):
        with pytest.raises(ValueError, match=f"`{next(iter(kw))}`"):
            jaxseg.expected_calibration_error(h, **kw)
    sig = P.empty(2, num_bins=4, exclusive=False)
    with pytest.raises(ValueError, match="top_label"):
        jaxseg.expected_calibration_error(sig, mode="top_label")
    with pytest.raises(ValueError, match="different settings"):
        h.merge(P.empty(2, num_bins=5))
    with pytest.raises(TypeError, match="ProbabilityHistogram"):
        jaxseg.auroc(jaxseg.BinaryStats.empty(2))


def test_checked_mode_rejects_probabilities_outside_unit_interval():
    @jaxseg.checked
    @jax.jit
    def update(p, y):
        return jaxseg.ProbabilityHistogram.from_probabilities(p, y, num_bins=4)

    plain = jax.jit(lambda p, y: jaxseg.ProbabilityHistogram.from_probabilities(p, y, num_bins=4))
    y = np.zeros(3, np.int32)
    ok = update(np.full((3, 2), 0.5, np.float32), y)
    assert int(ok.to_numpy().sum()) == 6
    for bad in (1.2, -0.1, np.nan):
        p = np.full((3, 2), 0.5, np.float32)
        p[1, 0] = bad
        with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
            update(p, y)
        # without checks the pixel is counted invalid
        assert int(plain(p, y).num_invalid) == 1
