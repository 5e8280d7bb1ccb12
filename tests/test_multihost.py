"""Two processes x 4 CPU devices through ``jax.distributed``: both read the same exact counts."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import multihost_worker as worker

WORKER = Path(__file__).with_name("multihost_worker.py")
TIMEOUT_S = 50
#: The only failure that skips: a jaxlib built without CPU cross-process collectives.
GLOO_MISSING = r"gloo.*(not (available|supported|built)|unimplemented)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
    )
    env["JAX_PLATFORMS"] = "cpu"
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), port, str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=TIMEOUT_S))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        for p in procs:
            p.communicate()
        pytest.fail(f"the two processes did not finish within {TIMEOUT_S} s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return procs, outputs


def test_two_processes_read_identical_exact_counts():
    procs, outputs = _run_two_processes()
    results = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        if not lines and re.search(GLOO_MISSING, err, re.I):
            pytest.skip(f"multi-process CPU collectives unavailable:\n{err[-1500:]}")
        assert p.returncode == 0 and lines, f"rc={p.returncode}\n{err[-3000:]}"
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
    logits, labels = worker.dataset()
    preds = logits.argmax(-1)
    want = np.zeros((worker.C, worker.C), np.int64)
    for y, p in zip(labels.ravel(), preds.ravel(), strict=True):  # slow reference loop
        if y != worker.IGNORE:
            want[y, p] += 1
    for i, r in enumerate(results):
        assert r["process_index"] == i
        assert (r["process_count"], r["device_count"], r["local_device_count"]) == (2, 8, 4)
        assert r["replicated"]
        np.testing.assert_array_equal(np.array(r["counts"]), want)
