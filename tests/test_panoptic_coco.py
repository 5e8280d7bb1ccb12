"""PanopticStats.from_panoptic against cityscapesScripts' panoptic evaluation and torchmetrics.

cityscapesScripts' ``evalPanopticSemanticLabeling`` is panopticapi's ``pq_compute``;
it runs in-process here (one process) on folders in the real Cityscapes panoptic
layout written by :mod:`tests.panoptic_layout`: the reference as
``createPanopticImgs.py`` writes it, the prediction as COCO panoptic results
(RGB-encoded ids, renumbered at random). Its per-image ``tp, fp, fn`` and its
All / Things / Stuff / per-category PQ, SQ, RQ must equal jaxseg's: the counts
exactly, the scores to 1e-12 (the host path computes each pair's IoU as
panopticapi does, a float64 ratio of integers; the jitted path's float32 IoU sums
are compared to float32 rounding, its counts exactly).
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

import jaxseg
from jaxseg import _panoptic, _panoptic_rules
from tests import panoptic_layout as pl

CATS = pl.CITYSCAPES_CATEGORIES
CAT_IDS = [c["id"] for c in CATS]
GROUPS = ("All", "Things", "Stuff")


def crafted_case() -> pl.PanopticCase:
    """One 24 x 40 image where each of panopticapi's rules decides a count.

    road 7 (stuff), person 24 and car 26 (things). Expected: car tp 1, fp 2, fn 1;
    person tp 1, fp 1; road tp 1.
    """
    label = np.full((24, 40), 7000, np.int64)
    label[:, 30:] = 0  # VOID
    label[0:2, 25:30] = 26001  # 10 px beside VOID
    label[10:20, 0:10] = 26000  # a car crowd region
    label[20:24, 10:15] = 26002  # missed: a false negative
    label[2:6, 10:13] = 24001
    pred = np.full((24, 40), 7000, np.int64)
    pred[0:2, 25:36] = 26005  # 10 px on 26001 + 12 px VOID: IoU 1 without VOID (10/22 with)
    pred[10:14, 0:10] = 26006  # 40 px crowd + 30 px road: 4/7 in crowd, not a FP
    pred[6:9, 0:10] = 26006
    pred[14:20, 4] = 26007  # 6 px crowd + 6 px VOID + 8 px road: 12/20, not a FP
    pred[14:20, 30] = 26007
    pred[21:23, 20:24] = 26007
    pred[14:18, 5] = 26008  # 4 px crowd + 6 px road: 4/10, a FP
    pred[21:24, 25:27] = 26008
    pred[14:20, 6:8] = 24009  # a person in the car crowd: crowd is per category, a FP
    pred[2:6, 10:13] = 24001
    pred[23, 0] = 26010  # one pixel: a FP
    return pl.PanopticCase("lindau_000099_000019", label, pred)


def degenerate_cases() -> list[pl.PanopticCase]:
    """A reference all VOID (every prediction lies in VOID: no FP), a prediction all
    VOID (every reference segment a FN), and one stuff category on both sides."""
    void = np.zeros((24, 40), np.int64)
    some = np.full((24, 40), 21000, np.int64)
    some[5:9, 3:8] = 24001
    some[10:12, 20:30] = 26000
    return [
        pl.PanopticCase("munster_000097_000019", void, some),
        pl.PanopticCase("munster_000098_000019", some, void),
        pl.PanopticCase(
            "munster_000099_000019", np.full_like(void, 23000), np.full_like(void, 23000)
        ),
    ]


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _cityscapes_scripts(paths):
    """Per image ``{name: counts [3, K]}`` and the dataset result of cityscapesScripts."""
    ev = pytest.importorskip(
        "cityscapesscripts.evaluation.evalPanopticSemanticLabeling",
        reason="cityscapesScripts is not installed",
    )
    gt = json.loads(paths["gt_json"].read_text())
    pred = {a["image_id"]: a for a in json.loads(paths["pred_json"].read_text())["annotations"]}
    categories = {c["id"]: c for c in gt["categories"]}
    total = ev.PQStat()
    per_image = {}
    for ann in gt["annotations"]:  # one image at a time, in this process
        stat = _quiet(
            ev.pq_compute_single_core,
            0,
            [(ann, pred[ann["image_id"]])],
            str(paths["gt_folder"]),
            str(paths["pred_folder"]),
            categories,
        )
        per_image[ann["image_id"]] = np.array(
            [[getattr(stat[c], k) for c in CAT_IDS] for k in ("tp", "fp", "fn")], np.int64
        )
        total += stat
    return per_image, ev.average_pq(total, categories)


def _host_coco(paths):
    """jaxseg's host path on the COCO files: ``{name: (counts, sums)}``."""
    gt = pl.read_coco_panoptic(paths["gt_json"], paths["gt_folder"])
    pred = pl.read_coco_panoptic(paths["pred_json"], paths["pred_folder"])
    out = {}
    for name, (label_ids, label_info) in gt.items():
        pred_ids, pred_info = pred[name]
        out[name] = _panoptic.panoptic_image_counts(
            pred_ids,
            label_ids,
            categories=CATS,
            pred_segments={i: s["category_id"] for i, s in pred_info.items()},
            label_segments={i: (s["category_id"], s["iscrowd"]) for i, s in label_info.items()},
        )
    return out


def _assert_summary(ours, ref, tol):
    for g in GROUPS:
        assert ours[g]["n"] == ref[g]["n"], g
        for k in ("pq", "sq", "rq"):
            assert abs(ours[g][k] - ref[g][k]) <= tol, (g, k, ours[g][k], ref[g][k])
    for cid in CAT_IDS:
        for k in ("pq", "sq", "rq"):
            mine, theirs = ours["per_class"][cid][k], ref["per_class"][cid][k]
            if math.isnan(mine):  # no segment: jaxseg says NaN, panopticapi 0 (both leave it out)
                assert theirs == 0.0
            else:
                assert abs(mine - theirs) <= tol, (cid, k, mine, theirs)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """36 pairs (32 random, the crafted one, 3 degenerate ones), written twice: with
    some crowd regions split into two COCO segments of one category (``coco``) and
    without (``ids``)."""
    cases = [*pl.random_cases(32, seed=7), crafted_case(), *degenerate_cases()]
    assert sum(bool(c.split_crowd) for c in cases) >= 5
    split = pl.write_cityscapes_panoptic(tmp_path_factory.mktemp("coco"), cases, seed=1)
    plain = [pl.PanopticCase(c.name, c.label_ids, c.pred_ids) for c in cases]
    whole = pl.write_cityscapes_panoptic(tmp_path_factory.mktemp("ids"), plain, seed=2)
    return cases, split, whole


def test_host_path_equals_cityscapes_scripts_on_coco_files(folders):
    """Per image tp/fp/fn exactly and PQ/SQ/RQ (All, Things, Stuff, per category) to
    1e-12, on the PNG + JSON files, with crowd regions split into two segments."""
    _, paths, _ = folders
    ref_images, ref = _cityscapes_scripts(paths)
    ours = _host_coco(paths)
    assert ours.keys() == ref_images.keys() and len(ours) == 36
    for name, (counts, _) in ours.items():
        np.testing.assert_array_equal(counts, ref_images[name], err_msg=name)
    counts = sum(c for c, _ in ours.values())
    sums = sum(s for _, s in ours.values())
    _assert_summary(
        jaxseg.panoptic_summary(_panoptic_rules.host_state(counts, sums, CATS)), ref, 1e-12
    )
    # the data exercise every rule: crowd, VOID, tiny segments, absent categories
    assert ref["All"]["n"] == 19 and counts[1].sum() > 0 and counts[2].sum() > 0
    crafted = ours["lindau_000099_000019"][0]
    expected = np.zeros((3, len(CATS)), np.int64)
    for cid, (tp, fp, fn) in {7: (1, 0, 0), 24: (1, 1, 0), 26: (1, 2, 1)}.items():
        expected[:, CAT_IDS.index(cid)] = (tp, fp, fn)
    np.testing.assert_array_equal(crafted, expected)
    void_label, void_pred, one_stuff = (ours[c.name][0] for c in degenerate_cases())
    assert not void_label.any()  # predictions all in VOID: ignored
    assert void_pred[2].sum() == 2 and not void_pred[:2].any()  # crowd: no FN
    assert one_stuff[0].sum() == 1 and not one_stuff[1:].any()


def test_one_crowd_region_per_category(folders):
    """panopticapi keeps one crowd region per category and image (a dict keyed by the
    category: the last listed wins). The host path on COCO segment lists reproduces it;
    id maps (``category * 1000``) have one crowd region per category by construction,
    so there the whole region counts. The two differ exactly on the split images."""
    cases, split, _ = folders
    ours = _host_coco(split)
    differ = 0
    for case in cases:
        by_ids = _panoptic.panoptic_image_counts(case.pred_ids, case.label_ids, categories=CATS)
        coco = ours[case.name]
        np.testing.assert_array_equal(by_ids[0][[0, 2]], coco[0][[0, 2]])  # tp, fn agree
        if not case.split_crowd:
            np.testing.assert_array_equal(by_ids[0], coco[0])
            np.testing.assert_allclose(by_ids[1], coco[1], rtol=0, atol=1e-12)
        else:  # a predicted segment in the first crowd segment alone may become a FP
            assert (coco[0][1] >= by_ids[0][1]).all()
            differ += int((coco[0][1] > by_ids[0][1]).any())
    assert differ >= 1
    # by hand: a crowd region listed as two segments A then B; a prediction inside A
    label = np.array([[5, 5, 6, 6, 0, 0]])
    pred = np.array([[9, 9, 0, 0, 0, 0]])
    cats = [{"id": 26, "name": "car", "isthing": 1}]
    in_a = _panoptic.panoptic_image_counts(
        pred, label, categories=cats, pred_segments={9: 26}, label_segments={5: (26, 1), 6: (26, 1)}
    )[0]
    in_last = _panoptic.panoptic_image_counts(
        pred, label, categories=cats, pred_segments={9: 26}, label_segments={6: (26, 1), 5: (26, 1)}
    )[0]
    assert in_a[:, 0].tolist() == [0, 1, 0] and in_last[:, 0].tolist() == [0, 0, 0]


def test_from_panoptic_equals_host_path_and_cityscapes_scripts(folders):
    """The jitted ``from_panoptic`` on id maps (one compilation, two halves merged;
    a ``psum`` over the batch equals ``reduce``) has the host path's counts exactly
    and its IoU sums to float32 rounding; the host path on id maps equals
    cityscapesScripts to 1e-12."""
    import jax

    cases, _, paths = folders
    _, ref = _cityscapes_scripts(paths)
    host = [
        _panoptic.panoptic_image_counts(c.pred_ids, c.label_ids, categories=CATS) for c in cases
    ]
    counts, sums = sum(c for c, _ in host), sum(s for _, s in host)
    _assert_summary(
        jaxseg.panoptic_summary(_panoptic_rules.host_state(counts, sums, CATS)), ref, 1e-12
    )

    pred = np.stack([c.pred_ids for c in cases])
    label = np.stack([c.label_ids for c in cases])
    halves = [
        jaxseg.PanopticStats.from_panoptic(pred[s], label[s], categories=CATS, max_segments=64)
        for s in (slice(0, 18), slice(18, 36))
    ]
    per_image = np.concatenate([h.to_numpy() for h in halves])
    np.testing.assert_array_equal(per_image, np.stack([c for c, _ in host]))
    state = halves[0].reduce().merge(halves[1].reduce())
    summed = jax.vmap(lambda x: x.psum("batch"), axis_name="batch")(halves[1])
    np.testing.assert_array_equal(summed.to_numpy()[0], halves[1].reduce().to_numpy())
    np.testing.assert_array_equal(state.to_numpy(), counts)
    np.testing.assert_allclose(np.asarray(state.sums), sums, rtol=2e-6)
    assert not np.asarray(state.num_overflow).any()
    assert state.category_ids == tuple(CAT_IDS) and sum(state.things) == 8
    _assert_summary(jaxseg.panoptic_summary(state), ref, 1e-6)
    # the object scores: subset= selects thing / stuff categories, as the summary's means
    for name, subset in (("All", "all"), ("Things", "things"), ("Stuff", "stuff")):
        got = float(jaxseg.panoptic_quality(state, subset=subset))
        assert abs(got - ref[name]["pq"]) < 1e-6
        got = float(jaxseg.recognition_quality(state, subset=subset))
        assert abs(got - ref[name]["rq"]) < 1e-6


def test_torchmetrics_panoptic_quality(folders):
    """torchmetrics' PanopticQuality on crowd-free cases to 1e-6. Its rules differ from
    panopticapi's where the *prediction* has VOID (it also leaves the reference's overlap
    with predicted VOID out of the union, and drops false negatives mostly under
    predicted VOID) and it merges the instances of a stuff category: the cases have
    neither (crowd and predicted VOID replaced by stuff or VOID)."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    tm = pytest.importorskip("torchmetrics.detection", reason="torchmetrics is not installed")
    cases, _, _ = folders
    label = np.stack([c.label_ids for c in cases[::3]])  # 12 images: torchmetrics loops slowly
    pred = np.stack([c.pred_ids for c in cases[::3]])
    thing = np.isin(label // 1000, pl.THINGS)
    label = np.where(thing & (label % 1000 == 0), 0, label)  # crowd -> VOID
    pred = np.where(pred == 0, 7000, pred)  # no predicted VOID
    host = [
        _panoptic.panoptic_image_counts(p, t, categories=CATS)
        for p, t in zip(pred, label, strict=True)
    ]
    state = _panoptic_rules.host_state(sum(c for c, _ in host), sum(s for _, s in host), CATS)
    metric = tm.PanopticQuality(
        things=set(pl.THINGS), stuffs=set(pl.STUFF), return_sq_and_rq=True, return_per_class=True
    )

    def pairs(ids):
        return torch.from_numpy(np.stack([ids // 1000, ids % 1000], -1))

    metric.update(pairs(pred), pairs(label))
    theirs = metric.compute().reshape(-1, 3).numpy()  # things sorted, then stuffs sorted
    order = [CAT_IDS.index(c) for c in sorted(pl.THINGS) + sorted(pl.STUFF)]
    scores = (jaxseg.panoptic_quality, jaxseg.segmentation_quality, jaxseg.recognition_quality)
    ours = np.stack([f(state, average=None)[order] for f in scores], -1)
    present = ~np.isnan(ours[:, 0])  # torchmetrics: 0 for a category with no segment
    assert present.sum() >= 15
    np.testing.assert_allclose(ours[present], theirs[present], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(theirs[~present], 0.0)
    # its averages: the mean over categories with segments, as jaxseg's macro average
    means = theirs[present].mean(0)
    np.testing.assert_allclose([f(state) for f in scores], means, rtol=0, atol=1e-6)


def test_errors_name_the_argument():
    cats = [{"id": 1, "name": "road", "isthing": 0}, {"id": 2, "name": "car", "isthing": 1}]
    good = np.array([[[1000, 2001]]])
    bad = np.array([[[1000, 5001]]])
    with pytest.raises(ValueError, match=r"`pred_ids`.*category"):
        jaxseg.PanopticStats.from_panoptic(bad, good, categories=cats)
    with pytest.raises(ValueError, match=r"`label_ids`.*category"):
        jaxseg.PanopticStats.from_panoptic(good, bad, categories=cats)
    with pytest.raises(ValueError, match="`label_ids`"):
        _panoptic.panoptic_image_counts(good[0], bad[0], categories=cats)
    with pytest.raises(ValueError, match=r"`pred_ids`.*segment list"):
        _panoptic.panoptic_image_counts(good[0], good[0], categories=cats, pred_segments={1000: 1})
    with pytest.raises(ValueError, match=r"`pred_ids`.*absent"):
        _panoptic.panoptic_image_counts(
            good[0], good[0], categories=cats, pred_segments={1000: 1, 2001: 2, 2002: 2}
        )
    with pytest.raises(TypeError, match="`label_ids`"):
        _panoptic.panoptic_image_counts(good[0], good[0] * 1.0, categories=cats)
    with pytest.raises(ValueError, match="repeated ids"):
        jaxseg.PanopticStats.from_panoptic(good, good, categories=cats + cats[:1])
    with pytest.raises(TypeError, match="`categories\\[0\\]`"):
        jaxseg.PanopticStats.from_panoptic(good, good, categories=[{"id": 1}])
    with pytest.raises(TypeError, match="`categories`"):
        jaxseg.PanopticStats.from_panoptic(good, good, categories="road")
    with pytest.raises(ValueError, match="`label_divisor`"):
        jaxseg.PanopticStats.from_panoptic(good, good, categories=cats, label_divisor=0)
    with pytest.raises(ValueError, match="`pred_ids` must have a batch axis"):
        jaxseg.PanopticStats.from_panoptic(good[0, 0], good[0, 0], categories=cats)
    semantic = jaxseg.PanopticStats.empty(3)
    with pytest.raises(ValueError, match="`subset='things'`"):
        jaxseg.panoptic_quality(semantic, subset="things")
    with pytest.raises(ValueError, match="`subset`"):
        jaxseg.panoptic_quality(semantic, subset="thing")


def test_checked_unknown_category_and_overflow():
    """Under jit an unknown category or a segment past ``max_segments`` is a checkify
    error with :func:`jaxseg.checked`; without it, the overflow is counted (as false
    positives / negatives) and unknown segments are left out."""
    import jax

    cats = [{"id": 1, "name": "road", "isthing": 0}, {"id": 2, "name": "car", "isthing": 1}]
    f = jax.jit(
        lambda p, r: jaxseg.PanopticStats.from_panoptic(p, r, categories=cats, max_segments=3)
    )
    fine = np.array([[[1000, 1000, 2001, 2001, 2000, 0]]])  # 2000: crowd, 0: VOID
    unknown = np.array([[[1000, 1000, 2001, 2001, 9001, 0]]])
    over = np.array([[[1000, 1000, 2001, 2001, 2002, 2003]]])
    s = f(over, fine)  # 2002 lies in the crowd region; 2003 is past the cap of 3: a FP
    np.testing.assert_array_equal(s.to_numpy()[0], [[1, 1], [0, 1], [0, 0]])
    np.testing.assert_array_equal(np.asarray(s.num_overflow), [[0, 1]])
    s = f(unknown, fine)  # 9001 left out: not a false positive
    np.testing.assert_array_equal(s.to_numpy()[0], [[1, 1], [0, 0], [0, 0]])
    checked = jaxseg.checked(f)
    checked(fine, fine)
    with pytest.raises(ValueError, match=r"`pred_ids`.*not in `categories`"):
        checked(unknown, fine)
    with pytest.raises(ValueError, match="past `max_segments=3`"):
        checked(over, fine)
