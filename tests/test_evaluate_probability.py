"""``jaxseg evaluate --metrics ece,auroc,ap`` on probability maps.

Every number of the JSON is compared with the library's functions of a
:class:`jaxseg.ProbabilityHistogram` built directly from the same arrays (all
pixels of all images at once), and AUROC / AP with scikit-learn on the
bin-quantised scores. The runs share one number of classes and bins, so the
update and the scores compile once for the whole file.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import _evaluate_probability
from jaxseg.cli import main

C, BINS, IGNORE = 3, 20, 255
SIZES = [(16, 20), (9, 7), (30, 30), (1, 1)]  # mixed sizes, one a single pixel


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _maps(seed: int, *, softmax: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, probabilities [H, W, C] float32, labels [H, W] uint8)`` of mixed sizes.

    Probabilities lean towards the label (a useful model, not noise), with values
    exactly on bin edges, 0 and 1; labels include the ignore id and one absent class
    in one image.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i, (h, w) in enumerate(SIZES):
        labels = rng.integers(0, C, (h, w))
        x = rng.normal(size=(h, w, C)) + 2.0 * np.eye(C)[labels]
        if softmax:
            p = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
        else:
            p = 1 / (1 + np.exp(-x))
        p = p.astype(np.float32)
        if h * w > 4:
            p.reshape(-1, C)[:3] = [[0.25, 0.25, 0.5], [0.0, 0.0, 1.0], [0.35, 0.6, 0.05]]
            labels.reshape(-1)[-3:] = IGNORE
        if i == 1:
            labels[labels == 2] = 0  # class 2 absent from this image
        out.append((f"case{i}", p, labels.astype(np.uint8)))
    return out


def _write(root: Path, maps, *, per_class: bool = False) -> tuple[Path, Path]:
    pred, lab = root / "pred", root / "labels"
    pred.mkdir(parents=True)
    lab.mkdir(parents=True)
    for name, p, labels in maps:
        if per_class:
            for k in range(C):
                np.save(pred / f"{name}_prob{k}.npy", p[..., k])
        else:
            np.save(pred / f"{name}.npy", p)
        np.save(lab / f"{name}.npy", labels)
    return pred, lab


def _api(maps, *, exclusive: bool) -> dict:
    """The library on all pixels at once (no padding, no streaming)."""
    p = np.concatenate([m[1].reshape(-1, C) for m in maps])
    y = np.concatenate([m[2].reshape(-1) for m in maps]).astype(np.int32)

    @jax.jit
    def scores(p, y):
        if exclusive:
            h = jaxseg.ProbabilityHistogram.from_probabilities(
                p, y, num_bins=BINS, ignore_index=IGNORE
            )
        else:
            h = jaxseg.ProbabilityHistogram.from_probabilities(
                p,
                (y[:, None] == jnp.arange(C)[None, :]).astype(jnp.int32),
                num_bins=BINS,
                exclusive=False,
                where=y != IGNORE,
            )
        threshold, best = jaxseg.best_threshold(h)
        out = {
            "ece": jaxseg.expected_calibration_error(h, average=None),
            "auroc": jaxseg.auroc(h, average=None),
            "ap": jaxseg.average_precision(h, average=None),
            "best_threshold": threshold,
            "best_dice": best,
            "dice_at_0.5": jaxseg.dice(h.at_threshold(0.5), average=None),
            "mean_ece": jaxseg.expected_calibration_error(h),
            "mean_auroc": jaxseg.auroc(h),
            "mean_ap": jaxseg.average_precision(h),
        }
        if exclusive:
            out["top_label_ece"] = jaxseg.expected_calibration_error(h, mode="top_label")
        return h, out

    h, out = scores(p, y)
    out["support"] = h.to_numpy()[1].sum(-1)
    return {k: np.asarray(v, np.float64) for k, v in out.items()} | {"p": p, "y": y}


def _check(report: dict, ref: dict) -> None:
    per_class = ["ece", "auroc", "ap", "best_threshold", "best_dice", "dice_at_0.5", "support"]
    for key in per_class:
        got = np.array([np.nan if r[key] is None else r[key] for r in report["classes"]])
        np.testing.assert_allclose(got, ref[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for key in ("mean_ece", "mean_auroc", "mean_ap", "top_label_ece"):
        if key in ref:
            assert report[key] == pytest.approx(float(ref[key]), rel=1e-6), key
    np.testing.assert_allclose(report["threshold_sweep"]["best_dice"], ref["best_dice"], rtol=1e-6)
    assert report["num_pixels"] == int((ref["y"] != IGNORE).sum())


def _sklearn(report: dict, ref: dict, *, exclusive: bool) -> None:
    """AUROC and AP against scikit-learn on ``floor(p B) / B`` (p = 1 in its own bin)."""
    metrics = pytest.importorskip("sklearn.metrics")
    keep = ref["y"] != IGNORE
    p, y = ref["p"][keep], ref["y"][keep]
    edges = (np.arange(BINS + 1) / BINS).astype(np.float32)
    q = np.searchsorted(edges, p, side="right") - 1  # an edge goes up
    for k in range(C):
        pos = y == k
        assert report["classes"][k]["auroc"] == pytest.approx(
            metrics.roc_auc_score(pos, q[:, k]), abs=1e-6
        )
        assert report["classes"][k]["ap"] == pytest.approx(
            metrics.average_precision_score(pos, q[:, k]), abs=1e-6
        )


def test_softmax_maps_equal_the_api(tmp_path, capsys):
    maps = _maps(0, softmax=True)
    pred, lab = _write(tmp_path, maps)
    out, png = tmp_path / "r.json", tmp_path / "rel.png"
    before = _evaluate_probability._update._cache_size()
    rc, text, err = _run(
        capsys, "evaluate", pred, lab, "-C", C, "--ignore-index", IGNORE,
        "--metrics", "ece,auroc,ap", "--bins", BINS, "--json", out, "--plot", png, "-q",
    )  # fmt: skip
    assert rc == 0, err
    # four sizes (one a single pixel) share one padded bucket: one compilation
    assert _evaluate_probability._update._cache_size() - before <= 1
    report = json.loads(out.read_text())
    ref = _api(maps, exclusive=True)
    _check(report, ref)
    _sklearn(report, ref, exclusive=True)
    assert report["exclusive"] is True and report["num_images"] == len(SIZES)
    assert len(report["reliability_top_label"]["count"]) == BINS
    assert "ECE, top-label" in text and "AUROC" in text
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as img:
        img.verify()

    # one file per class gives the same report
    pred2, lab2 = _write(tmp_path / "per_class", maps, per_class=True)
    out2 = tmp_path / "r2.json"
    rc, _, err = _run(
        capsys, "evaluate", pred2, lab2, "-C", C, "--ignore-index", IGNORE,
        "--metrics", "ece,auroc,ap", "--bins", BINS, "--prob-pattern", "{name}_prob{class}.npy",
        "--json", out2, "-q",
    )  # fmt: skip
    assert rc == 0, err
    report2 = json.loads(out2.read_text())
    assert report2["classes"] == report["classes"]


def test_sigmoid_maps_equal_the_api(tmp_path, capsys):
    maps = _maps(1, softmax=False)
    pred, lab = _write(tmp_path, maps)
    out = tmp_path / "r.json"
    rc, _, err = _run(
        capsys, "evaluate", pred, lab, "-C", C, "--ignore-index", IGNORE,
        "--metrics", "ece,auroc,ap", "--bins", BINS, "--independent", "--json", out, "-q",
    )  # fmt: skip
    assert rc == 0, err
    report = json.loads(out.read_text())
    ref = _api(maps, exclusive=False)
    _check(report, ref)
    _sklearn(report, ref, exclusive=False)
    assert report["exclusive"] is False and report["top_label_ece"] is None


def test_nifti_probabilities(tmp_path, capsys):
    """A 4-D NIfTI volume (class axis last) gives the report of the same array as .npy."""
    nib = pytest.importorskip("nibabel")
    maps = [(n, p[:, :, None, :], y[:, :, None]) for n, p, y in _maps(2, softmax=True)[:2]]
    reports = []
    for kind in ("npy", "nifti"):
        pred, lab = tmp_path / kind / "pred", tmp_path / kind / "labels"
        if kind == "npy":
            _write(tmp_path / kind, maps)
        else:
            pred.mkdir(parents=True)
            lab.mkdir(parents=True)
            for name, p, labels in maps:
                nib.save(nib.Nifti1Image(p, np.eye(4)), pred / f"{name}.nii.gz")
                nib.save(nib.Nifti1Image(labels, np.eye(4)), lab / f"{name}.nii.gz")
        out = tmp_path / f"{kind}.json"
        rc, _, err = _run(
            capsys, "evaluate", pred, lab, "-C", C, "--ignore-index", IGNORE,
            "--metrics", "ece,auroc,ap", "--bins", BINS, "--json", out, "-q",
        )  # fmt: skip
        assert rc == 0, err
        reports.append(json.loads(out.read_text()))
    assert reports[0]["classes"] == reports[1]["classes"]
    assert reports[0]["num_pixels"] == sum(int((m[2] != IGNORE).sum()) for m in maps)


def _bad(tmp_path, capsys, probs, *extra, labels=None, metrics="ece,auroc,ap"):
    pred, lab = tmp_path / "pred", tmp_path / "labels"
    pred.mkdir(exist_ok=True)
    lab.mkdir(exist_ok=True)
    np.save(pred / "a.npy", probs)
    np.save(lab / "a.npy", np.zeros((4, 5), np.uint8) if labels is None else labels)
    out = tmp_path / "r.json"
    rc, _, err = _run(
        capsys, "evaluate", pred, lab, "-C", C, "--metrics", metrics, "--json", out, *extra
    )
    assert not out.exists()
    return rc, err


GOOD = np.full((4, 5, C), 1 / C, np.float32)


@pytest.mark.parametrize(
    "probs, extra, metrics, message",
    [
        (
            np.where(np.eye(5, dtype=bool)[:4, :, None], np.nan, GOOD),
            (),
            None,
            "a.npy: 12 of 60 values are not probabilities",
        ),
        (GOOD + 1, (), None, "not probabilities in [0, 1] (first: 1.33"),
        (-GOOD, (), None, "not probabilities"),
        (np.full((4, 5, 2), 0.5, np.float32), (), None, "C = 3 channels"),
        (np.full((4, 5), 0.5, np.float32), (), None, "C = 3 channels"),
        (np.zeros((4, 5), np.uint8), (), None, "expected a float probability map"),
        (np.full((4, 6, C), 0.2, np.float32), (), None, "do not match the label's 4x5"),
        (GOOD[..., 0], (), "iou,dice", "non-integral float32 values (probability maps"),
        (GOOD, (), "ece,iou", "run jaxseg evaluate once for each"),
        (np.zeros((4, 5), np.uint8), ("--bins", "10"), "iou", "--bins applies to probability"),
        (GOOD, ("--per-image", "x.csv"), None, "--per-image"),
        (GOOD, ("--prob-pattern", "{name}.npy"), None, "{class} exactly once"),
    ],
)
def test_bad_input(tmp_path, capsys, probs, extra, metrics, message):
    rc, err = _bad(tmp_path, capsys, probs, *extra, metrics=metrics or "ece,auroc,ap")
    assert rc == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_labels_out_of_range_are_refused(tmp_path, capsys):
    labels = np.full((4, 5), 7, np.uint8)
    rc, err = _bad(tmp_path, capsys, GOOD, labels=labels)
    assert rc == 2 and "label value 7 is not a class id" in err
    assert _evaluate_probability.bucket(1) == _evaluate_probability.MIN_BUCKET
    assert _evaluate_probability.bucket((1 << 17) + 1) == 1 << 18


def test_binary_foreground_maps(tmp_path, capsys):
    """``--binary``: a foreground probability map (``[H, W]`` or ``[H, W, 1]``) against 0/255
    masks is the two-channel map ``[1 - p, p]`` against 0/1 labels."""
    reports = []
    for kind in ("foreground", "two_channels"):
        pred, lab = tmp_path / kind / "pred", tmp_path / kind / "labels"
        pred.mkdir(parents=True)
        lab.mkdir(parents=True)
        for i, (h, w) in enumerate(SIZES[:3]):
            case = np.random.default_rng(i)
            mask = case.random((h, w)) < 0.3
            p = np.clip(0.6 * mask + 0.5 * case.random((h, w)), 0, 1).astype(np.float32)
            if kind == "foreground":
                np.save(pred / f"c{i}.npy", p if i % 2 else p[..., None])
                np.save(lab / f"c{i}.npy", (mask * 255).astype(np.uint8))
            else:
                np.save(pred / f"c{i}.npy", np.stack([1 - p, p], -1))
                np.save(lab / f"c{i}.npy", mask.astype(np.uint8))
        out = tmp_path / f"{kind}.json"
        flags = ("--binary",) if kind == "foreground" else ("-C", 2, "--exclude-background")
        rc, _, err = _run(
            capsys, "evaluate", pred, lab, *flags, "--metrics", "ece,auroc,ap",
            "--bins", BINS, "--json", out, "-q",
        )  # fmt: skip
        assert rc == 0, err
        reports.append(json.loads(out.read_text()))
    binary, two = reports
    assert binary["classes"][1] == {**two["classes"][1], "name": "foreground"}
    assert binary["mean_ece"] == binary["classes"][1]["ece"] == two["mean_ece"]
    assert binary["classes"][1]["support"] > 0
