"""Test-wide settings: catch silent rank and dtype promotion bugs early, compile fast,
share compiled programs between the test processes, and start the documentation pages
early.

Test programs run for microseconds and take far longer to compile, so the test
processes (and their subprocesses) skip LLVM's machine-code optimisation
(``--xla_backend_optimization_level=0``). XLA builds the same program, with the same
fusions and float semantics; only the machine code is less tuned. The benchmarks,
run outside the tests, compile as users do.

The test run compiles the same programs in several processes: the xdist workers, the
documentation runners, the command-line and multi-device subprocesses. A compilation
cache folder made for this run (and removed after it) lets each program compile once.
It changes no result: a cache entry is keyed on the program, the compiler options and
the jax version. A cache folder the user set is used as it is.
"""

import os
import shutil
import tempfile

import pytest

_OWN_SHARED = None
if not os.environ.get("JAXSEG_TEST_SHARED"):
    # Made before jax is imported, by the first pytest process of the run; the xdist
    # workers (started after this file is imported) and every subprocess inherit it.
    _OWN_SHARED = tempfile.mkdtemp(prefix="jaxseg-tests-")
    os.environ["JAXSEG_TEST_SHARED"] = _OWN_SHARED
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(_OWN_SHARED, "xla-cache")
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

_FAST_COMPILE = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
    from pathlib import Path

    from tests.test_docs import start_selected_pages

    start_selected_pages(items, Path(os.environ["JAXSEG_TEST_SHARED"]))


def pytest_unconfigure(config):
    if _OWN_SHARED is not None:  # only the process that made the folder removes it
        shutil.rmtree(_OWN_SHARED, ignore_errors=True)
