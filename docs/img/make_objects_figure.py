"""Make ``objects.png`` (docs/objects.md): matched, missed and false-positive components.

``python docs/img/make_objects_figure.py [OUT.png]``. The maps are the worked
example of the page; the components are :func:`jaxseg.connected_components` of
each class mask, matched as :class:`jaxseg.PanopticStats` matches them (IoU > 0.5,
one to one), and the numbers in the titles are the page's
(``PanopticStats.from_semantic`` and its scores). Needs matplotlib (the ``cli`` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import jaxseg
from jaxseg import _panoptic

HERE = Path(__file__).resolve().parent

REF = np.array(
    [
        [0, 1, 1, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 2, 2, 0],
        [0, 0, 0, 0, 0, 2, 2, 0],
        [1, 0, 0, 0, 0, 0, 0, 0],
    ]
)
PRED = np.array(
    [
        [0, 1, 1, 1, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 2, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 1],
    ]
)
COLOURS = {"matched": "#2ca02c", "missed": "#ff7f0e", "false positive": "#d62728"}


def statuses(num_classes: int = 3):
    """Per class: component maps of reference and prediction, their status, matched IoUs."""
    out = {}
    for c in range(1, num_classes):
        ref, n_ref = jaxseg.connected_components(jnp.asarray(REF == c))
        pred, n_pred = jaxseg.connected_components(jnp.asarray(PRED == c))
        cap = 8
        scores = _panoptic.pair_scores(_panoptic.overlaps(pred, ref, cap))
        ids = jnp.arange(1, cap + 1)
        chosen = np.asarray(
            _panoptic.match(
                scores,
                ids <= n_ref,
                ids <= n_pred,
                matching="threshold",
                match_metric="iou",
                threshold=0.5,
                strict=True,
            )
        )
        iou = np.asarray(scores["iou"])
        out[c] = {
            "ref": np.asarray(ref),
            "pred": np.asarray(pred),
            "ref_status": ["matched" if chosen[r].any() else "missed" for r in range(int(n_ref))],
            "pred_status": [
                "matched" if chosen[:, p].any() else "false positive" for p in range(int(n_pred))
            ],
            "pairs": [(r, p, float(iou[r, p])) for r, p in zip(*np.nonzero(iou > 0), strict=True)],
        }
    return out


def figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    s = jaxseg.PanopticStats.from_semantic(PRED[None], REF[None], num_classes=3)
    sq = np.asarray(jaxseg.segmentation_quality(s, average=None))[0]
    rq = np.asarray(jaxseg.recognition_quality(s, average=None))[0]
    pq = np.asarray(jaxseg.panoptic_quality(s, average=None))[0]
    lw = np.asarray(jaxseg.lesion_wise(s, average=None))[0]
    counts = s.to_numpy()[0]  # rows tp, fp, fn
    info = statuses()

    fig = Figure(figsize=(9.5, 3.7), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "ref", "reference"), (axes[1], "pred", "prediction")):
        rgb = np.ones((*REF.shape, 3))
        values = REF if key == "ref" else PRED
        for d in info.values():
            for k, status in enumerate(d[f"{key}_status"]):
                rgb[d[key] == k + 1] = to_rgb(COLOURS[status])
        ax.imshow(rgb, interpolation="nearest")
        for (y, x), v in np.ndenumerate(values):
            if v:
                ax.text(x, y, str(v), ha="center", va="center", color="white", fontsize=13)
        ax.set_xticks(np.arange(-0.5, REF.shape[1]), labels=[])
        ax.set_yticks(np.arange(-0.5, REF.shape[0]), labels=[])
        ax.grid(color="0.75", linewidth=0.8)
        ax.tick_params(length=0)
        ax.set_title(f"{title} (numbers: class ids)")
    for d in info.values():  # the IoU of every overlapping pair, at the prediction
        for _, p, iou in d["pairs"]:
            y, x = np.argwhere(d["pred"] == p + 1).mean(0)
            ax = axes[1]
            mark = ">" if d["pred_status"][p] == "matched" else "≤"
            ax.annotate(
                f"IoU {iou:.2f} {mark} 0.5",
                (x, y),
                xytext=(x + 1.0, y + 1.9) if x < 4 else (x - 1.2, y + 2.2),
                fontsize=9,
                arrowprops={"arrowstyle": "->", "color": "0.3"},
            )
    lines = [
        f"class {c}: TP {counts[0, c]}, FP {counts[1, c]}, FN {counts[2, c]}   "
        f"SQ {sq[c]:.2f}   RQ {rq[c]:.2f}   PQ {pq[c]:.2f}   lesion-wise Dice {lw[c]:.3f}"
        for c in (1, 2)
    ]
    fig.suptitle("\n".join(lines), fontsize=10)
    fig.legend(
        handles=[Patch(color=v, label=k) for k, v in COLOURS.items()],
        loc="outside lower center",
        ncol=3,
        frameon=False,
    )
    return fig


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else HERE / "objects.png"
    figure().savefig(out, dpi=100)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
