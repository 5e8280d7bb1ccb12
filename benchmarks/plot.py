"""Plot result files of ``benchmarks.run``: ``python -m benchmarks.plot OUT.png RESULTS...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rows = [r for r in results["rows"] if "median_ms" in r and not r["name"].startswith("path")]
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    fig, axes = plt.subplots(len(workloads), 1, figsize=(7, 1.6 + 1.1 * len(workloads) * 2.2))
    axes = [axes] if len(workloads) == 1 else list(axes)
    info = results["machine"]
    for ax, w in zip(axes, workloads, strict=True):
        mine = [r for r in rows if r["workload"] == w]
        names = [r["name"] for r in mine]
        med = [r["median_ms"] for r in mine]
        colors = ["tab:green" if n.startswith("jaxseg") else "tab:gray" for n in names]
        colors = ["tab:blue" if n == "read roof" else c for n, c in zip(names, colors, strict=True)]
        ax.barh(names, med, color=colors)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
        ax.invert_yaxis()
        shape = results["config"]["workloads"][w]
        ax.set_title(f"{w}: {shape['kind']} {tuple(shape['shape'])}, C={shape['num_classes']}")
        for i, m in enumerate(med):
            ax.text(m, i, f" {m:.1f}", va="center", fontsize=8)
    axes[-1].set_xlabel("median time per call, ms (log scale; lower is better)")
    fig.suptitle(
        f"{info['backend']} ({info['device_kind']}, {info['cpu_count']} CPUs), "
        f"jax {info['jax_version']}, {info['date']}",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: python -m benchmarks.plot OUT.png RESULTS.json [RESULTS.json ...]")
        return 2
    parts = [json.loads(Path(a).read_text()) for a in argv[1:]]
    merged = dict(parts[0])
    merged["rows"] = [r for p in parts for r in p["rows"]]
    merged["config"] = {
        "workloads": {k: w for p in parts for k, w in p["config"]["workloads"].items()}
    }
    plot(merged, Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
