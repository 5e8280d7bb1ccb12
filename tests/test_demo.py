"""Tests of ``jaxseg demo``: the synthetic data, and a short training run that beats chance."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("matplotlib")

from jaxseg import _demo
from jaxseg.cli import main


def test_dataset_has_every_class_and_a_rare_one():
    x, y = _demo.make_dataset(64, size=32, seed=3)
    assert x.shape == (64, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (64, 32, 32) and y.dtype == np.int32
    share = np.bincount(y.ravel(), minlength=_demo.NUM_CLASSES) / y.size
    assert (share > 0).all()
    assert share[0] > 0.6  # background dominates
    assert share[4] < 0.5 * share[1:4].min()  # bars are rare
    x2, y2 = _demo.make_dataset(64, size=32, seed=3)
    np.testing.assert_array_equal(y, y2)  # seeded
    np.testing.assert_array_equal(x, x2)


def _parse(out: str) -> dict[str, float]:
    rows = {}
    for name in _demo.CLASS_NAMES:
        line = next(l for l in out.splitlines() if l.startswith(name + " "))
        rows[name] = float(line.split()[1])
    summary = {
        key: float(re.search(rf"{key}.*?(\d\.\d{{4}})$", out, re.M).group(1))
        for key in ("dataset-level", "image-wise", "pixel accuracy")
    }
    return {**rows, **summary}


def test_short_demo_beats_chance(tmp_path, capsys):
    out_png = tmp_path / "demo.png"
    rc = main(["demo", "--steps", "80", "--seed", "0", "--out", str(out_png), "-q"])
    out = capsys.readouterr().out
    assert rc == 0
    got = _parse(out)
    share = float(re.search(r"background (\d+\.\d)%", out).group(1)) / 100
    # Predicting background everywhere gives mIoU = share / C and pixel accuracy = share.
    chance_miou = share / _demo.NUM_CLASSES
    assert got["dataset-level"] > max(0.4, 2.5 * chance_miou), out
    assert got["image-wise"] > 0.3, out
    assert got["pixel accuracy"] > share, out
    for name in _demo.CLASS_NAMES[1:]:
        assert got[name] > 0.1, (name, out)  # every shape, the rare bars included, is found
    from PIL import Image

    with Image.open(out_png) as img:
        assert img.format == "PNG" and img.size[0] > 500
