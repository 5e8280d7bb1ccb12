"""Region losses against float64 loop references, identities, and the sweep over all losses."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxseg
from tests import reference_losses as ref

SHAPE = (2, 3, 4)  # batch, height, width

# The batched test programs below run for microseconds but take seconds to compile: they
# skip the backend's (LLVM) code optimisation. The program XLA compiles, its fusions and
# its float semantics are the same; only the machine code is less tuned.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _run_once(fn, *args):
    """``jax.jit(fn)(*args)``, compiled with FAST_COMPILE."""
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args)


def _loss_values(keys, cases):
    """``{key: loss value}`` of ``cases`` ``(name, (logits, labels, kwargs))``, all
    computed in one compilation."""

    def run(args):
        return [
            getattr(jaxseg, name)(x, y, **kw)
            for (name, (_, _, kw)), (x, y) in zip(cases, args, strict=True)
        ]

    args = [(jnp.asarray(x), jnp.asarray(y)) for _, (x, y, _) in cases]
    return dict(zip(keys, _run_once(run, args), strict=True))


def _data(c, seed=0, soft=False, sigmoid=False, ignore_frac=0.15):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(*SHAPE, c)).astype(np.float32) * 2
    if sigmoid:
        labels = rng.integers(0, 2, size=(*SHAPE, c)).astype(np.int32)
        labels[rng.random(labels.shape) < ignore_frac] = 255
    elif soft:
        labels = rng.dirichlet(np.ones(c), size=SHAPE).astype(np.float32)
    else:
        labels = rng.integers(0, c, size=SHAPE).astype(np.int32)
        labels[rng.random(SHAPE) < ignore_frac] = 255
    where = rng.random(SHAPE) > 0.2
    return logits, labels, where


def _directional_check(fn, reffn, logits, seed=1, n_dirs=2, h=1e-5, grads=None):
    """Directional derivatives of the JAX loss against central differences of the reference.

    ``grads``: a precomputed ``{"g": ...}`` slot; its gradient is computed (for all the
    cases of a test at once, under one jit) with the same cotangent ``_cotangent`` draws."""
    rng, cot = _cotangent(reffn, logits, seed)
    if grads is None:
        g = jax.grad(lambda x: jnp.sum(fn(x) * jnp.asarray(cot, jnp.float32)))(jnp.asarray(logits))
    else:
        g = grads
    g = np.asarray(g, np.float64)
    x64 = np.asarray(logits, np.float64)
    for _ in range(n_dirs):
        d = rng.normal(size=x64.shape)
        fd = (np.sum(reffn(x64 + h * d) * cot) - np.sum(reffn(x64 - h * d) * cot)) / (2 * h)
        np.testing.assert_allclose(np.sum(g * d), fd, rtol=1e-3, atol=1e-5)


def _cotangent(reffn, logits, seed):
    rng = np.random.default_rng(seed)
    return rng, rng.normal(size=np.shape(reffn(logits)))


# -- region losses against the references ---------------------------------------

REGION = {
    "dice_loss": ("dice", {}),
    "iou_loss": ("iou", {}),
    "fbeta_loss": ("fbeta", {"beta": 2.0}),
    "tversky_loss": ("tversky", {"alpha": 0.3, "beta": 0.7}),
}

OPTIONS = [
    {},
    {"smooth": 1.0},
    {"ignore_index": 255},
    {"ignore_index": (255, 1)},
    {"use_where": True},
    {"class_weights": [0.0, 1.0, 2.0, 0.5]},
    {"axis": (0, 1, 2), "ignore_index": 255},
    {"axis": 2, "ignore_index": 255, "smooth": 0.5},
    {"soft": True},
    {"soft": True, "use_where": True, "smooth": 0.1},
]


def _split(opts, where):
    opts = dict(opts)
    soft = opts.pop("soft", False)
    if opts.pop("use_where", False):
        opts["where"] = where
    return soft, opts


def _ref_kwargs(name, extra):
    kind, hyper = REGION[name]
    kw = {"kind": kind, **hyper}
    if name == "fbeta_loss":
        kw["beta"] = extra.pop("beta", hyper["beta"])
    return kw, hyper


def _region_case(name, opts):
    c = 4
    logits, labels, where = _data(c, soft=opts.get("soft", False))
    soft, kw = _split(opts, where)
    if soft:
        _, labels, _ = _data(c, soft=True)
    return logits, labels, {**REGION[name][1], **kw}


OPTION_CASES = [
    ("dice_loss", "dice", {"squared": True}),
    ("dice_loss", "dice", {"squared": True, "smooth": 1.0}),
    ("iou_loss", "iou", {"log": True}),
    ("iou_loss", "iou", {"log": True, "smooth": 1.0}),
    ("tversky_loss", "tversky", {"alpha": 0.7, "beta": 0.3, "gamma": 2.0}),
    ("tversky_loss", "tversky", {"alpha": 0.7, "beta": 0.3, "gamma": 0.75}),
    ("fbeta_loss", "fbeta", {"beta": 0.5, "smooth": 1.0}),
]


def _option_case(name, hyper, soft):
    logits, labels, _ = _data(5, seed=3, soft=soft)
    kw = {} if soft else {"ignore_index": 255}
    return logits, labels, {**hyper, **kw}


@pytest.fixture(scope="module")
def region_results():
    """Every test_region_against_reference and test_region_options_against_reference
    value, in one compilation."""
    keys, cases = [], []
    for name in REGION:
        for k, opts in enumerate(OPTIONS):
            keys.append((name, k))
            cases.append((name, _region_case(name, opts)))
    for name, _, hyper in OPTION_CASES:
        for soft in (False, True):
            keys.append((name, str(hyper), soft))
            cases.append((name, _option_case(name, hyper, soft)))

    return _loss_values(keys, cases)


@pytest.mark.parametrize("name", list(REGION))
@pytest.mark.parametrize("k", range(len(OPTIONS)), ids=[str(o) for o in OPTIONS])
def test_region_against_reference(name, k, region_results):
    logits, labels, kw = _region_case(name, OPTIONS[k])
    got = region_results[name, k]
    want = ref.region_loss(logits, labels, REGION[name][0], **kw)
    assert got.dtype == jnp.float32
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "kind", "hyper"), OPTION_CASES)
@pytest.mark.parametrize("soft", [False, True])
def test_region_options_against_reference(name, kind, hyper, soft, region_results):
    logits, labels, kw = _option_case(name, hyper, soft)
    got = region_results[name, str(hyper), soft]
    want = ref.region_loss(logits, labels, kind, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


GDL_OPTS = [
    {},
    {"smooth": 1e-2},
    {"ignore_index": (255, 2)},
    {"class_weights": [0.0, 1.0, 1.0, 3.0]},
    {"axis": (0, 1, 2), "ignore_index": 255},
    {"soft": True},
]
WEIGHTINGS = ["square", "simple", "uniform"]


def _gdl_case(weighting, opts):
    logits, labels, where = _data(4, seed=5)
    soft, kw = _split(opts, where)
    if soft:
        _, labels, _ = _data(4, seed=5, soft=True)
    else:
        labels[labels == 3] = 0  # class 3 absent: takes the largest weight of the others
    return logits, labels, {"weighting": weighting, **kw}


SIGMOID = {
    "sigmoid_dice_loss": ("dice", {}),
    "sigmoid_iou_loss": ("iou", {}),
    "sigmoid_tversky_loss": ("tversky", {"alpha": 0.3, "beta": 0.7, "gamma": 1.5}),
}
SIGMOID_OPTS = [
    {"ignore_index": 255},
    {"ignore_index": 255, "smooth": 1.0, "class_weights": [1.0, 0.0, 2.0]},
    {"ignore_index": 255, "use_where": True, "axis": (0, 2)},
    {"element_where": True},
    {"soft": True},
]


def _sigmoid_case(name, opts):
    logits, labels, where = _data(3, seed=7, sigmoid=True)
    opts = dict(opts)
    if opts.pop("soft", False):
        labels = np.random.default_rng(8).random(labels.shape).astype(np.float32)
    if opts.pop("element_where", False):
        opts["where"] = np.asarray(labels != 255)
        labels = np.where(labels == 255, 0, labels)
    _, kw = _split(opts, where)
    return logits, labels, {**SIGMOID[name][1], **kw}


@pytest.fixture(scope="module")
def more_results():
    """Every generalized Dice and sigmoid region reference case, in one compilation."""
    keys, cases = [], []
    for w in WEIGHTINGS:
        for k, opts in enumerate(GDL_OPTS):
            keys.append((w, k))
            cases.append(("generalized_dice_loss", _gdl_case(w, opts)))
    for name in SIGMOID:
        for k, opts in enumerate(SIGMOID_OPTS):
            keys.append((name, k))
            cases.append((name, _sigmoid_case(name, opts)))
    sq = {"ignore_index": 255, "squared": True, "smooth": 0.5}
    keys.append("squared")
    cases.append(("sigmoid_dice_loss", (*_data(3, seed=9, sigmoid=True)[:2], sq)))

    return _loss_values(keys, cases)


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("k", range(len(GDL_OPTS)), ids=[str(o) for o in GDL_OPTS])
def test_generalized_dice_against_reference(weighting, k, more_results):
    logits, labels, kw = _gdl_case(weighting, GDL_OPTS[k])
    want = ref.generalized_dice_loss(logits, labels, **kw)
    got = more_results[weighting, k]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(SIGMOID))
@pytest.mark.parametrize("k", range(len(SIGMOID_OPTS)), ids=[str(o) for o in SIGMOID_OPTS])
def test_sigmoid_region_against_reference(name, k, more_results):
    logits, labels, kw = _sigmoid_case(name, SIGMOID_OPTS[k])
    want = ref.region_loss(logits, labels, SIGMOID[name][0], exclusive=False, **kw)
    got = more_results[name, k]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_sigmoid_dice_squared_against_reference(more_results):
    logits, labels, _ = _data(3, seed=9, sigmoid=True)
    want = ref.region_loss(
        logits, labels, "dice", exclusive=False, ignore_index=255, squared=True, smooth=0.5
    )
    np.testing.assert_allclose(more_results["squared"], want, rtol=1e-5, atol=1e-6)


GRAD_CASES = [
    ("dice_loss", {"ignore_index": 255}, functools.partial(ref.region_loss, kind="dice")),
    (
        "dice_loss",
        {"ignore_index": 255, "squared": True, "smooth": 1.0},
        functools.partial(ref.region_loss, kind="dice"),
    ),
    (
        "iou_loss",
        {"log": True, "axis": (0, 1, 2)},
        functools.partial(ref.region_loss, kind="iou"),
    ),
    (
        "tversky_loss",
        {"alpha": 0.3, "beta": 0.7, "gamma": 2.0, "class_weights": [1.0, 2.0, 0.0, 1.0]},
        functools.partial(ref.region_loss, kind="tversky"),
    ),
    (
        "fbeta_loss",
        {"beta": 2.0, "smooth": 0.5},
        functools.partial(ref.region_loss, kind="fbeta"),
    ),
    ("generalized_dice_loss", {"ignore_index": 255}, ref.generalized_dice_loss),
]


@pytest.fixture(scope="module")
def region_grads():
    """The gradients of every GRAD_CASES loss and of the sigmoid case, in one compilation."""
    logits, labels, _ = _data(4, seed=11)
    slogits, slabels, _ = _data(3, seed=12, sigmoid=True)
    skw = {"ignore_index": 255, "alpha": 0.3, "beta": 0.7, "gamma": 1.5}
    progs, args = [], []
    for name, kw, reffn in GRAD_CASES:
        fn = functools.partial(getattr(jaxseg, name), labels=labels, **kw)
        _, cot = _cotangent(lambda x, r=reffn, kw=kw: r(x, labels, **kw), logits, 1)
        progs.append(fn)
        args.append((jnp.asarray(logits), jnp.asarray(cot, jnp.float32)))
    sref = functools.partial(
        ref.region_loss, labels=slabels, kind="tversky", exclusive=False, **skw
    )
    _, scot = _cotangent(sref, slogits, 1)
    progs.append(functools.partial(jaxseg.sigmoid_tversky_loss, labels=slabels, **skw))
    args.append((jnp.asarray(slogits), jnp.asarray(scot, jnp.float32)))

    def run(args):
        return [
            jax.grad(lambda x, fn=fn, c=c: jnp.sum(fn(x) * c))(x)
            for fn, (x, c) in zip(progs, args, strict=True)
        ]

    return _run_once(run, args)


@pytest.mark.parametrize("i", range(len(GRAD_CASES)), ids=[f"{c[0]}-{c[1]}" for c in GRAD_CASES])
def test_region_gradients(i, region_grads):
    name, kw, reffn = GRAD_CASES[i]
    logits, labels, _ = _data(4, seed=11)
    fn = getattr(jaxseg, name)
    _directional_check(
        lambda x: fn(x, labels, **kw),
        lambda x: reffn(x, labels, **kw),
        logits,
        grads=region_grads[i],
    )


def test_sigmoid_gradients(region_grads):
    logits, labels, _ = _data(3, seed=12, sigmoid=True)
    kw = {"ignore_index": 255, "alpha": 0.3, "beta": 0.7, "gamma": 1.5}
    _directional_check(
        lambda x: jaxseg.sigmoid_tversky_loss(x, labels, **kw),
        lambda x: ref.region_loss(x, labels, "tversky", exclusive=False, **kw),
        logits,
        grads=region_grads[-1],
    )


# -- identities ------------------------------------------------------------------


def test_loss_on_one_hot_equals_hard_metric():
    c = 5
    rng = np.random.default_rng(13)
    labels = rng.integers(0, c, size=(4, 6, 5))
    labels[rng.random(labels.shape) < 0.1] = 255
    labels[0][labels[0] == 2] = 0  # class 2 absent in image 0 (empty or false positive)
    preds = rng.integers(0, c, size=labels.shape)
    logits = jnp.asarray(1e4 * np.eye(c, dtype=np.float32)[preds])
    ign = (255, 4)
    cases = [
        (jaxseg.dice_loss, jaxseg.dice, {}),
        (jaxseg.iou_loss, jaxseg.iou, {}),
        (jaxseg.fbeta_loss, jaxseg.fbeta, {"beta": 2.0}),
        (jaxseg.tversky_loss, jaxseg.tversky, {"alpha": 0.2, "beta": 0.8}),
    ]

    # one compilation for the confusion matrices, the four losses and the gradient
    def run(x, y):
        cm = jax.vmap(lambda a, b: jaxseg.ConfusionMatrix.from_logits(a, b, ignore_index=ign))(x, y)
        losses = [loss(x, y, ignore_index=ign, **kw) for loss, _, kw in cases]
        g = jax.grad(lambda z: jnp.sum(jaxseg.dice_loss(z, y, ignore_index=255)))(x)
        return cm, losses, g

    cm, losses, g = _run_once(
        run, logits, jnp.asarray(labels)
    )  # the scores below: on the concrete counts
    # The loss leaves out a class absent from the labels (DESIGN §2.1); the hard
    # metric counts it with IoU 0 when it is predicted (torchmetrics, Cityscapes).
    # With empty=NaN and the label-absent classes left out of the metric, they agree.
    absent = np.asarray(cm.tp + cm.fn) == 0
    assert absent[0, 2] and float(cm.fp[0, 2]) > 0  # predicted in image 0, never labelled
    for (_, score, kw), got in zip(cases, losses, strict=True):
        assert np.all(np.isfinite(got))
        per_class = np.asarray(score(cm, average=None, **kw))
        want = 1.0 - np.nanmean(np.where(absent, np.nan, per_class), axis=-1)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        # where no predicted class is absent from the labels, loss == 1 - metric exactly
        np.testing.assert_allclose(got[1:], 1.0 - score(cm, **kw)[1:], rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(g))


def test_region_loss_equivalences():
    logits, labels, _ = _data(5, seed=14)
    kw = {"ignore_index": 255}

    # one compilation for the eight losses
    def run(x):
        return (
            jaxseg.dice_loss(x, labels, **kw),
            jaxseg.tversky_loss(x, labels, alpha=0.5, beta=0.5, **kw),
            jaxseg.fbeta_loss(x, labels, beta=1.0, **kw),
            jaxseg.tversky_loss(x, labels, alpha=1.0, beta=1.0, **kw),
            jaxseg.iou_loss(x, labels, **kw),
            jaxseg.tversky_loss(x, labels, smooth=1.0, **kw),
            jaxseg.dice_loss(x, labels, smooth=1.0, **kw),
            jaxseg.dice_loss(x, labels, smooth=2.0, **kw),
        )

    dice, t55, f1, t11, iou, t, d1, d2 = _run_once(run, jnp.asarray(logits))
    np.testing.assert_allclose(t55, dice, rtol=1e-6)
    np.testing.assert_allclose(f1, dice, rtol=1e-6)
    np.testing.assert_allclose(t11, iou, rtol=1e-6)
    # with smoothing Dice != Tversky(0.5, 0.5): smooth enters once, not doubled
    assert not np.allclose(t, d1)
    np.testing.assert_allclose(t, d2, rtol=1e-6)


ALL_LOSSES = {
    "dice_loss": {},
    "iou_loss": {},
    "fbeta_loss": {"beta": 2.0},
    "tversky_loss": {"alpha": 0.3, "beta": 0.7, "gamma": 1.5},
    "generalized_dice_loss": {},
    "lovasz_softmax_loss": {},
    "cross_entropy_loss": {"label_smoothing": 0.1},
    "focal_loss": {"gamma": 2.0},
}
SIGMOID_LOSSES = {
    "sigmoid_dice_loss": {},
    "sigmoid_iou_loss": {},
    "sigmoid_tversky_loss": {"alpha": 0.3, "beta": 0.7},
    "sigmoid_focal_loss": {"alpha": 0.25},
    "lovasz_hinge_loss": {},
}


def _ignore_case(name):
    c = 5
    logits, labels, _ = _data(c, seed=15)
    labels[0, 0, :] = 3  # make sure class 3 has pixels to ignore
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0], np.float32)
    # region losses also leave an ignored class id out of the class average; the
    # pixel-wise losses keep it in the label-smoothing sum, as torch does
    pixelwise = name in ("cross_entropy_loss", "focal_loss")
    w_b = w if pixelwise else np.where(np.arange(c) == 3, 0.0, w).astype(np.float32)
    perm = np.array([3, 0, 4, 1, 2])
    inv = np.argsort(perm)
    lab = np.where(labels == 255, 255, inv[np.clip(labels, 0, c - 1)])
    # (logits, labels, keyword arguments) of the calls that must agree pairwise
    return [
        (logits, labels, {"ignore_index": (255, 3), "class_weights": w}),
        (
            logits,
            np.where(labels == 255, 0, labels),
            {"where": (labels != 255) & (labels != 3), "class_weights": w_b},
        ),
        (logits[..., perm], lab, {"ignore_index": 255, "class_weights": w[perm]}),
        (logits, labels, {"ignore_index": 255, "class_weights": w}),
        (logits + 7.0, labels, {"ignore_index": 255}),
        (logits, labels, {"ignore_index": 255}),
    ]


@pytest.fixture(scope="module")
def ignore_results():
    """Every call of test_ignore_index_equals_where_permutation_and_shift, in one
    compilation."""
    cases = {name: _ignore_case(name) for name in ALL_LOSSES}

    def run(args):
        return {
            name: [
                getattr(jaxseg, name)(x, y, **ALL_LOSSES[name], **kw)
                for (x, y), (_, _, kw) in zip(args[name], cases[name], strict=True)
            ]
            for name in ALL_LOSSES
        }

    args = {n: [(jnp.asarray(x), jnp.asarray(y)) for x, y, _ in cs] for n, cs in cases.items()}
    return _run_once(run, args)


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_ignore_index_equals_where_permutation_and_shift(name, ignore_results):
    a, b, p, unpermuted, s, unshifted = ignore_results[name]
    assert a.shape == (SHAPE[0],)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(p, unpermuted, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(s, unshifted, rtol=2e-5, atol=1e-6)


POOLING_NAMES = [
    "dice_loss",
    "generalized_dice_loss",
    "lovasz_softmax_loss",
    "cross_entropy_loss",
    "sigmoid_iou_loss",
    "sigmoid_focal_loss",
    "lovasz_hinge_loss",
]


@pytest.fixture(scope="module")
def pooling_results():
    """Pooled and flattened values of every loss of POOLING_NAMES, in one compilation."""
    fns, args = [], []
    for name in POOLING_NAMES:
        sig = name in SIGMOID_LOSSES
        hyper = SIGMOID_LOSSES[name] if sig else ALL_LOSSES[name]
        fns.append((functools.partial(getattr(jaxseg, name), **hyper), sig))
        args.append(_data(3, seed=16, sigmoid=sig)[:2])

    def run(args):
        out = []
        for (fn, sig), (logits, labels) in zip(fns, args, strict=True):
            pooled = fn(logits, labels, ignore_index=255, axis=(0, 1, 2))
            c = logits.shape[-1]
            flat_labels = labels.reshape(1, -1, c) if sig else labels.reshape(1, -1)
            flat = fn(logits.reshape(1, -1, c), flat_labels, ignore_index=255)
            out.append((pooled, flat))
        return out

    return dict(zip(POOLING_NAMES, _run_once(run, args), strict=True))


@pytest.mark.parametrize("name", POOLING_NAMES)
def test_batch_axis_pooling_equals_flattening(name, pooling_results):
    pooled, flat = pooling_results[name]
    assert pooled.shape == ()
    np.testing.assert_allclose(pooled, flat[0], rtol=1e-5, atol=1e-7)


def test_soft_label_optimum_is_the_target():
    rng = np.random.default_rng(17)
    y = rng.dirichlet(np.ones(4), size=(1, 8)).astype(np.float32)
    at_y = jnp.log(jnp.asarray(y))
    noise = jnp.asarray(0.3 * rng.normal(size=(3, *y.shape)), jnp.float32)
    fns = (jaxseg.dice_loss, jaxseg.iou_loss, jaxseg.tversky_loss)

    # one compilation: each loss at p = y and at three perturbations of it
    def run(at_y, noise):
        xs = jnp.concatenate([at_y[None], at_y[None] + noise])
        vals = [jax.vmap(lambda x, fn=fn: fn(x, y)[0])(xs) for fn in fns]
        return vals, jaxseg.dice_loss(at_y, y, squared=True)

    vals, sq = _run_once(run, at_y, noise)
    for v in vals:
        assert abs(float(v[0])) < 1e-6
        assert np.all(np.asarray(v[1:]) > 1e-3)
    assert abs(float(sq[0])) < 1e-6


def test_empty_class_rules():
    c = 3
    labels = np.zeros(SHAPE, np.int32)  # the shape of the other tests: 12 pixels an example
    logits = jnp.asarray(1e4 * np.eye(c, dtype=np.float32)[labels])  # perfect, classes 1, 2 empty
    where = np.zeros(SHAPE, bool)
    where[0] = True
    soft = jnp.asarray(np.random.default_rng(0).normal(size=(*SHAPE, c)), jnp.float32)
    preds2 = np.broadcast_to(np.array([0, 0, 0, 2]), SHAPE)  # per example 9 x class 0, 3 x class 2
    logits2 = jnp.asarray(1e4 * np.eye(c, dtype=np.float32)[preds2])
    masked = (jaxseg.dice_loss, jaxseg.generalized_dice_loss, jaxseg.iou_loss)

    # one compilation for every value and gradient below
    def run(logits, soft, logits2):
        perfect = (jaxseg.dice_loss(logits, labels), jaxseg.dice_loss(logits, labels, smooth=1.0))
        outs = [
            (
                fn(soft, labels, where=where),
                jax.grad(lambda x, fn=fn: jnp.sum(fn(x, labels, where=where)))(soft),
            )
            for fn in masked
        ]
        wrong = (jaxseg.dice_loss(logits2, labels), jaxseg.dice_loss(logits2, labels, smooth=1.0))
        return perfect, outs, wrong

    (p0, p1), outs, (w0, w1) = _run_once(run, logits, soft, logits2)
    # smooth = 0: empty classes left out -> perfect score, loss 0; smooth > 0: they score 1
    np.testing.assert_array_equal(p0, [0.0, 0.0])
    np.testing.assert_array_equal(p1, [0.0, 0.0])
    # an example with every pixel masked has loss 0 and zero gradient
    for out, g in outs:
        assert out[1] == 0.0 and out[0] > 0
        assert np.all(np.asarray(g[1]) == 0.0)
    # smooth = 0: a class absent from the labels is left out even when predicted (its
    # soft score would be 0 whatever the prediction); its false positives still cost
    # through the classes that are present (class 0 here: Dice 2 * 9 / (9 + 12) = 6/7).
    np.testing.assert_allclose(w0, [1 / 7] * 2, rtol=1e-6)
    # smooth > 0: the formula decides (MONAI): class 2 scores s / (3 + s), class 1 s / s
    # class 0: 1 - (18 + 1) / (21 + 1); class 1: 1 - 1 / 1 = 0; class 2: 1 - 1 / (3 + 1)
    want = ((1 - 19 / 22) + 0.0 + (1 - 1 / 4)) / 3
    np.testing.assert_allclose(w1, [want] * 2, rtol=1e-6)


def test_bad_input():
    logits = jnp.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="smooth"):
        jaxseg.dice_loss(logits, jnp.zeros((2, 3), jnp.int32), smooth=-1.0)
    with pytest.raises(ValueError, match=r"labels.*\(2, 3\)"):
        jaxseg.iou_loss(logits, jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match="class_weights"):
        jaxseg.dice_loss(logits, jnp.zeros((2, 3), jnp.int32), class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="weighting"):
        jaxseg.generalized_dice_loss(logits, jnp.zeros((2, 3), jnp.int32), weighting="cube")
    with pytest.raises(ValueError, match="classes"):
        jaxseg.lovasz_softmax_loss(logits, jnp.zeros((2, 3), jnp.int32), classes="some")
    with pytest.raises(TypeError, match="dtype"):
        jaxseg.cross_entropy_loss(logits, jnp.zeros((2, 3), jnp.float32))
    with pytest.raises(ValueError, match="axis"):
        jaxseg.focal_loss(logits, jnp.zeros((2, 3), jnp.int32), axis=5)
    with pytest.raises(ValueError, match="label_smoothing"):
        jaxseg.cross_entropy_loss(logits, jnp.zeros((2, 3), jnp.int32), label_smoothing=1.5)


# -- transform sweep over every loss and option branch ---------------------------


def _sweep_cases():
    cases = []
    softmax_opts = [
        {"ignore_index": (255, 1), "class_weights": [1.0, 0.0, 2.0]},
        {"where": "mask", "soft": True},
        {"axis": (0, 2), "ignore_index": 255},
    ]
    extra = {
        "dice_loss": [{"smooth": 1.0, "squared": True, "ignore_index": 255}],
        "iou_loss": [{"log": True, "ignore_index": 255}],
        "generalized_dice_loss": [{"weighting": "simple", "smooth": 1e-3, "ignore_index": 255}],
        "lovasz_softmax_loss": [{"classes": "all", "ignore_index": 255}],
        "cross_entropy_loss": [{"axis": (), "ignore_index": 255}],
        "focal_loss": [{"axis": (), "ignore_index": 255, "class_weights": [1.0, 2.0, 3.0]}],
    }
    for name, hyper in ALL_LOSSES.items():
        opts = softmax_opts if name in extra else softmax_opts[:2]  # axis: see the references
        for o in opts + extra.get(name, []):
            cases.append((name, False, {**hyper, **o}))
    sigmoid_opts = [
        {"ignore_index": 255, "class_weights": [1.0, 0.0, 2.0], "smooth": 1.0},
        {"where": "mask", "soft": True},
    ]
    for name, hyper in SIGMOID_LOSSES.items():
        for o in sigmoid_opts:
            o = dict(o)
            if name in ("sigmoid_focal_loss", "lovasz_hinge_loss"):
                o.pop("smooth", None)
            cases.append((name, True, {**hyper, **o}))
    return cases


def _materialise(name, sig, opts, seed=0):
    c = 3
    logits, labels, where = _data(c, seed=seed, sigmoid=sig)
    opts = dict(opts)
    if opts.pop("soft", False):
        rng = np.random.default_rng(seed)
        labels = (
            rng.random(labels.shape).astype(np.float32)
            if sig
            else rng.dirichlet(np.ones(c), size=SHAPE).astype(np.float32)
        )
    if opts.get("where") == "mask":
        opts["where"] = where
        if not np.issubdtype(labels.dtype, np.floating):
            labels = np.where(labels == 255, 1, labels)
    return jnp.asarray(logits), jnp.asarray(labels), opts


SWEEP = _sweep_cases()


@pytest.fixture(scope="module")
def sweep_results():
    """Every sweep case's jitted value, gradient and vmap, in ONE compilation."""
    prepared = []
    for name, sig, opts in SWEEP:
        logits, labels, opts = _materialise(name, sig, opts)
        logits2, labels2, _ = _materialise(name, sig, {}, seed=1)
        if labels2.dtype != labels.dtype:
            labels2 = labels
        f = functools.partial(getattr(jaxseg, name), **opts)
        stack = "axis" not in opts  # a stacked leading axis keeps the default pooling
        prepared.append((f, stack, opts, (logits, labels, logits2, labels2)))

    def run(args):
        out = []
        for (f, stack, _, _), (x, y, x2, y2) in zip(prepared, args, strict=True):
            value, vjp = jax.vjp(lambda a, f=f, y=y: f(a, y), x)
            (grad,) = vjp(jnp.ones_like(value))  # the gradient of the sum of the values
            vm = jax.vmap(f)(jnp.stack([x, x2]), jnp.stack([y, y2])) if stack else None
            out.append((value, grad, vm))
        return out

    return prepared, _run_once(run, [p[3] for p in prepared])


@pytest.mark.parametrize("i", range(len(SWEEP)), ids=[f"{n}-{s}-{o}" for n, s, o in SWEEP])
def test_transform_sweep(i, sweep_results):
    """Eager == jit, vmap over a leading axis == the unbatched calls, grads finite
    and exactly zero at ignored / masked pixels (all cases in one compiled program)."""
    prepared, results = sweep_results
    f, stack, opts, (logits, labels, logits2, labels2) = prepared[i]
    sig = SWEEP[i][1]
    jitted, g, vm = results[i]
    eager = f(logits, labels)
    assert eager.dtype == jnp.float32
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
    if stack:
        np.testing.assert_allclose(vm[0], eager, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(vm[1], f(logits2, labels2), rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(g))
    if "ignore_index" in opts and not jnp.issubdtype(labels.dtype, jnp.floating):
        ign = np.asarray(labels) == 255
        ign = ign if sig else ign[..., None] & np.ones(g.shape, bool)
        assert np.all(np.asarray(g)[ign] == 0.0)
    if isinstance(opts.get("where"), np.ndarray):
        assert np.all(np.asarray(g)[~opts["where"]] == 0.0)


EDGE_NAMES = list(ALL_LOSSES) + list(SIGMOID_LOSSES)


@pytest.fixture(scope="module")
def edge_results():
    """All pixels ignored, logits +-1e4 (empty classes), bf16 logits, for every loss in
    one compilation."""
    fns, args = [], []
    for name in EDGE_NAMES:
        sig = name in SIGMOID_LOSSES
        hyper = SIGMOID_LOSSES[name] if sig else ALL_LOSSES[name]
        fns.append(functools.partial(getattr(jaxseg, name), **hyper, ignore_index=255))
        logits, labels, _ = _data(3, seed=21, sigmoid=sig)
        big = np.where(np.random.default_rng(1).random(logits.shape) > 0.5, 1e4, -1e4)
        xs = jnp.stack([jnp.asarray(logits), jnp.asarray(big, jnp.float32)])
        ys = jnp.stack([jnp.full(labels.shape, 255, jnp.int32), jnp.asarray(labels)])
        args.append((xs, ys, jnp.asarray(logits, jnp.bfloat16)))

    def run(args):
        out = []
        for f, (xs, ys, x16) in zip(fns, args, strict=True):
            vg = jax.vmap(jax.value_and_grad(lambda x, y, f=f: jnp.sum(f(x, y))))
            v16, vjp = jax.vjp(lambda x, f=f, y=ys[1]: f(x, y), x16)
            (g16,) = vjp(jnp.ones_like(v16))
            out.append((vg(xs, ys), v16, g16))
        return out

    return dict(zip(EDGE_NAMES, _run_once(run, args), strict=True))


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_edges_finite(name, edge_results):
    """All pixels ignored, logits +-1e4 (empty classes), bf16 logits: finite values and grads."""
    (vals, grads), val16, g16 = edge_results[name]
    assert val16.dtype == jnp.float32 and g16.dtype == jnp.bfloat16
    for arr in (vals, grads, val16, g16):
        assert np.all(np.isfinite(np.asarray(arr, np.float32)))
    assert vals[0] == 0.0 and np.all(np.asarray(grads[0]) == 0.0)  # all pixels ignored


@pytest.fixture(scope="module")
def optax_results():
    """25 adam steps of a linear model on every loss, all in one compilation."""
    opt = optax.adam(0.05)
    c, f = 3, 4
    programs = []
    for name in EDGE_NAMES:
        sig = name in SIGMOID_LOSSES
        hyper = SIGMOID_LOSSES[name] if sig else ALL_LOSSES[name]
        fn = functools.partial(getattr(jaxseg, name), **hyper)
        rng = np.random.default_rng(22)
        feats = jnp.asarray(rng.normal(size=(2, 16, f)), jnp.float32)
        scores = np.asarray(feats) @ rng.normal(size=(f, c))
        labels = (scores > 0).astype(np.int32) if sig else np.argmax(scores, -1).astype(np.int32)

        def loss_fn(p, fn=fn, feats=feats, labels=labels):
            return jnp.mean(fn(feats @ p["w"] + p["b"][None, None], labels))

        programs.append(loss_fn)

    def train(loss_fn, p):
        def step(carry, _):
            p, s = carry
            val, g = jax.value_and_grad(loss_fn)(p)
            with jax.numpy_dtype_promotion("standard"):  # optax's adam mixes int and float
                u, s = opt.update(g, s, p)
                p = optax.apply_updates(p, u)
            return (p, s), val

        (p, _), vals = jax.lax.scan(step, (p, opt.init(p)), None, length=25)
        return vals[0], loss_fn(p)

    params = {"w": jnp.zeros((f, c)), "b": jnp.zeros((c,))}
    run = lambda p: [train(loss_fn, p) for loss_fn in programs]  # noqa: E731
    return dict(zip(EDGE_NAMES, _run_once(run, params), strict=True))


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_optax_steps_lower_the_loss(name, optax_results):
    first, last = optax_results[name]
    assert float(last) < float(first) - 0.05


# -- segmentation_models_pytorch's smoothing convention ----------------------------


def _smp_scores(probs, onehot, kind, smooth, alpha=0.5, beta=0.5):
    """smp's published per-class score formulas (``losses/_functional.py``), pooled
    over the batch and the pixels as its multiclass losses do:

    dice    (2 I + s) / (Σp + Σy + s)
    jaccard (I + s) / (Σp + Σy − I + s)
    tversky (I + s) / (I + α FP + β FN + s)
    """
    axes = tuple(range(probs.ndim - 1))
    inter = np.sum(probs * onehot, axis=axes)
    card = np.sum(probs + onehot, axis=axes)
    if kind == "dice":
        return (2 * inter + smooth) / (card + smooth)
    if kind == "iou":
        return (inter + smooth) / (card - inter + smooth)
    fp = np.sum(probs * (1 - onehot), axis=axes)
    fn = np.sum((1 - probs) * onehot, axis=axes)
    return (inter + smooth) / (inter + alpha * fp + beta * fn + smooth)


SMP_CASES = [
    ("dice_loss", "dice", {}),
    ("iou_loss", "iou", {}),
    ("tversky_loss", "tversky", {"alpha": 0.3, "beta": 0.7}),
]
SMP_SMOOTH = [0.0, 1.0, 7.5]


def _smp_data():
    c = 4
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(*SHAPE, c)).astype(np.float32)  # the shape of the other tests
    labels = rng.integers(0, c, size=SHAPE).astype(np.int32)
    return logits, labels


@pytest.fixture(scope="module")
def smp_results():
    """Every test_smp_smoothing_is_ours_unscaled value, in one compilation."""
    logits, labels = _smp_data()

    def run(x):
        return {
            (name, smooth): getattr(jaxseg, name)(x, labels, axis=(0, 1, 2), smooth=smooth, **kw)
            for name, _, kw in SMP_CASES
            for smooth in SMP_SMOOTH
        }

    return _run_once(run, jnp.asarray(logits))


@pytest.mark.parametrize("smooth", SMP_SMOOTH)
@pytest.mark.parametrize(("name", "kind", "kw"), SMP_CASES)
def test_smp_smoothing_is_ours_unscaled(name, kind, kw, smooth, smp_results):
    """smp's ``smooth=s`` is our ``smooth=s`` (every class present, so smp's mask of
    classes absent from the labels does not apply; smp's Tversky ``gamma`` acts on the
    class mean, so it is left at 1)."""
    logits, labels = _smp_data()
    c = logits.shape[-1]
    assert len(np.unique(labels)) == c
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs = (probs / probs.sum(-1, keepdims=True)).astype(np.float64)
    onehot = np.eye(c)[labels]
    want = np.mean(1.0 - _smp_scores(probs, onehot, kind, smooth, **kw))
    got = smp_results[name, smooth]
    assert got.shape == ()
    np.testing.assert_allclose(got, want, rtol=1e-5)
