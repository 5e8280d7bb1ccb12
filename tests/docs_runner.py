"""Run the code blocks of documentation pages, in order, in one process.

``python tests/docs_runner.py SPEC.json RESULT.json`` (``tests/test_docs.py`` writes
the spec and reads the result). The spec lists pages (those that need the same
environment: one jax import and one compilation cache serve them all), each with its
own working folder and its blocks, each block one of:

* ``doctest``: a python block with ``>>>`` prompts, run with :mod:`doctest`
  (``NUMBER``, ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``);
* ``python``: a python program; when the page shows its output (a ``text``
  block right after it), what it prints must match that block, with the same
  rules as a doctest; a program that prints must show its output;
* ``shell``: ``jaxseg`` commands, run in this process through ``jaxseg.cli.main``
  (exit status 0 required; their printed output is checked when the page shows it).

Every block of a page shares one namespace and one working directory (a
temporary folder of that page, holding small generated inputs for the shell
commands), so a block may use what an earlier one defined or wrote; the next page
starts with a fresh namespace in its own folder. The result maps each page to its
failures, each naming the page, the line of the block and what went wrong. A
block that raises stops the page: later blocks would fail for the same reason.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import json
import os
import re
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Any

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

_FLOAT = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?")


class NumberChecker(doctest.OutputChecker):
    """doctest's checker plus pytest's ``NUMBER`` rule: a float written in the expected
    output matches an actual float that agrees to the digits written (``0.2285``
    matches ``0.22847843``). Floats pair up in order; when their counts differ (an
    ``...`` spans some), the outputs are compared as they are."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        return super().check_output(want, self._round(want, got), optionflags)

    def output_difference(self, example: doctest.Example, got: str, optionflags: int) -> str:
        return super().output_difference(example, self._round(example.want, got), optionflags)

    @staticmethod
    def _round(want: str, got: str) -> str:
        wants, gots = list(_FLOAT.finditer(want)), list(_FLOAT.finditer(got))
        if len(wants) != len(gots):
            return got
        pieces, start = [], 0
        for w, g in zip(wants, gots, strict=True):
            mantissa = re.split("[eE]", w.group())[0]
            exponent = int(re.split("[eE]", w.group())[1]) if "e" in w.group().lower() else 0
            digits = len(mantissa.split(".")[1])
            if abs(float(w.group()) - float(g.group())) <= 10.0 ** (exponent - digits):
                pieces += [got[start : g.start()], w.group()]
                start = g.end()
                # alignment padding after a longer number (``0.9891445 ,``) goes too
                if not want[w.end() : w.end() + 1].isspace():
                    while got[start : start + 1] == " ":
                        start += 1
        return "".join(pieces) + got[start:]


class _Stop(Exception):
    """A block raised: the page stops there."""


def _compare(want: str, got: str, where: str) -> str | None:
    checker = NumberChecker()
    if checker.check_output(want, got, FLAGS):
        return None
    example = doctest.Example("", want)
    return f"{where}: printed output differs from the page's output block\n" + (
        checker.output_difference(example, got, FLAGS)
    )


def _traceback(where: str) -> str:
    return f"{where} raised:\n" + "".join(traceback.format_exc(limit=-8))


def run_doctest(block: dict[str, Any], ns: dict[str, Any], where: str) -> str | None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block["code"], ns, where, block["page"], block["line"])
    report = io.StringIO()
    runner = doctest.DocTestRunner(checker=NumberChecker(), optionflags=FLAGS)
    result = runner.run(test, out=report.write, clear_globs=False)
    ns.update(test.globs)  # doctest ran on a copy: later blocks see its names
    if result.failed:
        return f"{where}: doctest failed\n{report.getvalue()}"
    return None


def run_python(block: dict[str, Any], ns: dict[str, Any], where: str) -> str | None:
    # Pad with blank lines so that tracebacks give the line number in the page.
    source = "\n" * block["line"] + block["code"]
    code = compile(source, block["page"], "exec")
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(code, ns)
    except Exception:
        raise _Stop(_traceback(where)) from None
    return _check_output(block, out.getvalue(), where)


def _check_output(block: dict[str, Any], got: str, where: str) -> str | None:
    want = block.get("want")
    if want is None:
        if got.strip():
            return (
                f"{where}: the block prints but the page shows no output for it "
                f"(add a ```text block right after it):\n{got}"
            )
        return None
    return _compare(want, got, where)


def run_shell(block: dict[str, Any], where: str) -> str | None:
    from jaxseg import cli

    out, err = io.StringIO(), io.StringIO()
    for command in block["commands"]:
        argv = shlex.split(command, comments=True)
        if argv[0] != "jaxseg":
            raise _Stop(f"{where}: only `jaxseg` commands run here, got {command!r}")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = cli.main(argv[1:])
        except SystemExit as e:  # --help and usage errors leave through argparse
            status = e.code or 0
        except Exception:
            raise _Stop(_traceback(f"{where}: `{command}`")) from None
        if status != 0:
            raise _Stop(
                f"{where}: `{command}` exited with status {status}\n{err.getvalue()[-2000:]}"
            )
    # A command's table is not shown unless the page shows it: readers lack these inputs.
    return None if block.get("want") is None else _compare(block["want"], out.getvalue(), where)


def make_cli_inputs(root: Path) -> None:
    """Small folders in the layouts the pages' commands name.

    ``preds/`` + ``labels/`` (19 classes, 255 borders), ``names.txt``, Cityscapes
    (``results/`` + ``gtFine/val/<city>/``), PASCAL VOC (palette PNGs in
    ``VOC2012/SegmentationClass/``, the predictions in ``preds/``) and NIfTI volumes
    (``predictions/`` + ``labelsTr/``, 3 classes, anisotropic spacing).
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in ("preds", "labels", "results", "VOC2012/SegmentationClass", "predictions"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, (h, w) in enumerate([(12, 16), (16, 16), (10, 14)]):
        label = rng.integers(0, 19, size=(h, w)).astype(np.uint8)
        label[0] = 255
        pred = np.where(rng.random((h, w)) < 0.7, label % 19, rng.integers(0, 19, (h, w)))
        Image.fromarray(label).save(root / "labels" / f"img{i}.png")
        Image.fromarray(pred.astype(np.uint8)).save(root / "preds" / f"img{i}.png")
        voc = Image.fromarray(label, mode="L").convert("P")
        voc.putpalette([v for k in range(256) for v in (k, (37 * k) % 256, (91 * k) % 256)])
        voc.save(root / "VOC2012" / "SegmentationClass" / f"img{i}.png")
    (root / "names.txt").write_text("".join(f"class{c}\n" for c in range(19)))
    for i, city in enumerate(("frankfurt", "lindau")):
        stem = f"{city}_000000_{i:06d}"
        (root / "gtFine" / "val" / city).mkdir(parents=True, exist_ok=True)
        ids = rng.integers(0, 34, size=(16, 32)).astype(np.uint8)
        pred = np.where(rng.random(ids.shape) < 0.7, ids, rng.integers(0, 34, ids.shape))
        Image.fromarray(ids).save(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(pred.astype(np.uint8)).save(root / "results" / f"{stem}_leftImg8bit.png")
    import nibabel as nib

    (root / "labelsTr").mkdir(exist_ok=True)
    for i in range(2):
        label = np.zeros((8, 8, 6), np.uint8)
        label[2:6, 2:6, 1:5] = 1
        label[3:5, 3:5, 2:4] = 2
        pred = np.roll(label, i + 1, axis=0)
        affine = np.diag([0.8, 0.8, 2.0, 1.0])
        nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / f"case_{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(pred, affine), root / "predictions" / f"case_{i:03d}.nii.gz")


def run_page(page: dict[str, Any]) -> list[str]:
    """Run one page's blocks in a fresh namespace, in its own working folder."""
    failures: list[str] = []
    os.chdir(page["workdir"])
    if any(b["kind"] == "shell" for b in page["blocks"]):
        make_cli_inputs(Path.cwd())
    ns: dict[str, Any] = {"__name__": "__main__"}
    for block in page["blocks"]:
        where = f"{block['page']}:{block['line']} ({block['kind']} block)"
        try:
            if block["kind"] == "doctest":
                failure = run_doctest(block, ns, where)
            elif block["kind"] == "python":
                failure = run_python(block, ns, where)
            else:
                failure = run_shell(block, where)
        except _Stop as stop:
            failures.append(str(stop) + "\n(later blocks of the page were not run)")
            break
        if failure:
            failures.append(failure)
    return failures


def main(spec_path: str, result_path: str) -> int:
    """Run the pages of the spec one after the other; the result (page -> failures) is
    rewritten after every page, so a crash is laid to the page that was running."""
    spec = json.loads(Path(spec_path).read_text())
    results: dict[str, list[str]] = {}
    for page in spec["pages"]:
        start = time.perf_counter()
        results[page["page"]] = run_page(page)
        Path(result_path).write_text(json.dumps(results))
        print(f"{page['page']}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
