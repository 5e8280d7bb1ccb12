"""ClassCounts: the O(C) state equals ConfusionMatrix's statistics and scores."""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh
from jax.sharding import PartitionSpec as P

import jaxseg
from jaxseg import _counts, _state
from jaxseg._classwise import HostStats
from tests import reference as ref

C = 6
VOID = 255


def _cases(num_cases, pixels, num_classes, seed):
    """Label / prediction batches with void predictions, invalid labels and ignore ids."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, (num_cases, pixels))
    preds = np.where(
        rng.random((num_cases, pixels)) < 0.6,
        labels,
        rng.integers(0, num_classes, (num_cases, pixels)),
    )
    preds[rng.random(preds.shape) < 0.05] = VOID  # void predictions: misses
    labels[rng.random(labels.shape) < 0.05] = VOID  # ignored or invalid, by case
    labels[rng.random(labels.shape) < 0.03] = -1  # invalid unless ignored
    # degenerate cases: background only, one class predicted everywhere, all void
    labels[0], preds[0] = 0, 0
    preds[1] = 2
    preds[2] = VOID
    labels[3] = VOID
    where = rng.random((num_cases, pixels)) < 0.9
    where[4] = False
    return preds.astype(np.int32), labels.astype(np.int32), where


#: ``ignore_index`` options: none (255 then counts as invalid), void, void and a class id.
IGNORES = (None, VOID, (1, VOID))

AVERAGES = (None, "micro", "macro", "weighted")
#: Every score with its option: ``(function, keyword, values)``.
SCORES = (
    (jaxseg.iou, "average", AVERAGES),
    (jaxseg.dice, "average", AVERAGES),
    (functools.partial(jaxseg.fbeta, beta=2.0), "average", AVERAGES),
    (functools.partial(jaxseg.tversky, alpha=0.3, beta=0.7), "average", AVERAGES),
    (jaxseg.precision, "average", AVERAGES),
    (jaxseg.recall, "average", AVERAGES),
    (jaxseg.specificity, "average", AVERAGES),
    (jaxseg.negative_predictive_value, "average", AVERAGES),
    (jaxseg.balanced_accuracy, "average", (None, "macro", "weighted")),
    (jaxseg.matthews_corrcoef, "average", ("multiclass", *AVERAGES)),
    (jaxseg.cohen_kappa, "average", ("multiclass", *AVERAGES)),
    (jaxseg.generalized_dice, "weighting", ("square", "simple", "uniform")),
    (jaxseg.pixel_accuracy, None, (None,)),
    (jaxseg.mean_accuracy, None, (None,)),
    (jaxseg.frequency_weighted_iou, None, (None,)),
)


def _both(ignore_index, preds, labels, where):
    """Batched (vmapped) ClassCounts and ConfusionMatrix of the same cases, one compile each."""

    def make(cls):
        def one(p, y, w):
            return cls.from_predictions(p, y, num_classes=C, ignore_index=ignore_index, where=w)

        return jax.jit(jax.vmap(one))(preds, labels, where)

    return make(jaxseg.ClassCounts), make(jaxseg.ConfusionMatrix)


@functools.partial(jax.jit, static_argnames=("cls", "num_classes", "ignore_index"))
def _count(cls, preds, labels, *, num_classes, ignore_index=None, where=None):
    """``cls.from_predictions`` jitted whole (eager calls compile each op separately)."""
    return cls.from_predictions(
        preds, labels, num_classes=num_classes, ignore_index=ignore_index, where=where
    )


@jax.jit
def _stats(state):
    """``tp, fp, fn, tn, num_invalid`` of a state, in one compiled call."""
    return {k: getattr(state, k) for k in ("tp", "fp", "fn", "tn", "num_invalid")}


@jax.jit
def _jax_scores(state):
    """A few scores on the device path, in one compiled call."""
    return jaxseg.iou(state), jaxseg.matthews_corrcoef(state), jaxseg.cohen_kappa(state)


def _host(state):
    """The statistics of a state as float64 NumPy arrays, with its flags (scored on the host)."""
    stats = _stats(state)
    return HostStats(
        *(np.asarray(stats[k], np.float64) for k in ("tp", "fp", "fn", "tn")),
        counted_classes=state.counted_classes,
        exclusive=type(state).exclusive,
    )


def _same(a, b, what):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)


@pytest.mark.parametrize("ignore_index", IGNORES, ids=("none", "void", "class+void"))
def test_every_score_equals_confusion_matrix(ignore_index):
    preds, labels, where = _cases(12, 64, C, seed=1)
    cc, cm = _both(ignore_index, preds, labels, where)
    assert cc.counted_classes.tolist() == cm.counted_classes.tolist()
    stats_cc, stats_cm = _stats(cc), _stats(cm)
    for name in ("tp", "fp", "fn", "tn", "num_invalid"):
        _same(stats_cc[name], stats_cm[name], name)
    _same(cc.label_counts(), cm.label_counts(), "label_counts")
    _same(cc.void_to_numpy(), cm.void_to_numpy(), "void")
    # The sweep runs the score functions in float64 NumPy on the statistics read
    # from each state (the JAX path compiles every score: minutes on 2 cores);
    # the JAX path on the states themselves is checked below.
    host_cc, host_cm = _host(cc), _host(cm)
    checked = 0
    for include_background in (True, False):
        kw = {"include_background": include_background}
        for fn, option, values in SCORES:
            for value in values:
                if value == "multiclass" and not include_background:
                    continue  # a statistic of the whole matrix: no include_background
                args = {} if option is None else {option: value}
                want = fn(host_cm, **args, **kw)
                _same(fn(host_cc, **args, **kw), want, f"{fn} {args} {kw}")
                checked += 1
    assert checked == 2 * (8 * 4 + 3 + 2 * 4 + 3 + 3) + 2
    if ignore_index == (1, VOID):
        for a, b in zip(_jax_scores(cc), _jax_scores(cm), strict=True):
            _same(a, b, "device scores")
    # the per-case states are the reference's, pixel by pixel
    for k in range(len(preds)):
        m, void, invalid = ref.confusion(
            preds[k], labels[k], C, ignore_index, where[k], with_void=True
        )
        want = [m.sum(1) + void, m.sum(0), np.diagonal(m), void]
        _same(cc.counts_to_numpy()[k], np.stack(want), f"case {k}")
        assert int(_counts.to_int64_numpy(cc.invalid)[k]) == invalid


@pytest.mark.parametrize("c", [1000, 3688])
def test_many_classes_small_images(c):
    from sklearn.metrics import cohen_kappa_score, matthews_corrcoef

    rng = np.random.default_rng(c)
    labels = rng.integers(-2, c + 2, (2, 48, 48))
    labels[0] = rng.integers(0, 40, (48, 48)) * (c // 40)  # few classes, spread over the ids
    preds = np.where(rng.random(labels.shape) < 0.5, labels, rng.integers(-1, c + 1, labels.shape))
    s = _count(jaxseg.ClassCounts, preds, labels, num_classes=c, ignore_index=c + 1)
    # NumPy reference by bincounts (the loop reference is too slow at this size)
    y, p = labels.ravel(), preds.ravel()
    valid = y != c + 1
    inr = valid & (y >= 0) & (y < c)
    p_in = (p >= 0) & (p < c)
    want = np.stack(
        [
            np.bincount(y[inr], minlength=c),
            np.bincount(p[inr & p_in], minlength=c),
            np.bincount(y[inr & (p == y)], minlength=c),
            np.bincount(y[inr & ~p_in], minlength=c),
        ]
    )
    _same(s.counts_to_numpy(), want, "counts")
    assert float(s.num_invalid) == int((valid & ~inr).sum())
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(s))
    assert state_bytes == (4 * c + 1) * 3 * 4  # O(C): 177 kB at C = 3688
    # multiclass MCC and kappa from the per-class sums equal scikit-learn's on the
    # valid pixels (void predictions are one more column, as scikit-learn sees one id)
    y_ok, p_ok = y[inr], np.where(p_in, p, c)[inr]
    want_mcc, want_kappa = matthews_corrcoef(y_ok, p_ok), cohen_kappa_score(y_ok, p_ok)
    assert abs(jaxseg.matthews_corrcoef(_host(s)) - want_mcc) < 1e-12  # float64 on the host
    assert abs(jaxseg.cohen_kappa(_host(s)) - want_kappa) < 1e-12


def test_wide_integer_inputs_are_range_checked():
    big = np.array([0, 1, 2**32 + 1, 1, -(2**40)], np.int64)
    labels = np.array([0, 1, 1, 2**32 + 1, 1], np.int64)
    s = jaxseg.ClassCounts.from_predictions(big, labels, num_classes=3)
    m, void, invalid = ref.confusion(big, labels, 3, with_void=True)
    _same(s.counts_to_numpy(), [m.sum(1) + void, m.sum(0), np.diagonal(m), void], "counts")
    assert s.void_to_numpy().tolist() == [0, 2, 0]  # 2**32 + 1 is no class 1
    assert float(s.num_invalid) == invalid == 1


def test_counts_past_2_to_the_40_via_merges():
    preds, labels, _ = _cases(6, 64, C, seed=3)
    preds, labels = preds[5], labels[5]  # a random case
    s = _count(jaxseg.ClassCounts, preds, labels, num_classes=C, ignore_index=VOID)
    cm = _count(jaxseg.ConfusionMatrix, preds, labels, num_classes=C, ignore_index=VOID)
    double = jax.jit(lambda a: a + a)
    for _ in range(40):
        s, cm = double(s), double(cm)
    base = _count(jaxseg.ClassCounts, preds, labels, num_classes=C, ignore_index=VOID)
    got = s.counts_to_numpy()
    assert got.max() >= 2**40
    _same(got, base.counts_to_numpy().astype(object) * 2**40, "counts")
    for name in ("tp", "fp", "fn", "tn"):  # the same exact counts, rounded alike
        _same(_stats(s)[name], _stats(cm)[name], name)
    # a host-built state merges with it exactly
    host = jaxseg.ClassCounts.from_counts(base.counts_to_numpy() * 3, ignore_index=VOID)
    _same((s + host).counts_to_numpy(), base.counts_to_numpy() * (2**40 + 3), "from_counts")


def test_batch_split_vmap_reduce_and_scan_are_exact():
    preds, labels, where = _cases(8, 100, C, seed=4)

    @jax.jit
    def all_ways(p, y, w):
        kw = {"num_classes": C, "ignore_index": VOID}
        whole = jaxseg.ClassCounts.from_predictions(p, y, where=w, **kw)
        halves = jaxseg.ClassCounts.from_predictions(
            p[:3], y[:3], where=w[:3], **kw
        ) + jaxseg.ClassCounts.from_predictions(p[3:], y[3:], where=w[3:], **kw)
        per_image = jax.vmap(
            lambda a, b, m: jaxseg.ClassCounts.from_predictions(a, b, where=m, **kw)
        )(p, y, w)

        def step(state, batch):
            return state + jaxseg.ClassCounts.from_predictions(
                *batch[:2], where=batch[2], **kw
            ), None

        scanned, _ = jax.lax.scan(step, jaxseg.ClassCounts.empty(C, ignore_index=VOID), (p, y, w))
        return whole, halves, per_image, scanned

    whole, halves, per_image, scanned = all_ways(preds, labels, where)
    assert per_image.batch_shape == (8,)
    for other in (halves, per_image.reduce(), scanned):
        _same(other.counts_to_numpy(), whole.counts_to_numpy(), "counts")
        _same(other.num_invalid, whole.num_invalid, "invalid")
    # per-image scores from the batched state equal scoring each image alone
    host = HostStats.from_class_counts(per_image.counts_to_numpy(), ignored=(VOID,))
    np.testing.assert_allclose(jaxseg.iou(per_image), jaxseg.iou(host), rtol=1e-6)
    # empty is the identity; merge commutes
    _same((whole + jaxseg.ClassCounts.empty(C, ignore_index=VOID)).counts, whole.counts, "id")
    _same((halves + whole).counts, (whole + halves).counts, "commutes")


def test_psum_under_shard_map_moves_o_of_c():
    c = 3688
    mesh = Mesh(np.array(jax.devices()[:1]), ("d",), axis_types=(AxisType.Auto,))
    preds, labels, _ = _cases(6, 32, 50, seed=5)

    def local(p, y):
        return jaxseg.ClassCounts.from_predictions(p, y, num_classes=c, ignore_index=VOID).psum("d")

    f = jax.shard_map(local, mesh=mesh, in_specs=(P("d"), P("d")), out_specs=P())
    jaxpr = jax.make_jaxpr(f)(preds, labels)
    moved = [
        int(np.prod(var.aval.shape))
        for eqn in jaxpr.eqns[0].params["jaxpr"].eqns
        if eqn.primitive.name.startswith("psum")
        for var in eqn.invars
    ]
    assert sum(moved) == (4 * c + 1) * _counts.NUM_LIMBS  # words per psum: O(C), not O(C^2)
    out = jax.jit(f)(preds, labels)
    want = _count(jaxseg.ClassCounts, preds, labels, num_classes=c, ignore_index=VOID)
    _same(out.counts_to_numpy(), want.counts_to_numpy(), "psum")


def test_from_logits_clu_protocol_and_compute():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(2, 5, 5, C)).astype(np.float32)
    labels = rng.integers(0, C, (2, 5, 5))
    labels[0, 0] = VOID
    mask = rng.random((2, 5, 5)) < 0.8
    cc = jaxseg.ClassCounts.from_logits(logits, labels, ignore_index=VOID, where=mask)
    m, void, _ = ref.confusion(logits.argmax(-1), labels, C, VOID, mask, with_void=True)
    _same(cc.counts_to_numpy(), [m.sum(1) + void, m.sum(0), np.diagonal(m), void], "counts")
    per_image = jax.jit(
        jax.vmap(lambda x, y, w: jaxseg.ClassCounts.from_logits(x, y, ignore_index=VOID, where=w))
    )(logits, labels, mask)
    assert per_image.batch_shape == (2,)
    _same(per_image.reduce().counts, cc.counts, "vmap")
    Metric = jaxseg.ClassCounts.configure(C, ignore_index=VOID)
    assert Metric is jaxseg.ClassCounts.configure(C, ignore_index=[VOID])
    update = Metric.from_model_output(logits=logits, labels=labels, mask=mask)
    state = Metric.empty().merge(update)
    _same(state.counts, cc.counts, "clu")
    host = HostStats.from_class_counts(cc.counts_to_numpy(), ignored=(VOID,))
    np.testing.assert_allclose(state.compute(), jaxseg.iou(host, average="macro"), rtol=1e-6)
    _same(  # exact host label counts, as for a confusion matrix
        jaxseg.class_weights_from_counts(cc, scheme="median"),
        jaxseg.class_weights_from_counts(m.sum(1) + void, scheme="median"),
        "class weights",
    )


def test_a_jitted_merge_loop_traces_once():
    traces = []

    @jax.jit
    def step(state, p, y):
        traces.append(1)
        return state + jaxseg.ClassCounts.from_predictions(p, y, num_classes=C)

    state = jaxseg.ClassCounts.empty(C)
    for k in range(3):
        state = step(state, np.full(4, k, np.int32), np.full(4, k, np.int32))
    assert len(traces) == 1
    assert state.counts_to_numpy()[2].tolist() == [4, 4, 4, 0, 0, 0]


def test_what_it_cannot_serve_and_bad_input_are_named_errors():
    s = jaxseg.ClassCounts.empty(4)
    with pytest.raises(TypeError, match=r"no matrix view.*counts_to_numpy"):
        s.to_numpy()
    with pytest.raises(TypeError, match="can only merge ClassCounts with ClassCounts"):
        s.merge(jaxseg.ConfusionMatrix.empty(4))
    with pytest.raises(ValueError, match="different `num_classes`: 4 and 5"):
        s + jaxseg.ClassCounts.empty(5)
    with pytest.raises(ValueError, match="different ignored classes"):
        s + jaxseg.ClassCounts.empty(4, ignore_index=0)
    with pytest.raises(TypeError, match="`labels`"):
        jaxseg.ClassCounts.from_predictions(
            np.zeros(3, int), np.zeros(3, np.float32), num_classes=4
        )
    with pytest.raises(ValueError, match=r"`preds`.*`labels`"):
        jaxseg.ClassCounts.from_predictions(np.zeros(3, int), np.zeros(4, int), num_classes=4)
    with pytest.raises(ValueError, match="num_classes"):
        jaxseg.ClassCounts.from_predictions(np.zeros(3, int), np.zeros(3, int), num_classes=0)
    with pytest.raises(ValueError, match=r"shape \[..., 4, C\]"):
        jaxseg.ClassCounts.from_counts(np.zeros((3, 4), int))
    with pytest.raises(ValueError, match="hits \\+ void <= labels"):
        jaxseg.ClassCounts.from_counts(np.array([[1], [1], [1], [1]]))
    with pytest.raises(ValueError, match=r"`counts` must have shape \(\.\.\., 4, 4, 3\)"):
        dataclasses.replace(s, counts=jnp.zeros((4, 5, 3), jnp.uint32))
    with pytest.raises(ValueError, match="not batched"):
        s.reduce()
    assert isinstance(s, _state.Statistics)


# -- command line: above PER_CLASS_ABOVE classes, per-class counts ----------------


def _cli_pairs(root, c):
    """Three pairs: two int32 ``.npy`` volumes with ids up to ``c``, one 8-bit PNG."""
    from PIL import Image

    rng = np.random.default_rng(7)
    (root / "P").mkdir()
    (root / "L").mkdir()
    for k, shape in enumerate([(12, 20), (9, 31)]):
        label = rng.integers(0, c, shape)
        label[rng.random(shape) < 0.1] = 65535  # ignored
        pred = np.where(rng.random(shape) < 0.5, label, rng.integers(0, c + 5, shape))  # voids
        np.save(root / "L" / f"v{k}.npy", label.astype(np.int32))
        np.save(root / "P" / f"v{k}.npy", pred.astype(np.int32))
    label = rng.integers(0, 200, (16, 16)).astype(np.uint8)  # the 8-bit counting path
    pred = np.where(rng.random((16, 16)) < 0.5, label, rng.integers(0, 256, (16, 16)))
    Image.fromarray(label).save(root / "L" / "p.png")
    Image.fromarray(pred.astype(np.uint8)).save(root / "P" / "p.png")


def test_command_line_counts_per_class_above_the_threshold(tmp_path, capsys, monkeypatch):
    from jaxseg import _evaluate
    from jaxseg.cli import main

    c = _evaluate.PER_CLASS_ABOVE + 76
    _cli_pairs(tmp_path, c)
    argv = ["evaluate", str(tmp_path / "P"), str(tmp_path / "L"), "-C", str(c)]
    argv += ["--ignore-index", "65535", "--per-image", "-"]
    assert main([*argv, "--json", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().err  # the table goes to stderr when a file is stdout
    assert f"{c} classes (above {_evaluate.PER_CLASS_ABOVE}): counted per class" in out
    per_class = json.loads((tmp_path / "a.json").read_text())
    # the same run through the C x (C + 1) table
    monkeypatch.setattr(_evaluate, "PER_CLASS_ABOVE", c)
    assert main([*argv, "--json", str(tmp_path / "b.json")]) == 0
    table = json.loads((tmp_path / "b.json").read_text())
    assert "counted per class" not in capsys.readouterr().err
    assert per_class.pop("per_class_counts") is True and "confusion_matrix" not in per_class
    matrix = np.array(table.pop("confusion_matrix"))
    assert matrix.shape == (c, c) and matrix.sum() > 0
    assert per_class == table  # every score, per class, per image and summary, and supports
    # --plot needs the matrix: refused before any work, one line, exit 2
    monkeypatch.setattr(_evaluate, "PER_CLASS_ABOVE", 1024)
    rc = main([*argv[:-2], "--plot", str(tmp_path / "m.png")])
    err = capsys.readouterr().err
    assert rc == 2 and "--plot draws the confusion matrix" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.png").exists()


def test_host_per_class_statistics_equal_the_table():
    from jaxseg._classwise import HostStats

    rng = np.random.default_rng(8)
    table = rng.integers(0, 50, (3, C, C + 1))  # [N, C, C + 1], void column last
    rows = np.stack(
        [
            table.sum(-1),
            table[..., :C].sum(-2),
            np.diagonal(table[..., :C], axis1=-2, axis2=-1),
            table[..., C],
        ],
        -2,
    )
    a = HostStats.from_class_counts(rows, ignored=(2,))
    b = HostStats.from_table(table, ignored=(2,))
    for name in ("tp", "fp", "fn", "tn", "counted_classes"):
        _same(getattr(a, name), getattr(b, name), name)
    with pytest.raises(ValueError, match=r"\[..., 4, C\]"):
        HostStats.from_class_counts(table)


def test_sits_on_the_shared_algebra():
    for method in ("merge", "__add__", "reduce", "psum"):
        assert getattr(jaxseg.ClassCounts, method) is getattr(_state.StateAlgebra, method)
    kinds = {f.name: f.metadata.get("kind") for f in dataclasses.fields(jaxseg.ClassCounts)}
    assert kinds == {"counts": "limbs", "invalid": "limbs", "num_classes": None,
                     "ignore_classes": None}  # fmt: skip
