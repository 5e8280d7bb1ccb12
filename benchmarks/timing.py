"""Timing and memory measurement shared by every benchmark row."""

from __future__ import annotations

import dataclasses
import statistics
import time
import tracemalloc
from collections.abc import Callable
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


#: A row stops repeating after this many seconds once it has ``MIN_REPS`` timings.
ROW_BUDGET_S = 10.0
MIN_REPS = 3


def _repeat(call: Callable[[], Any], reps: int, sync: Callable[[Any], Any]) -> list[float]:
    times: list[float] = []
    for _ in range(reps):
        start = time.perf_counter()
        sync(call())
        times.append(time.perf_counter() - start)
        if len(times) >= MIN_REPS and sum(times) > ROW_BUDGET_S:
            break
    return times


def time_jax(fn: Callable[..., Any], args: tuple[Any, ...], reps: int) -> tuple[Timing, Any]:
    """Compile ``jax.jit(fn)`` (timed separately), warm up once, time ``reps`` calls."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    memory = None
    try:
        analysis = compiled.memory_analysis()
        memory = int(analysis.temp_size_in_bytes)
    except Exception:  # some backends do not report it
        pass
    out = jax.block_until_ready(compiled(*args))  # warm-up
    times = _repeat(lambda: compiled(*args), reps, jax.block_until_ready)
    note = "XLA temp buffers" if memory is not None else "not reported by this backend"
    return Timing(times, compile_s, memory, note), out


def time_numpy(fn: Callable[[], Any], reps: int) -> tuple[Timing, Any]:
    """Warm up once (measuring the tracemalloc peak), then time ``reps`` calls."""
    tracemalloc.start()
    out = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    times = _repeat(fn, reps, lambda x: x)
    return Timing(times, None, int(peak), "tracemalloc peak"), out


def time_torch(
    fn: Callable[[], Any], reps: int, device: str, reset: Callable[[], Any] | None = None
) -> tuple[Timing, Any]:
    """Time a torch callable; on CUDA synchronise and read the allocator peak."""
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

    def call() -> Any:
        if reset is not None:
            reset()
        return fn()

    times = _repeat(call, reps, sync)
    return Timing(times, None, memory, note), out
