"""The documentation: every public name documented, the site builds with warnings as errors."""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
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


# -- every code block runs ----------------------------------------------------------------
#
# The convention, so that the pages stay readable:
# * a ```python block with ``>>>`` prompts is a doctest (NUMBER, ELLIPSIS and
#   NORMALIZE_WHITESPACE): its outputs are the values shown;
# * any other ```python block is a program; a ```text block right after it (only blank
#   lines between) is what it prints, compared with the same rules (``...`` matches
#   anything, a float matches to the digits written); a program that prints must
#   show its output;
# * a ```bash block holds commands: ``jaxseg`` commands run on small generated folders
#   of the layouts the pages name (exit status 0; a ```text block right after it is
#   their printed output, checked; without one the output is not checked), the others
#   must match ``NOT_RUN`` below, with the reason;
# * any other ```text block is prose (formulas, an error message); no other language.
# The blocks of a page run in order, sharing names and a working folder; the pages run one
# after the other in one process per environment, each page with a fresh namespace and
# folder (tests/docs_runner.py); a failure names the page, the line of the block and the cause.

RUNNER = Path(__file__).resolve().parent / "docs_runner.py"
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in DOCS.glob("*.md"))]

#: Shell commands that are shown but deliberately not run, with the reason.
NOT_RUN = {
    r"make demo": "builds a virtual environment and trains for a minute (tests/test_demo.py "
    "runs the demo at a few steps)",
    r"make test": "the whole test suite and the site build, which run this test",
    r"pip install .*": "installs packages from the network",
    r"jaxseg demo( .*)?": "trains for a minute (tests/test_demo.py runs it at a few steps)",
    r"python -m benchmarks\.\w+( .*)?": "minutes of benchmarks (tests/test_benchmarks.py runs "
    "their --tiny smoke runs)",
}

#: Environment of a page's process, beyond the test's own.
PAGE_ENV = {
    # "Every recipe below is run by the test suite on 8 simulated CPU devices".
    "docs/devices.md": {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
}

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def _blocks(text: str) -> list[dict]:
    """Every fenced block: language, code, line of its first code line, and whether only
    blank lines separate it from the previous block."""
    out, end = [], None
    for m in _FENCE.finditer(text):
        out.append(
            {
                "lang": m.group(1),
                "code": m.group(2),
                "line": text.count("\n", 0, m.start(2)) + 1,
                "adjacent": end is not None and not text[end : m.start()].strip(),
            }
        )
        end = m.end()
    return out


def _commands(code: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comment lines dropped."""
    joined = code.replace("\\\n", " ")
    return [c.strip() for c in joined.splitlines() if c.strip() and not c.lstrip().startswith("#")]


def _not_run(command: str) -> str | None:
    text = " ".join(shlex.split(command, comments=True))
    for pattern, reason in NOT_RUN.items():
        if re.fullmatch(pattern, text):
            return reason
    return None


def plan(page: str, text: str) -> tuple[list[dict], list[str]]:
    """The blocks of a page to run, in order, and the problems found without running."""
    blocks = _blocks(text)
    run, problems = [], []
    for i, block in enumerate(blocks):
        lang, code, where = block["lang"], block["code"], f"{page}:{block['line']}"
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        want = nxt["code"] if nxt and nxt["lang"] == "text" and nxt["adjacent"] else None
        item = {"page": page, "line": block["line"], "want": want}
        if lang == "text":
            continue  # an output block (checked with its code block) or prose
        if lang == "python":
            kind = "doctest" if re.search(r"^\s*>>> ", code, re.M) else "python"
            if kind == "doctest" and want is not None:
                problems.append(f"{where}: a doctest shows its outputs itself, not in a text block")
            run.append({**item, "kind": kind, "code": code})
        elif lang == "bash":
            commands = []
            for command in _commands(code):
                if shlex.split(command, comments=True)[0] == "jaxseg" and not _not_run(command):
                    commands.append(command)
                elif not _not_run(command):
                    problems.append(f"{where}: `{command}` is neither run nor listed in NOT_RUN")
            if want is not None and not commands:
                problems.append(f"{where}: an output block follows commands that are not run")
            if commands:
                run.append({**item, "kind": "shell", "commands": commands})
        else:
            problems.append(f"{where}: a ```{lang or '(unnamed)'} block is neither run nor prose")
    return run, problems


class PageRun:
    """One runner process (tests/docs_runner.py) over pages that share an environment.

    It runs in the background: ``sh`` records the runner's exit status in ``rc`` when it
    ends, so any process that knows the folder can wait for it (:meth:`failures`).
    """

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.spec, self.result = workdir / "spec.json", workdir / "result.json"
        self.rc, self.stderr = workdir / "rc", workdir / "stderr.txt"

    def start(self, pages: dict[str, str], env: dict[str, str] | None = None) -> None:
        """Plan the pages and start their runner (a fresh namespace and working folder
        per page). The process starts jax once and compiles what several pages share once."""
        results, spec = {}, []
        for i, (page, text) in enumerate(pages.items()):
            blocks, problems = plan(page, text)
            if problems or not blocks:
                results[page] = problems
                continue
            cwd = self.workdir / f"page{i}" / "work"
            cwd.mkdir(parents=True)
            spec.append({"page": page, "blocks": blocks, "workdir": str(cwd)})
        (self.workdir / "planned.json").write_text(json.dumps(results))
        self.spec.write_text(json.dumps({"pages": spec}))
        if not spec:
            self.rc.write_text("0")
            return
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        if env and "XLA_FLAGS" in env:  # added to the test run's own flags
            full_env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {env['XLA_FLAGS']}".strip()
        script = '"$1" "$2" "$3" "$4" 2>"$5"; echo $? > "$6.tmp"; mv "$6.tmp" "$6"'
        args = [sys.executable, RUNNER, self.spec, self.result, self.stderr, self.rc]
        subprocess.Popen(
            ["sh", "-c", script, "sh", *map(str, args)],
            cwd=self.workdir,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )

    def failures(self, timeout: float = 1500.0) -> dict[str, list[str]]:
        """Wait for the runner; the failures of each page, each naming the page and the block."""
        deadline = time.monotonic() + timeout
        while not self.rc.exists():
            if time.monotonic() > deadline:
                return {"*": [f"the docs runner in {self.workdir} did not end in {timeout:.0f} s"]}
            time.sleep(0.2)
        rc = self.rc.read_text().strip()
        results = json.loads((self.workdir / "planned.json").read_text())
        done = json.loads(self.result.read_text()) if self.result.exists() else {}
        results.update(done)
        stderr = self.stderr.read_text() if self.stderr.exists() else ""
        for item in json.loads(self.spec.read_text())["pages"]:
            if item["page"] not in results:  # the runner died on this page (or an earlier one)
                results[item["page"]] = [
                    f"{item['page']}: the runner failed ({rc}) before finishing "
                    f"this page (pages finished: {sorted(done)})\n{stderr[-3000:]}"
                ]
        return results


def run_page(page: str, text: str, workdir: Path, env: dict[str, str] | None = None) -> list[str]:
    """Plan and run one page's blocks; the failures, each naming the page and the block."""
    run = PageRun(workdir)
    run.start({page: text}, env)
    return run.failures()[page]


_PAGE_TEST = "test_page_code_blocks_run_and_print_what_the_page_shows"


def _page_runs(shared: Path, pages: list[str]) -> list[tuple[PageRun, str, list[str]]]:
    """The runs of ``pages``: those sharing an environment run in one runner process (most
    in one; docs/devices.md with its 8 devices in another)."""
    groups: dict[str, list[str]] = {}
    for page in dict.fromkeys(pages):
        groups.setdefault(json.dumps(PAGE_ENV.get(page, {}), sort_keys=True), []).append(page)
    return [
        (PageRun(shared / f"pages{n}"), key, group)
        for n, (key, group) in enumerate(sorted(groups.items()))
    ]


def start_selected_pages(items: list[pytest.Item], shared: Path) -> None:
    """Called once the items of a test process are selected (``conftest.py``): move the
    page tests to the end and start their runners in the background, once per test run.

    Every xdist worker collects the same items; the first to create ``shared/pages``
    starts the runners, and each page test waits for their results. The runners work
    while the other tests run, and the page tests come last, so nobody waits long."""
    pages = [it for it in items if getattr(it, "originalname", None) == _PAGE_TEST]
    if not pages:
        return
    items[:] = [it for it in items if it not in pages] + pages
    try:
        (shared / "pages").mkdir()
    except FileExistsError:
        return  # another worker started them
    selected = [it.callspec.params["page"] for it in pages]
    for run, key, group in _page_runs(shared / "pages", selected):
        run.workdir.mkdir()
        run.start({page: (ROOT / page).read_text() for page in group}, json.loads(key))


@pytest.fixture(scope="session")
def page_failures(request) -> dict[str, list[str]]:
    """The failures of every selected page, from the runners started at collection."""
    shared = Path(os.environ["JAXSEG_TEST_SHARED"])
    selected = [
        item.callspec.params["page"]
        for item in request.session.items
        if getattr(item, "originalname", None) == _PAGE_TEST
    ]
    results = {}
    for run, _, _ in _page_runs(shared / "pages", selected):
        results.update(run.failures())
    return results


@pytest.mark.parametrize("page", PAGES)
def test_page_code_blocks_run_and_print_what_the_page_shows(page, page_failures):
    failures = page_failures.get(page, page_failures.get("*"))
    assert failures is not None, f"{page} was not run"
    assert not failures, "\n\n".join(failures)


BROKEN_PAGE = """\
```python
x = 0.5
print(f"{x:.2f}")
```

```text
0.25
```

```python
>>> x / 3
0.1667
>>> x + 1
2.5
```

```python
print("unshown")
```

```bash
jaxseg evaluate preds/ labels/ -C 19 --ignore-index 255 --definitely-not-an-option
```

```bash
rm -rf ~
```

```yaml
a: 1
```
"""


def test_harness_fails_naming_page_and_block(tmp_path):
    """A wrong output, a doctest, an unshown print, a failing command, a command that is
    neither run nor allowlisted and an unknown language: each reported with its line."""
    blocks, problems = plan("broken.md", BROKEN_PAGE)
    assert [b["kind"] for b in blocks] == ["python", "doctest", "python", "shell"]
    assert problems == [
        "broken.md:26: `rm -rf ~` is neither run nor listed in NOT_RUN",
        "broken.md:30: a ```yaml block is neither run nor prose",
    ]
    safe = BROKEN_PAGE.split("```bash\nrm")[0]
    failures = run_page("broken.md", safe, tmp_path)
    assert len(failures) == 4, failures
    assert failures[0].startswith("broken.md:2 (python block): printed output differs")
    assert "0.25" in failures[0] and "0.50" in failures[0]
    # the doctest shares the namespace; 0.1667 matches 0.1666... to the digits written
    assert failures[1].startswith("broken.md:11 (doctest block): doctest failed")
    assert "x + 1" in failures[1] and "x / 3" not in failures[1]
    assert failures[2].startswith("broken.md:18 (python block): the block prints")
    assert failures[3].startswith("broken.md:22 (shell block): `jaxseg evaluate")
    assert "exited with status 2" in failures[3] and "--definitely-not" in failures[3]


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
