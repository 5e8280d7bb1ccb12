"""Exact accumulation across 1, 2, 4 and 8 devices (pmap, shard_map, sharded jit, scan).

The cases live in ``tests/multidevice_cases.py`` and run in one subprocess with
8 simulated CPU devices (the recipes of docs/devices.md run on 8 devices in
tests/test_docs.py) (the device count is fixed when JAX starts, so it
cannot be changed inside this test process). Each case compares exact integer
counts with a slow single-device NumPy ``int64`` reference.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("multidevice_cases.py")
TIMEOUT_S = 300  # each group runs in well under a minute on a quiet 2-core machine

EXPECTED = [
    "loop_merge",
    "vmap_reduce",
    "overflow_scan",
    *[
        f"{name}[{n}]"
        for name in (
            "pmap_psum",
            "shard_map_psum",
            "shard_map_scan",
            "jit_sharded_auto",
            "jit_sharded_explicit",
            "jit_scan_epoch",
            "padded_last_batch",
        )
        for n in (1, 2, 4, 8)
    ],
    "overflow_psum[2]",
    "overflow_psum[8]",
    "pmap_reduce[8]",
    "binary_stats_shard_map[8]",
    "soft_stats_psum[8]",
    "clu_gather[8]",
    "boundary_distance_psum[8]",
    "panoptic_psum[8]",
]


_CACHE: dict[str, dict] = {}


def _group_of(case: str) -> str:
    return "sweep" if case.endswith(("[1]", "[2]", "[4]")) else "other"


def _run_group(group: str) -> dict:
    """Run one group of cases in a fresh 8-device process (once per test session)."""
    if group in _CACHE:
        return _CACHE[group]
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    try:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), group],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {group!r} multi-device cases did not finish within {TIMEOUT_S} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"multi-device script failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    _CACHE[group] = json.loads(lines[-1].removeprefix("RESULTS "))
    return _CACHE[group]


@pytest.mark.parametrize("case", EXPECTED)
def test_case(case):
    results = _run_group(_group_of(case))
    assert results["device_count"] == 8
    outcome = results.get(case, "did not run")
    assert outcome == "ok", f"{case} failed:\n{outcome}"


def test_every_case_is_listed():
    """The script's cases and this file's list agree (no case silently dropped)."""
    ran = set()
    for group in ("sweep", "other"):
        ran |= set(_run_group(group)) - {"device_count", "seconds"}
    assert ran == set(EXPECTED)
