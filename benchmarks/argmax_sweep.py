"""Compile and run time of every argmax method per class count.

``python -m benchmarks.argmax_sweep [--classes 19 32 ...] [--methods ...] [--hw 512]``

Logits f32 ``[1, hw, hw, C]`` (the data of ``benchmarks.run``); for each ``C`` the
methods are compiled one after the other (compile time measured separately) and
then timed interleaved (``benchmarks.timing.Interleaver``). Every method's
result is checked against ``np.argmax``. The thresholds of
``jaxseg._kernels`` (which method ``argmax_classes`` picks per ``C``) rest on
this table; see ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.run import make_data
from benchmarks.timing import Interleaver, time_jax
from jaxseg import _kernels

CLASSES = (19, 32, 64, 150, 300, 1000)


def sweep(
    classes: tuple[int, ...], methods: tuple[str, ...], hw: int, reps: int, max_chain: int
) -> list[dict]:
    out = []
    for c in classes:
        data = make_data("logits", (1, hw, hw), c)
        x = jnp.asarray(data["logits"])
        ref = np.argmax(data["logits"], -1)
        session = Interleaver()
        pending = []
        for m in methods:
            if m == "chain" and c > max_chain:
                continue

            def fn(a, m=m):
                return _kernels.argmax_classes(a, method=m)

            timing, got = time_jax(fn, (x,), reps, session)
            ok = bool(np.array_equal(np.asarray(got), ref))
            pending.append((m, timing, ok))
        session.run(reps)
        chosen = _kernels.cpu_argmax_method(c)
        for m, t, ok in pending:
            row = {
                "C": c,
                "method": m,
                "compile_s": t.compile_s,
                "median_ms": t.median * 1e3,
                "min_ms": t.min * 1e3,
                "ok": ok,
                "chosen_on_cpu": m == chosen,
            }
            print(
                f"C={c:5d} {m:8s} compile {t.compile_s:7.2f} s  run {t.median * 1e3:9.1f} ms "
                f"(min {t.min * 1e3:9.1f}){'' if ok else '  MISMATCH'}"
                f"{'  <- chosen on CPU' if m == chosen else ''}",
                flush=True,
            )
            out.append(row)
        del x
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.argmax_sweep", description=__doc__)
    parser.add_argument("--classes", type=int, nargs="+", default=list(CLASSES))
    methods = [m for m in _kernels.ARGMAX_METHODS if m]
    parser.add_argument("--methods", nargs="+", choices=methods, default=methods)
    parser.add_argument("--hw", type=int, default=512, help="image height and width")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--max-chain",
        type=int,
        default=300,
        help="skip the chain above this C (tens of seconds per call at C = 1000)",
    )
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, [1, {args.hw}, {args.hw}, C]")
    rows = sweep(tuple(args.classes), tuple(args.methods), args.hw, args.reps, args.max_chain)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
