"""The documentation: every public name documented, the site builds with warnings as errors."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import jaxseg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.mark.parametrize("name", jaxseg.__all__)
def test_public_name_has_docstring_with_example(name):
    obj = getattr(jaxseg, name)
    doc = inspect.getdoc(obj)
    assert doc, f"jaxseg.{name} has no docstring"
    assert ">>>" in doc, f"jaxseg.{name} has no runnable example in its docstring"


def test_every_public_name_in_api_reference():
    api = (DOCS / "api.md").read_text()
    listed = set(re.findall(r"^::: jaxseg\.(\w+)\s*$", api, re.M))
    missing = sorted(set(jaxseg.__all__) - listed)
    assert not missing, f"add these public names to docs/api.md: {missing}"
    unknown = sorted(listed - set(jaxseg.__all__))
    assert not unknown, f"docs/api.md lists names that are not public: {unknown}"


def test_nav_targets_exist():
    yml = (ROOT / "mkdocs.yml").read_text()
    for target in re.findall(r":\s*([\w\-/]+\.md)\s*$", yml, re.M):
        assert (DOCS / target).is_file(), target


def test_getting_started_program_runs():
    """The complete program on the getting-started page runs and learns."""
    text = (DOCS / "getting-started.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    program = blocks[0]
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    miou = float(re.search(r"mIoU \(dataset-level\): ([\d.]+)", proc.stdout).group(1))
    assert miou > 0.8, proc.stdout


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    exe = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if exe is None:
        pytest.skip("mkdocs is not installed")
    proc = subprocess.run(
        [exe, "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()
