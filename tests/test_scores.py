"""Score functions against NumPy loop references and scikit-learn.

Mapping to scikit-learn (``labels=range(C)``):

* ``empty=0.0`` equals ``zero_division=0`` for every score and average: a class
  with ``tp + fp + fn == 0`` scores 0 and counts in the macro mean, and any
  other zero denominator (precision of a class never predicted, recall of a
  class absent from the labels) scores 0 in both libraries.
* ``empty=NaN`` (the default) equals ``zero_division=np.nan`` for Dice / F1
  and F-beta (``beta > 0``), whose denominators vanish only for empty classes
  (``jaccard_score`` does not accept ``zero_division=np.nan``; IoU follows the
  same rule). For precision and recall they differ: scikit-learn leaves out every
  zero denominator, we score a non-empty class 0 (it has false negatives or
  false positives) and leave out only empty classes.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxseg
from jaxseg import ConfusionMatrix, _counts
from tests import reference as ref

AVERAGES = (None, "micro", "macro", "weighted")
SCORES = {
    "iou": {},
    "dice": {},
    "fbeta": {"beta": 2.0},
    "fbeta_half": {"beta": 0.5},
    "tversky": {"alpha": 0.7, "beta": 0.3},
    "precision": {},
    "recall": {},
}


def _call(name, state, **kw):
    params = dict(SCORES[name])
    fn = getattr(jaxseg, name.split("_")[0])
    return fn(state, **params, **kw)


def _ref(name, stats, counted, **kw):
    return ref.score(name.split("_")[0], *stats, counted, **SCORES[name], **kw)


def _state_from_matrix(m, ignore_classes=()):
    return ConfusionMatrix(
        counts=_counts.from_python_int(m),
        invalid=_counts.zeros(np.shape(m)[:-2]),
        num_classes=m.shape[-1],
        ignore_classes=tuple(ignore_classes),
    )


@st.composite
def matrices(draw):
    """A batch of matrices of one size and one ignore set (each with its own density):
    the scores of a batched state are one eager pass, whatever the batch size."""
    c = draw(st.sampled_from([1, 2, 3, 19, 200]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    densities = draw(st.lists(st.sampled_from([0.0, 0.02, 0.3, 1.0]), min_size=4, max_size=4))
    ms = []
    for density in densities:
        m = rng.integers(0, 50, (c, c)) * (rng.random((c, c)) < density)
        # some empty classes (no row and no column), some only predicted, some only labelled
        for k in range(c):
            kind = rng.integers(0, 6)
            if kind == 0:
                m[k, :] = 0
                m[:, k] = 0
            elif kind == 1:
                m[k, :] = 0
            elif kind == 2:
                m[:, k] = 0
        ms.append(m)
    ignored = draw(st.sampled_from(["none", "first", "some"]))
    if ignored == "none":
        ig = ()
    elif ignored == "first":
        ig = (0,)
    else:
        ig = tuple(sorted({int(x) for x in rng.integers(0, c, 3)}))
    return np.stack(ms).astype(np.int64), ig


def _close(got, want, msg):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-6, atol=0, err_msg=msg)


@settings(max_examples=6, deadline=None)
@given(matrices(), st.sampled_from([math.nan, 0.0, 1.0]))
def test_every_score_average_and_empty_matches_reference(case, empty):
    """Each example scores a batch of 4 matrices in one pass (24 matrices in all)."""
    ms, ig = case
    state = _state_from_matrix(ms, ig)
    counted = ref.counted_classes(ms.shape[-1], ig)
    got = {}
    for name in SCORES:
        for average in AVERAGES:
            got[name, average] = np.asarray(_call(name, state, average=average, empty=empty))
    got["pa"] = np.asarray(jaxseg.pixel_accuracy(state))
    got["ma"] = np.asarray(jaxseg.mean_accuracy(state, empty=empty))
    got["fw"] = np.asarray(jaxseg.frequency_weighted_iou(state, empty=empty))
    for weighting in ("square", "simple", "uniform"):
        got["gd", weighting] = np.asarray(
            jaxseg.generalized_dice(state, weighting=weighting, empty=empty)
        )
    for i, m in enumerate(ms):
        stats = ref.stats_from_matrix(m)
        case_msg = f"matrix {i} of C={m.shape[0]} ignore={ig} empty={empty}"
        for name in SCORES:
            for average in AVERAGES:
                want = _ref(name, stats, counted, average=average, empty=empty)
                _close(got[name, average][i], want, f"{name} average={average} {case_msg}")
        _close(got["pa"][i], ref.pixel_accuracy(*stats, counted), f"pixel_accuracy {case_msg}")
        _close(
            got["ma"][i],
            ref.score("recall", *stats, counted, average="macro", empty=empty),
            f"mean_accuracy {case_msg}",
        )
        _close(
            got["fw"][i],
            ref.score("iou", *stats, counted, average="weighted", empty=empty),
            f"frequency_weighted_iou {case_msg}",
        )
        for weighting in ("square", "simple", "uniform"):
            _close(
                got["gd", weighting][i],
                ref.generalized_dice(
                    stats[0], stats[1], stats[2], counted, weighting=weighting, empty=empty
                ),
                f"generalized_dice {weighting} {case_msg}",
            )


def test_scores_of_batched_states_are_per_image():
    rng = np.random.default_rng(4)
    ms = rng.integers(0, 9, (3, 4, 4))
    ms[1, 2, :] = 0
    ms[1, :, 2] = 0  # class 2 empty in image 1
    batched = _state_from_matrix(ms)
    for name in ("iou", "dice", "precision"):
        for average in AVERAGES:
            got = np.asarray(_call(name, batched, average=average))
            for i in range(3):
                want = _ref(name, ref.stats_from_matrix(ms[i]), np.ones(4, bool), average=average)
                _close(got[i], want, f"{name} {average} image {i}")


def test_empty_rule_per_class_and_all_empty():
    m = np.zeros((3, 3), np.int64)
    m[0, 0] = 4
    m[1, 0] = 2  # class 1 only labelled, class 2 empty
    s = _state_from_matrix(m)
    np.testing.assert_array_equal(s.to_numpy(), m)
    per = np.asarray(jaxseg.iou(s, average=None))
    assert per[1] == 0.0 and np.isnan(per[2])
    np.testing.assert_allclose(jaxseg.iou(s), (4 / 6 + 0) / 2, rtol=1e-6)
    np.testing.assert_allclose(jaxseg.iou(s, empty=1.0), (4 / 6 + 0 + 1) / 3, rtol=1e-6)
    zero = _state_from_matrix(np.zeros((3, 3), np.int64))
    for average in ("micro", "macro", "weighted"):
        assert np.isnan(float(jaxseg.iou(zero, average=average)))
    assert float(jaxseg.iou(zero, average="micro", empty=1.0)) == 1.0
    assert np.isnan(float(jaxseg.generalized_dice(zero)))
    assert float(jaxseg.generalized_dice(zero, empty=1.0)) == 1.0


def test_identities_between_scores():
    rng = np.random.default_rng(7)
    s = _state_from_matrix(rng.integers(0, 20, (6, 6)))
    i, d = np.asarray(jaxseg.iou(s, average=None)), np.asarray(jaxseg.dice(s, average=None))
    np.testing.assert_allclose(d, 2 * i / (1 + i), rtol=1e-6)
    np.testing.assert_allclose(jaxseg.fbeta(s, beta=1.0, average=None), d, rtol=1e-6)
    np.testing.assert_allclose(jaxseg.tversky(s, average=None), d, rtol=1e-6)
    np.testing.assert_allclose(jaxseg.tversky(s, alpha=1.0, beta=1.0, average=None), i, rtol=1e-6)
    np.testing.assert_allclose(
        jaxseg.pixel_accuracy(s), jaxseg.recall(s, average="micro"), rtol=1e-6
    )


# -- scikit-learn ----------------------------------------------------------------


def _label_maps(seed, c=6, n=3000):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c - 2, n)  # classes c-2 and c-1 never labelled
    preds = np.where(rng.random(n) < 0.5, labels, rng.integers(0, c - 1, n))  # c-1 empty
    preds[preds == 1] = 0  # class 1 never predicted
    return preds.astype(np.int32), labels.astype(np.int32)


@pytest.mark.parametrize("seed", [0, 1])
def test_against_sklearn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    c = 6
    preds, labels = _label_maps(seed, c)
    cm = ConfusionMatrix.from_predictions(preds, labels, num_classes=c)
    np.testing.assert_array_equal(
        cm.to_numpy(), metrics.confusion_matrix(labels, preds, labels=range(c))
    )
    pairs = {
        "iou": (jaxseg.iou, metrics.jaccard_score, {}),
        "dice": (jaxseg.dice, metrics.f1_score, {}),
        "fbeta": (jaxseg.fbeta, metrics.fbeta_score, {"beta": 2.0}),
        "precision": (jaxseg.precision, metrics.precision_score, {}),
        "recall": (jaxseg.recall, metrics.recall_score, {}),
    }
    for name, (ours, theirs, kw) in pairs.items():
        for average in AVERAGES:
            want = theirs(labels, preds, labels=range(c), average=average, zero_division=0, **kw)
            _close(ours(cm, average=average, empty=0.0, **kw), want, f"{name} {average} empty=0")
            if name in ("dice", "fbeta"):  # jaccard_score does not take zero_division=nan
                want = theirs(
                    labels, preds, labels=range(c), average=average, zero_division=np.nan, **kw
                )
                _close(ours(cm, average=average, **kw), want, f"{name} {average} empty=nan")
    _close(jaxseg.pixel_accuracy(cm), metrics.accuracy_score(labels, preds), "accuracy")
    # precision: class 1 is labelled but never predicted, so it scores 0 here and
    # is dropped by zero_division=nan in scikit-learn
    ours = np.asarray(jaxseg.precision(cm, average=None))
    theirs = metrics.precision_score(
        labels, preds, labels=range(c), average=None, zero_division=np.nan
    )
    assert ours[1] == 0.0 and np.isnan(theirs[1])


def test_ignored_classes_match_sklearn_label_subset():
    metrics = pytest.importorskip("sklearn.metrics")
    preds, labels = _label_maps(3, 6)
    cm = ConfusionMatrix.from_predictions(preds, labels, num_classes=6, ignore_index=2)
    keep = labels != 2
    kept = [0, 1, 3, 4, 5]
    for average in ("micro", "macro", "weighted"):
        want = metrics.jaccard_score(
            labels[keep], preds[keep], labels=kept, average=average, zero_division=0
        )
        _close(jaxseg.iou(cm, average=average, empty=0.0), want, f"iou {average}")


# -- class weights ---------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["inverse", "inverse_sqrt", "median", "enet"])
def test_class_weights_match_reference(scheme):
    rng = np.random.default_rng(0)
    for counts in ([600, 300, 100, 0], rng.integers(0, 10**6, 19), [5], [0, 0, 7, 7]):
        got = jaxseg.class_weights_from_counts(jnp.asarray(counts), scheme=scheme)
        _close(got, ref.class_weights(counts, scheme), f"{scheme} {counts}")
    preds, labels = _label_maps(0, 6)
    cm = ConfusionMatrix.from_predictions(preds, labels, num_classes=6)
    support = np.bincount(labels, minlength=6)
    _close(
        jaxseg.class_weights_from_counts(cm, scheme=scheme),
        ref.class_weights(support, scheme),
        f"{scheme} from state",
    )


def test_inverse_weights_equal_sklearn_balanced():
    utils = pytest.importorskip("sklearn.utils.class_weight")
    labels = np.random.default_rng(1).integers(0, 5, 1000)
    want = utils.compute_class_weight("balanced", classes=np.arange(5), y=labels)
    got = jaxseg.class_weights_from_counts(np.bincount(labels, minlength=5), scheme="inverse")
    _close(got, want, "balanced")


def _per_image_gd(preds, labels, c, weighting):
    return np.array(
        [
            float(
                jaxseg.generalized_dice(
                    ConfusionMatrix.from_predictions(p, y, num_classes=c), weighting=weighting
                )
            )
            for p, y in zip(preds, labels, strict=True)
        ]
    )


def test_generalized_dice_against_torchmetrics():
    tm = pytest.importorskip("torchmetrics.segmentation")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    c = 4
    labels = rng.integers(0, c, (2, 16, 16))  # every class present in every image
    preds = np.where(rng.random(labels.shape) < 0.6, labels, rng.integers(0, c, labels.shape))
    for weighting in ("square", "simple", "linear"):
        metric = tm.GeneralizedDiceScore(
            num_classes=c, include_background=True, weight_type=weighting, input_format="index"
        )
        metric.update(torch.as_tensor(preds), torch.as_tensor(labels))
        ours = _per_image_gd(preds, labels, c, {"linear": "uniform"}.get(weighting, weighting))
        # torchmetrics scores each image, then averages the images
        np.testing.assert_allclose(ours.mean(), float(metric.compute()), rtol=1e-5)


def test_generalized_dice_absent_class_against_monai():
    """A class absent from the labels takes the largest weight of the others (MONAI's rule).

    (torchmetrics 1.9 fills such weights with a maximum taken over the batch
    axis instead, so it is compared above only where every class is present.)
    """
    monai_metrics = pytest.importorskip("monai.metrics")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    c = 4
    labels = rng.integers(0, c - 1, (3, 12, 12))  # class 3 never labelled
    preds = np.where(rng.random(labels.shape) < 0.6, labels, rng.integers(0, c, labels.shape))

    def onehot(x):
        return torch.as_tensor(np.moveaxis(np.eye(c)[x], -1, 1))

    for weighting in ("square", "simple", "uniform"):
        want = monai_metrics.compute_generalized_dice(
            onehot(preds),
            onehot(labels),
            include_background=True,
            weight_type=weighting,
            sum_over_classes=True,
        )
        ours = _per_image_gd(preds, labels, c, weighting)
        np.testing.assert_allclose(ours, np.asarray(want).reshape(-1), rtol=1e-5)


# -- the one-vs-rest and agreement scores against scikit-learn -----------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_new_scores_equal_scikit_learn(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    c = 5
    labels = rng.integers(0, c - 1, 400)  # class 4 never labelled
    preds = np.where(rng.random(400) < 0.6, labels, rng.integers(0, c, 400))
    cm = ConfusionMatrix.from_predictions(preds, labels, num_classes=c)
    spec, npv = [], []
    for k in range(c):
        t, p = labels == k, preds == k
        spec.append(metrics.recall_score(t, p, pos_label=0, zero_division=0))
        npv.append(metrics.precision_score(t, p, pos_label=0, zero_division=0))
    np.testing.assert_allclose(jaxseg.specificity(cm, average=None), spec, rtol=1e-6)
    np.testing.assert_allclose(jaxseg.negative_predictive_value(cm, average=None), npv, rtol=1e-6)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want_ba = metrics.balanced_accuracy_score(labels, preds)
    np.testing.assert_allclose(jaxseg.balanced_accuracy(cm), want_ba, rtol=1e-6)
    np.testing.assert_allclose(
        jaxseg.matthews_corrcoef(cm), metrics.matthews_corrcoef(labels, preds), atol=1e-6
    )
    np.testing.assert_allclose(
        jaxseg.cohen_kappa(cm), metrics.cohen_kappa_score(labels, preds), atol=1e-6
    )
    # one-vs-rest per class: the binary scikit-learn scores of each class
    mcc = [metrics.matthews_corrcoef(labels == k, preds == k) for k in range(c)]
    kappa = [metrics.cohen_kappa_score(labels == k, preds == k) for k in range(c)]
    np.testing.assert_allclose(jaxseg.matthews_corrcoef(cm, average=None), mcc, atol=1e-6)
    np.testing.assert_allclose(jaxseg.cohen_kappa(cm, average=None), kappa, atol=1e-6)
    # binary / multilabel: per channel, the binary scikit-learn scores
    y = rng.integers(0, 2, (300, 3))
    p = np.where(rng.random((300, 3)) < 0.7, y, 1 - y)
    bs = jaxseg.BinaryStats.from_predictions(p, y)
    for k in range(3):
        np.testing.assert_allclose(
            jaxseg.balanced_accuracy(bs, average=None)[k],
            metrics.balanced_accuracy_score(y[:, k], p[:, k]),
            rtol=1e-6,
        )
        np.testing.assert_allclose(
            jaxseg.matthews_corrcoef(bs, average=None)[k],
            metrics.matthews_corrcoef(y[:, k], p[:, k]),
            atol=1e-6,
        )
        np.testing.assert_allclose(
            jaxseg.specificity(bs, average=None)[k],
            metrics.recall_score(y[:, k], p[:, k], pos_label=0),
            rtol=1e-6,
        )
    with pytest.raises(ValueError, match="multiclass"):
        jaxseg.cohen_kappa(bs)


def test_agreement_scores_at_the_edges():
    """Perfect agreement, a constant prediction, and float32 on a dataset-size matrix."""
    metrics = pytest.importorskip("sklearn.metrics")
    perfect = _state_from_matrix(np.diag([5, 3, 0]).astype(np.int64))
    np.testing.assert_allclose(jaxseg.matthews_corrcoef(perfect), 1.0)
    np.testing.assert_allclose(jaxseg.cohen_kappa(perfect), 1.0)
    constant = _state_from_matrix(np.array([[4, 0], [3, 0]], np.int64))
    assert float(jaxseg.matthews_corrcoef(constant)) == 0.0  # undefined: 0, as scikit-learn
    assert float(jaxseg.cohen_kappa(constant)) == 0.0
    # Cityscapes-size counts (about 2**31 pixels) stay accurate in float32
    rng = np.random.default_rng(3)
    m = rng.integers(0, 2**26, (19, 19)) + np.diag(rng.integers(2**28, 2**29, 19))
    state = _state_from_matrix(m.astype(np.int64))
    t, p = m.sum(1).astype(np.float64), m.sum(0).astype(np.float64)
    s, c = float(m.sum()), float(np.trace(m))
    want = (c * s - t @ p) / np.sqrt((s * s - p @ p) * (s * s - t @ t))
    np.testing.assert_allclose(jaxseg.matthews_corrcoef(state), want, rtol=1e-5)
    del metrics


# -- degenerate images: one class, void predictions, empty channels ------------------


def _quiet(fn, *args, **kwargs):
    """A scikit-learn call with its undefined-metric warnings silenced."""
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_agreement_of_one_class_images_equals_sklearn():
    """A background-only image predicted perfectly: MCC 0 and kappa NaN, at every size.

    Dividing counts by their total left float32 residues (``47 * (1/47) != 1``)
    whose ratio was 0.5 for 355 of the pixel counts 1…3000.
    """
    metrics = pytest.importorskip("sklearn.metrics")
    n = np.arange(1, 3001)
    m = np.zeros((n.size, 2, 2), np.int64)
    m[:, 0, 0] = n
    state = _state_from_matrix(m)
    mcc, kappa = np.asarray(jaxseg.matthews_corrcoef(state)), np.asarray(jaxseg.cohen_kappa(state))
    for k in (1, 47, 121, 484, 1936, 3000):  # 11², 22², 44² … pixels
        y = np.zeros(k, np.int64)
        assert mcc[k - 1] == _quiet(metrics.matthews_corrcoef, y, y)
        assert np.isnan(_quiet(metrics.cohen_kappa_score, y, y))
    np.testing.assert_array_equal(mcc, 0.0)
    assert np.isnan(kappa).all()
    # one label class, predictions spread over three: MCC and kappa are exactly 0
    rng = np.random.default_rng(0)
    spread = np.zeros((500, 3, 3), np.int64)
    spread[:, 0, :] = rng.integers(0, 200, (500, 3))
    spread[:, 0, 0] += 1
    for name, fn in (("mcc", jaxseg.matthews_corrcoef), ("kappa", jaxseg.cohen_kappa)):
        got = np.asarray(fn(_state_from_matrix(spread)))
        np.testing.assert_array_equal(got, 0.0, err_msg=name)
    # one predicted class, labels spread: the same
    np.testing.assert_array_equal(
        jaxseg.matthews_corrcoef(_state_from_matrix(np.swapaxes(spread, -1, -2))), 0.0
    )
    labels = np.repeat(np.arange(3), spread[7, 0])
    preds = np.zeros_like(labels)
    assert _quiet(metrics.cohen_kappa_score, labels, preds) == 0.0
    np.testing.assert_array_equal(
        jaxseg.cohen_kappa(_state_from_matrix(np.swapaxes(spread, -1, -2)))[7], 0.0
    )


def test_one_vs_rest_kappa_of_a_class_that_fills_the_image_is_nan():
    metrics = pytest.importorskip("sklearn.metrics")
    y = np.zeros(64, np.int64)
    cm = ConfusionMatrix.from_predictions(y, y, num_classes=3)
    want = [_quiet(metrics.cohen_kappa_score, y == k, y == k) for k in range(3)]
    got = np.asarray(jaxseg.cohen_kappa(cm, average=None))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # all undefined
    assert np.isnan(jaxseg.cohen_kappa(cm, average="macro"))  # not 0.0
    # micro pools the 2x2 tables of all three classes: the empty ones add true negatives
    assert float(jaxseg.cohen_kappa(cm, average="micro")) == 1.0
    wm = [_quiet(metrics.matthews_corrcoef, y == k, y == k) for k in range(3)]
    np.testing.assert_array_equal(jaxseg.matthews_corrcoef(cm, average=None)[:1], wm[:1])
    # two classes predicted perfectly: every one-vs-rest kappa is 1
    y2 = np.repeat([0, 1], 32)
    cm2 = ConfusionMatrix.from_predictions(y2, y2, num_classes=3)
    assert float(jaxseg.cohen_kappa(cm2, average="macro")) == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_multiclass_mcc_counts_void_predictions_as_one_more_class(seed):
    """A void id (255) is one more predicted column, as scikit-learn sees it."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 300)
    preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 4, 300))
    preds = np.where(rng.random(300) < 0.15, 255, preds)
    cm = ConfusionMatrix.from_predictions(preds, labels, num_classes=4)
    assert int(np.asarray(cm.void_to_numpy()).sum()) == int((preds == 255).sum())
    np.testing.assert_allclose(
        jaxseg.matthews_corrcoef(cm), metrics.matthews_corrcoef(labels, preds), atol=1e-6
    )
    np.testing.assert_allclose(
        jaxseg.cohen_kappa(cm), metrics.cohen_kappa_score(labels, preds), atol=1e-6
    )
    # an ignored class id inside [0, C) is its own predicted column too
    keep = labels != 2
    cm_ig = ConfusionMatrix.from_predictions(preds, labels, num_classes=4, ignore_index=2)
    np.testing.assert_allclose(
        jaxseg.matthews_corrcoef(cm_ig),
        metrics.matthews_corrcoef(labels[keep], preds[keep]),
        atol=1e-6,
    )


def test_multilabel_balanced_accuracy_of_channels_without_positives_equals_sklearn():
    """A channel with no positive labels scores its specificity (not the mean with 0)."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    n_states, n, c = 120, 40, 3
    y = (rng.random((n_states, n, c)) < rng.random((n_states, 1, c)) * 0.3).astype(np.int32)
    y[:, :, 0] = 0  # channel 0 never labelled
    y[::3, :, 1] = 0
    p = np.where(rng.random(y.shape) < 0.85, y, 1 - y)
    p[::4] = y[::4]  # some perfect predictions
    bs = jax_vmap_binary(p, y)
    got = np.asarray(jaxseg.balanced_accuracy(bs, average=None))
    for i in range(n_states):
        for k in range(c):
            want = _quiet(metrics.balanced_accuracy_score, y[i, :, k], p[i, :, k])
            np.testing.assert_allclose(got[i, k], want, rtol=1e-6, err_msg=f"{i}, {k}")
    assert (got[::4, 0] == 1.0).all()  # a perfect empty prediction scores 1, not 0.5


def jax_vmap_binary(p, y):
    import jax

    return jax.vmap(jaxseg.BinaryStats.from_predictions)(jnp.asarray(p), jnp.asarray(y))


# -- one chain: host NumPy float64 statistics score exactly as the JAX states -------

HOST_SCORES = {
    "iou": jaxseg.iou,
    "dice": jaxseg.dice,
    "fbeta": lambda s, **k: jaxseg.fbeta(s, beta=2.0, **k),
    "tversky": lambda s, **k: jaxseg.tversky(s, alpha=0.3, beta=0.7, **k),
    "precision": jaxseg.precision,
    "recall": jaxseg.recall,
    "specificity": jaxseg.specificity,
    "negative_predictive_value": jaxseg.negative_predictive_value,
    "balanced_accuracy": jaxseg.balanced_accuracy,
    "matthews_corrcoef": jaxseg.matthews_corrcoef,
    "cohen_kappa": jaxseg.cohen_kappa,
}


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("ignore", [None, 1, 255])
def test_host_statistics_score_like_the_state(include_background, ignore):
    from jaxseg._classwise import HostStats

    rng = np.random.default_rng(7)
    c = 4
    labels = rng.integers(0, c, (3, 50))
    labels[0, :10] = 255
    preds = np.where(rng.random((3, 50)) < 0.6, labels, rng.integers(0, c + 1, (3, 50)))
    preds[preds == c] = 250  # void predictions
    labels[2] = 0  # a background-only image
    preds[2] = 0
    import jax

    cm = jax.vmap(
        lambda p, y: ConfusionMatrix.from_predictions(p, y, num_classes=c, ignore_index=ignore)
    )(preds, labels)
    table = np.concatenate([cm.to_numpy(), cm.void_to_numpy()[..., None]], axis=-1)
    host = HostStats.from_table(table, ignored=() if ignore is None else (ignore,))
    for name, fn in HOST_SCORES.items():
        averages = ["macro", "weighted", None]
        if name not in ("balanced_accuracy",):
            averages.append("micro")
        for average in averages:
            kw = {"average": average, "include_background": include_background}
            want = np.asarray(fn(cm, **kw), np.float64)
            got = fn(host, **kw)
            assert isinstance(got, np.ndarray | np.floating), (name, type(got))
            np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7, err_msg=f"{name} {kw}")
    for fn in (jaxseg.pixel_accuracy, jaxseg.mean_accuracy, jaxseg.frequency_weighted_iou):
        kw = {"include_background": include_background}
        np.testing.assert_allclose(fn(host, **kw), fn(cm, **kw), rtol=2e-6)
    if include_background:
        for fn in (jaxseg.matthews_corrcoef, jaxseg.cohen_kappa):
            np.testing.assert_allclose(fn(host), fn(cm), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(jaxseg.generalized_dice(host), jaxseg.generalized_dice(cm), 2e-6)


def test_host_scoring_does_not_import_jax():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from jaxseg import _classwise, _scores\n"
        "h = _classwise.HostStats.from_table(np.array([[3, 1, 0], [0, 2, 1]]))\n"
        "print(_scores.iou(h), _scores.matthews_corrcoef(h), 'jax' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False", out.stdout


def test_host_scoring_while_another_thread_imports_jax(monkeypatch):
    """Host scoring asks whether an input is a JAX array; while another thread is still
    importing JAX, ``sys.modules["jax"]`` has no ``Array`` yet: the answer is no (it
    raised an AttributeError, which stopped a command-line run)."""
    import sys
    import types

    from jaxseg import _classwise, _lazy
    from jaxseg import _scores as scores

    h = _classwise.HostStats.from_table(np.array([[3, 1, 0], [0, 2, 1]]))
    want = np.asarray(scores.iou(h, average=None))
    monkeypatch.setitem(sys.modules, "jax", types.ModuleType("jax"))  # partly imported
    assert not _lazy.is_jax_array(np.zeros(2))
    np.testing.assert_array_equal(np.asarray(scores.iou(h, average=None)), want)
