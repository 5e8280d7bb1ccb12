"""Input and output safety of ``jaxseg evaluate``: outputs never overwrite inputs, readers,
options that describe the inputs (``--spacing``, ``--label-map``), and clean exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxseg import _io, _report
from jaxseg.cli import main

pytest.importorskip("PIL")
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _pngs(root: Path, n: int = 2) -> tuple[Path, Path]:
    """``p/`` and ``l/`` with ``n`` pairs of small 8-bit maps of two classes."""
    rng = np.random.default_rng(0)
    p, l = root / "p", root / "l"
    p.mkdir()
    l.mkdir()
    for i in range(n):
        label = (rng.random((6, 7)) < 0.5).astype(np.uint8)
        pred = np.where(rng.random((6, 7)) < 0.8, label, 1 - label).astype(np.uint8)
        Image.fromarray(label).save(l / f"x{i}.png")
        Image.fromarray(pred).save(p / f"x{i}.png")
    return p, l


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(f): (f.read_bytes(), f.stat().st_mtime_ns)
        for f in sorted(root.rglob("*"))
        if f.is_file() and not f.is_symlink()
    }


# -- 1. an output never names an input ----------------------------------------------


def _case_label(root, p, l):
    return ["--json", l / "x0.png"], l / "x0.png"


def _case_prediction(root, p, l):
    return ["--csv", p / "x1.png"], p / "x1.png"


def _case_prediction_through_symlink(root, p, l):
    # the prediction is a link to a file kept elsewhere; the output names that file
    real = root / "store" / "x1.png"
    real.parent.mkdir()
    (p / "x1.png").rename(real)
    (p / "x1.png").symlink_to(real)
    return ["--plot", real], real


def _case_output_is_a_symlink_to_an_input(root, p, l):
    link = root / "report.json"
    link.symlink_to(l / "x1.png")
    return ["--json", link], link


def _case_hardlink(root, p, l):
    hard = root / "per_image.csv"
    os.link(l / "x0.png", hard)
    return ["--per-image", hard], hard


def _case_label_map_json(root, p, l):
    spec = root / "map.json"
    spec.write_text('{"0": 0, "1": 1}')
    return ["--label-map", spec, "--json", spec], spec


def _case_class_names(root, p, l):
    names = root / "names.txt"
    names.write_text("bg\nfg\n")
    return ["--class-names", names, "--csv", names], names


def _case_same_output_twice(root, p, l):
    out = root / "r.out"
    return ["--json", out, "--csv", out], out


def _case_same_output_through_a_relative_path(root, p, l):
    out = root / "r.out"
    return ["--json", out, "--per-image", root / "p" / ".." / "r.out"], out


OUTPUT_CASES = {
    f.__name__.removeprefix("_case_"): f
    for f in (
        _case_label,
        _case_prediction,
        _case_prediction_through_symlink,
        _case_output_is_a_symlink_to_an_input,
        _case_hardlink,
        _case_label_map_json,
        _case_class_names,
        _case_same_output_twice,
        _case_same_output_through_a_relative_path,
    )
}


@pytest.mark.parametrize("case", sorted(OUTPUT_CASES))
def test_output_naming_an_input_exits_2_before_any_work(tmp_path, capsys, monkeypatch, case):
    p, l = _pngs(tmp_path)
    argv, named = OUTPUT_CASES[case](tmp_path, p, l)
    before = _snapshot(tmp_path)
    reads = []
    real_read = _io.read_label_map
    monkeypatch.setattr(
        _io, "read_label_map", lambda *a, **k: reads.append(a) or real_read(*a, **k)
    )
    rc, _, err = _run(capsys, "evaluate", p, l, "-C", 2, *argv)
    line = _one_line(err)
    assert rc == 2, err
    assert str(named) in line or os.path.basename(named) in line
    flag = next(
        a for a in argv if str(a).startswith("--") and a not in ("--label-map", "--class-names")
    )
    assert flag in line
    assert reads == []  # refused before any label map was decoded
    assert _snapshot(tmp_path) == before  # nothing written, nothing replaced
    assert not list(tmp_path.rglob("*.tmp"))


def test_outputs_that_do_not_name_inputs_still_work(tmp_path, capsys):
    """An existing report is replaced; '-' twice is refused; a file beside the inputs is fine."""
    p, l = _pngs(tmp_path)
    (tmp_path / "r.json").write_text("old")
    rc, _, err = _run(
        capsys, "evaluate", p, l, "-C", 2, "--json", tmp_path / "r.json", "--csv", l / "r.csv"
    )
    assert rc == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["num_images"] == 2
    assert "iou" in (l / "r.csv").read_text()
    rc, out, err = _run(capsys, "evaluate", p, l, "-C", 2, "--json", "-", "--csv", "-")
    assert rc == 2 and "--csv" in _one_line(err) and out == ""


# -- 2. bilevel PNGs ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "P", "I;16", "1"])
def test_png_modes_read_as_written(tmp_path, mode):
    """Every PNG mode Pillow decodes a single-channel integer PNG into (no PNG is mode I)."""
    arr = np.array([[0, 1, 2], [3, 200, 255]])
    if mode == "1":
        arr = arr % 2
        img = Image.fromarray(arr.astype(bool))
    elif mode == "P":
        img = Image.fromarray(arr.astype(np.uint8), mode="L").convert("P")
        img.putpalette([v for i in range(256) for v in (255 - i, i, 7)])
    elif mode == "I;16":
        arr[0, 0] = 1000
        img = Image.fromarray(arr.astype(np.uint16))
    else:
        img = Image.fromarray(arr.astype(np.uint8))
    img.save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as check:
        assert check.mode == mode
    got = _io.read_label_map(tmp_path / "a.png").values
    np.testing.assert_array_equal(got, arr)
    assert got.dtype.kind in "iu" and (mode not in ("L", "P", "1") or got.dtype == np.uint8)


def test_mode1_prediction_and_label_score_one(tmp_path, capsys):
    """``Image.fromarray(bool_array)`` writes mode 1: read as 0/1, as class ids."""
    rng = np.random.default_rng(1)
    for d in ("p", "l"):
        (tmp_path / d).mkdir()
    for i in range(2):
        mask = rng.random((9, 13)) < 0.4
        Image.fromarray(mask).save(tmp_path / "p" / f"m{i}.png")
        Image.fromarray(mask).save(tmp_path / "l" / f"m{i}.png")
    rc, _, err = _run(
        capsys, "evaluate", tmp_path / "p", tmp_path / "l", "-C", 2, "--json", tmp_path / "r.json"
    )
    assert rc == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["miou_dataset"] == 1.0 and report["pixel_accuracy"] == 1.0


def test_string_label_array_is_refused_naming_the_file(tmp_path, capsys):
    for d in ("p", "l"):
        (tmp_path / d).mkdir()
    np.save(tmp_path / "p" / "a.npy", np.zeros((4, 4), np.uint8))
    np.save(tmp_path / "l" / "a.npy", np.full((4, 4), "a", dtype="<U1"))
    rc, _, err = _run(capsys, "evaluate", tmp_path / "p", tmp_path / "l", "-C", 2)
    assert rc == 2 and str(tmp_path / "l" / "a.npy") in _one_line(err)


# -- 3. --help ----------------------------------------------------------------------


def test_help_lists_every_metric(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    missing = [name for name in _report.METRICS if name not in text]
    assert missing == []


# -- 5. --spacing -------------------------------------------------------------------


def _square_pair(root: Path) -> tuple[Path, Path]:
    for d in ("p", "l"):
        (root / d).mkdir()
    label = np.zeros((12, 14), np.uint8)
    label[2:9, 3:11] = 1
    pred = np.zeros_like(label)
    pred[3:11, 2:9] = 1
    Image.fromarray(label).save(root / "l" / "a.png")
    Image.fromarray(pred).save(root / "p" / "a.png")
    return root / "p", root / "l"


def _hd95(capsys, root, *argv) -> list[float]:
    rc, _, err = _run(capsys, "evaluate", *argv, "--metrics", "hd95", "--json", root / "r.json")
    assert rc == 0, err
    return [r["hd95"] for r in json.loads((root / "r.json").read_text())["classes"]]


def test_one_spacing_number_is_isotropic(tmp_path, capsys):
    p, l = _square_pair(tmp_path)
    unit = _hd95(capsys, tmp_path, p, l, "-C", 2)
    one = _hd95(capsys, tmp_path, p, l, "-C", 2, "--spacing", "0.5")
    both = _hd95(capsys, tmp_path, p, l, "-C", 2, "--spacing", "0.5,0.5")
    assert one == both
    np.testing.assert_allclose(one, 0.5 * np.asarray(unit), rtol=1e-6)
    assert unit[1] > 0


@pytest.mark.parametrize("bad", ["0", "-0.5", "nan", "inf", "1,-1", "0.5,x", "x", "1,1,2", ""])
def test_bad_spacing_exits_2_naming_the_option(tmp_path, capsys, bad):
    p, l = _square_pair(tmp_path)
    try:
        rc = main(["evaluate", str(p), str(l), "-C", "2", "--metrics", "hd95", "--spacing", bad])
    except SystemExit as e:  # argparse reports its own errors with exit 2
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "--spacing" in err.strip().splitlines()[-1] and "Traceback" not in err


def _nifti_pair(root: Path, pred_zooms, label_zooms) -> tuple[Path, Path]:
    nib = pytest.importorskip("nibabel")
    for d in ("p", "l"):
        (root / d).mkdir()
    label = np.zeros((8, 9, 6), np.uint8)
    label[2:6, 2:7, 1:5] = 1
    pred = np.zeros_like(label)
    pred[3:7, 1:6, 1:4] = 1
    nib.save(nib.Nifti1Image(label, np.diag([*label_zooms, 1.0])), root / "l" / "c.nii.gz")
    nib.save(nib.Nifti1Image(pred, np.diag([*pred_zooms, 1.0])), root / "p" / "c.nii.gz")
    return root / "p", root / "l"


def test_three_spacings_on_a_volume_equal_the_header(tmp_path, capsys):
    p, l = _nifti_pair(tmp_path, (0.5, 0.5, 2.0), (0.5, 0.5, 2.0))
    header = _hd95(capsys, tmp_path, p, l, "-C", 2)
    flag = _hd95(capsys, tmp_path, p, l, "-C", 2, "--spacing", "0.5,0.5,2")
    unit = _hd95(capsys, tmp_path, p, l, "-C", 2, "--spacing", "1")
    assert header == flag and header != unit


# -- 7. a prediction volume's own spacing -------------------------------------------


def test_prediction_spacing_differing_from_the_label_is_refused(tmp_path, capsys):
    p, l = _nifti_pair(tmp_path, (1.0, 1.0, 1.0), (0.8, 0.8, 2.5))
    rc, _, err = _run(capsys, "evaluate", p, l, "-C", 2, "--metrics", "hd95")
    line = _one_line(err)
    assert rc == 2
    assert str(p / "c.nii.gz") in line and str(l / "c.nii.gz") in line
    assert "0.8" in line and "2.5" in line and "1" in line
    # --spacing decides for both
    flag = _hd95(capsys, tmp_path, p, l, "-C", 2, "--spacing", "0.8,0.8,2.5")
    same = tmp_path / "same"
    same.mkdir()
    ps, ls = _nifti_pair(same, (0.8, 0.8, 2.5), (0.8, 0.8, 2.5))
    assert flag == _hd95(capsys, tmp_path, ps, ls, "-C", 2)


def test_prediction_spacing_equal_within_rounding_is_accepted(tmp_path, capsys):
    p, l = _nifti_pair(tmp_path, (0.8, 0.8, 2.5 * (1 + 2e-7)), (0.8, 0.8, 2.5))
    rc, _, err = _run(capsys, "evaluate", p, l, "-C", 2)
    assert rc == 0, err


# -- 6. --label-map JSON ------------------------------------------------------------

BAD_MAPS = {
    "float_value": '{"0": 0, "1": 1.5}',
    "integral_float_value": '{"0": 0, "1": 1.0}',
    "bool_value": '{"0": 0, "1": true}',
    "string_value": '{"0": 0, "1": "1"}',
    "null_value": '{"0": 0, "1": null}',
    "duplicate_key": '{"0": 0, "1": 1, "1": 0}',
    "duplicate_id": '{"0": 0, "1": 1, "01": 0}',
    "empty": "{}",
    "empty_nested": '{"map": {}}',
    "word_key": '{"0": 0, "one": 1}',
    "float_key": '{"0": 0, "1.0": 1}',
    "spaced_key": '{"0": 0, " 1": 1}',
    "huge_key": '{"0": 0, "1": 1, "99999999999999999999": 1}',
    "huge_value": '{"0": 0, "1": 99999999999999999999}',
    "bad_default": '{"map": {"0": 0, "1": 1}, "default": 2.5}',
    "unknown_entry": '{"map": {"0": 0, "1": 1}, "defualt": 255}',
    "list": "[0, 1]",
}


@pytest.mark.parametrize("case", sorted(BAD_MAPS))
def test_bad_label_map_json_exits_2(tmp_path, capsys, case):
    p, l = _pngs(tmp_path)
    spec = tmp_path / "map.json"
    spec.write_text(BAD_MAPS[case])
    rc, _, err = _run(capsys, "evaluate", p, l, "-C", 2, "--label-map", spec)
    line = _one_line(err)
    assert rc == 2 and "--label-map" in line and str(spec) in line


def test_good_label_map_json_forms(tmp_path, capsys):
    p, l = _pngs(tmp_path)
    results = []
    for text in ('{"0": 1, "1": 0, "-1": 7}', '{"map": {"0": 1, "1": 0}, "default": 255}'):
        spec = tmp_path / "map.json"
        spec.write_text(text)
        rc, _, err = _run(
            capsys, "evaluate", p, l, "-C", 2, "--label-map", spec, "--json", tmp_path / "r.json"
        )
        assert rc == 0, err
        results.append(json.loads((tmp_path / "r.json").read_text())["confusion_matrix"])
    rc, _, err = _run(capsys, "evaluate", p, l, "-C", 2, "--json", tmp_path / "r.json")
    plain = np.array(json.loads((tmp_path / "r.json").read_text())["confusion_matrix"])
    assert results[0] == results[1] == plain[::-1, ::-1].tolist()  # classes swapped


# -- 4. clean exits with distance metrics --------------------------------------------


def test_unusable_map_in_distance_metrics_names_the_file(tmp_path, capsys):
    for d in ("p", "l"):
        (tmp_path / d).mkdir()
    for d in ("p", "l"):
        np.save(tmp_path / d / "a.npy", np.zeros((5, 5), np.uint8))
        np.save(tmp_path / d / "b.npy", np.zeros((5, 5, 1, 1), np.uint8))  # 4-D
    rc, _, err = _run(capsys, "evaluate", tmp_path / "p", tmp_path / "l", "-C", 2, "-j", 1,
                      "--metrics", "hd95")  # fmt: skip
    line = _one_line(err)
    assert rc == 2 and "b.npy" in line


def _sizes_folder(root: Path, n: int) -> tuple[Path, Path]:
    """``n`` pairs of distinct sizes: one distance-metric compilation each."""
    rng = np.random.default_rng(5)
    p, l = root / "p", root / "l"
    p.mkdir()
    l.mkdir()
    for i in range(n):
        s = 20 + 9 * i
        label = np.zeros((s, s + 3), np.uint8)
        label[3 : s - 3, 4 : s - 4] = 1
        pred = np.where(rng.random(label.shape) < 0.9, label, 0).astype(np.uint8)
        Image.fromarray(label).save(l / f"{i:03d}.png")
        Image.fromarray(pred).save(p / f"{i:03d}.png")
    return p, l


def test_sigint_during_distance_metrics_exits_130_cleanly(tmp_path):
    """Ctrl-C while worker threads run JAX: 130 and one line, never SIGSEGV / SIGABRT.

    The last pair is a FIFO with no writer, so the run cannot end before the signal.
    """
    p, l = _sizes_folder(tmp_path, 24)
    os.mkfifo(p / "zzz.png")
    os.mkfifo(l / "zzz.png")
    out = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "jaxseg", "evaluate", str(p), str(l), "-C", "2", "-j", "3",
           "--metrics", "hd95,assd", "--json", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    for delay in (3.0, 4.5):
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=_fresh_signals
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        text = err.decode(errors="replace")
        assert proc.returncode == 130, (delay, proc.returncode, text[-500:])
        assert text.strip() == "jaxseg: interrupted", text[-500:]
        assert not out.exists() and not list(tmp_path.rglob("*.tmp"))


def test_bad_file_met_during_distance_metrics_exits_2_in_a_real_process(tmp_path):
    p, l = _sizes_folder(tmp_path, 8)
    (p / "004.png").write_bytes(b"not a png")  # met while the other threads run JAX
    cmd = [sys.executable, "-m", "jaxseg", "evaluate", str(p), str(l), "-C", "2", "-j", "3",
           "--metrics", "hd95"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert str(p / "004.png") in _one_line(proc.stderr)


def _fresh_signals() -> None:
    """In the child before exec: SIGINT unblocked and at its default, as a shell starts it.

    A test process may hold SIGINT blocked or ignored (set by a library in a
    thread that started it); a child inherits that and could never see Ctrl-C.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
