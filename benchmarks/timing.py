"""Timing and memory measurement shared by every benchmark row.

Rows of one workload are timed *interleaved in blocks*: each round gives every
row one untimed call (to reach its own steady state: caches, allocator) and
then ``BLOCK`` timed calls back to back, and the rounds repeat. A training
loop calls the same step back to back, which the blocks keep; slow drifts of
the machine (other processes, frequency, memory bandwidth) are spread over
every row alike by the rounds, so ratios within a workload are steadier than
when each row's repetitions all run at one moment. Pass an
:class:`Interleaver` to the ``time_*`` functions to defer their timing to
:meth:`Interleaver.run`; without one they time at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax


@dataclasses.dataclass
class Timing:
    """Wall-clock times of repeated calls (seconds) and the peak extra memory."""

    times: list[float]
    compile_s: float | None = None
    #: Extra memory in bytes: XLA temp buffers (JAX), tracemalloc peak (NumPy),
    #: allocator peak (torch on CUDA); ``None`` where it cannot be measured.
    memory_bytes: int | None = None
    memory_note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)


#: XLA options of every compilation made here; see :func:`cheap_compiles`.
_COMPILER_OPTIONS: dict[str, Any] = {}
#: XLA's cheapest settings (what ``jax_disable_most_optimizations`` selects).
CHEAP = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@contextlib.contextmanager
def cheap_compiles(enabled: bool = True) -> Iterator[None]:
    """Within the block, compile with XLA's expensive passes off (``CHEAP``).

    For smoke runs (``--tiny``): compilation dominates their time and the timings
    mean nothing anyway; the values computed, and so every check, are the same.
    """
    previous = dict(_COMPILER_OPTIONS)
    if enabled:
        _COMPILER_OPTIONS.update(CHEAP)
    try:
        yield
    finally:
        _COMPILER_OPTIONS.clear()
        _COMPILER_OPTIONS.update(previous)


def compile_jax(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.jit(fn)`` lowered and compiled for ``args`` (with the options in force)."""
    return jax.jit(fn).lower(*args).compile(dict(_COMPILER_OPTIONS) or None)


#: A row stops repeating after this many seconds once it has ``MIN_REPS`` timings.
ROW_BUDGET_S = 10.0
MIN_REPS = 3
#: Timed calls per row and round, after one untimed call.
BLOCK = 3


@dataclasses.dataclass
class _Entry:
    timing: Timing
    call: Callable[[], Any]
    sync: Callable[[Any], Any]
    reset: Callable[[], Any] | None


class Interleaver:
    """Collects prepared (compiled, warmed-up) calls and times them round-robin."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def add(
        self,
        timing: Timing,
        call: Callable[[], Any],
        sync: Callable[[Any], Any],
        reset: Callable[[], Any] | None = None,
    ) -> Timing:
        self._entries.append(_Entry(timing, call, sync, reset))
        return timing

    def run(self, reps: int) -> None:
        """Rounds of (one untimed call, then up to ``BLOCK`` timed calls) per row,
        until every row has ``reps`` timings, or has ``MIN_REPS`` and the timed
        calls took more than ``ROW_BUDGET_S`` per row. Fills each ``Timing``."""
        spent = 0.0
        done = 0
        while done < reps:
            block = min(BLOCK, reps - done)
            for e in self._entries:
                for k in range(block + 1):
                    if e.reset is not None:
                        e.reset()
                    start = time.perf_counter()
                    e.sync(e.call())
                    elapsed = time.perf_counter() - start
                    if k:  # the first call of a block is the untimed one
                        e.timing.times.append(elapsed)
                        spent += elapsed
            done += block
            if done >= MIN_REPS and spent > ROW_BUDGET_S * len(self._entries):
                break
        self._entries.clear()


def _schedule(
    timing: Timing,
    call: Callable[[], Any],
    sync: Callable[[Any], Any],
    reps: int,
    session: Interleaver | None,
    reset: Callable[[], Any] | None = None,
) -> Timing:
    own = session or Interleaver()
    own.add(timing, call, sync, reset)
    if session is None:
        own.run(reps)
    return timing


def time_jax(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    reps: int,
    session: Interleaver | None = None,
) -> tuple[Timing, Any]:
    """Compile ``jax.jit(fn)`` (timed separately), warm up once, time ``reps`` calls."""
    start = time.perf_counter()
    compiled = compile_jax(fn, *args)
    compile_s = time.perf_counter() - start
    memory = None
    try:
        analysis = compiled.memory_analysis()
        memory = int(analysis.temp_size_in_bytes)
    except Exception:  # some backends do not report it
        pass
    out = jax.block_until_ready(compiled(*args))  # warm-up
    note = "XLA temp buffers" if memory is not None else "not reported by this backend"
    timing = Timing([], compile_s, memory, note)
    _schedule(timing, lambda: compiled(*args), jax.block_until_ready, reps, session)
    return timing, out


def time_numpy(
    fn: Callable[[], Any], reps: int, session: Interleaver | None = None
) -> tuple[Timing, Any]:
    """Warm up once (measuring the tracemalloc peak), then time ``reps`` calls."""
    tracemalloc.start()
    out = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    timing = Timing([], None, int(peak), "tracemalloc peak")
    _schedule(timing, fn, lambda x: x, reps, session)
    return timing, out


def time_torch(
    fn: Callable[[], Any],
    reps: int,
    device: str,
    reset: Callable[[], Any] | None = None,
    session: Interleaver | None = None,
) -> tuple[Timing, Any]:
    """Time a torch callable; on CUDA synchronise and read the allocator peak.

    ``reset`` (e.g. a metric's ``reset``) runs before each call, untimed.
    """
    import torch

    def sync(x: Any) -> Any:
        if device == "cuda":
            torch.cuda.synchronize()
        return x

    memory, note = None, "not measurable for torch on CPU"
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    if reset is not None:
        reset()
    out = sync(fn())  # warm-up, and the result used for the correctness check
    if device == "cuda":
        memory, note = torch.cuda.max_memory_allocated() - base, "CUDA allocator peak"

    timing = Timing([], None, memory, note)
    _schedule(timing, fn, sync, reps, session, reset)
    return timing, out


def cpu_count() -> int:
    """CPUs this process may run on (recorded with every result)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def bench_main(
    argv: list[str] | None,
    doc: str,
    name: str,
    run: Callable[[str, int], dict[str, Any]],
    markdown: Callable[[list[dict[str, Any]], Any], str],
    default_reps: int,
) -> int:
    """The command line of a benchmark module: ``--quick``, ``--tiny``, ``--reps``, ``--out``.

    ``doc`` is the module docstring (its first line describes the command). Runs
    ``run(mode, reps)`` (with :func:`cheap_compiles` for ``--tiny``), prints
    ``markdown(rows, targets)``, writes ``<name>.md`` and ``<name>.json`` into
    ``--out``, and returns 1 when a row's check says ``MISMATCH``.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a few seconds")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="smoke run: toy shapes, 1 repetition, XLA's expensive passes off (times mean nothing)",
    )
    parser.add_argument(
        "--reps", type=int, default=None, help=f"timed repetitions (default {default_reps})"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for results.md / .json")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    reps = args.reps or (1 if args.tiny else default_reps)
    with cheap_compiles(args.tiny):
        result = run(mode, reps)
    text = markdown(result["rows"], result["targets"])
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}.md").write_text(text)
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    bad = [r for r in result["rows"] if "MISMATCH" in r.get("check", "")]
    if bad:
        print("correctness check failed: " + ", ".join(f"{r['workload']} {r['name']}" for r in bad))
        return 1
    return 0
