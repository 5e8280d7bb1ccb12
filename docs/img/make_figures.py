"""Make the documentation figures: ``python docs/img/make_figures.py [topology|calibration]``.

* ``topology.png`` (docs/losses.md, "Topology and boundaries"): one branching
  mask, its :func:`jaxseg.skeletonize` skeleton and the distance maps from
  :func:`jaxseg.distance_transform` that ``hausdorff_dt_loss`` and
  ``boundary_loss`` use.
* ``reliability.png`` (docs/calibration.md): the reliability diagrams of the
  ``jaxseg demo`` model (same data, seed and 600 training steps as the command)
  on its 128 held-out images, from one exact
  :class:`jaxseg.ProbabilityHistogram`; prints the calibration errors the page
  quotes.

Deterministic on one machine; the numbers can move in the last digit with the
CPU and the XLA version. Needs the ``cli`` and ``flax`` extras (matplotlib, Flax).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: Bins of the reliability diagram: torchmetrics' default (MONAI's is 20).
NUM_BINS = 15


# -- topology ---------------------------------------------------------------------


def branching_mask(size: int = 96) -> np.ndarray:
    """A vessel-like tree: a thick trunk that forks into thinner branches, ``bool [H, W]``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    mask = np.zeros((size, size), bool)

    def segment(y0, x0, y1, x1, r0, r1):
        d = np.array([y1 - y0, x1 - x0])
        t = np.clip(((yy - y0) * d[0] + (xx - x0) * d[1]) / (d @ d), 0.0, 1.0)
        dist = np.hypot(yy - (y0 + t * d[0]), xx - (x0 + t * d[1]))
        return dist <= r0 + t * (r1 - r0)

    s = size / 96
    mask |= segment(90 * s, 48 * s, 52 * s, 48 * s, 7 * s, 5 * s)  # trunk
    mask |= segment(52 * s, 48 * s, 14 * s, 20 * s, 5 * s, 2 * s)  # left branch
    mask |= segment(52 * s, 48 * s, 22 * s, 82 * s, 4 * s, 2 * s)  # right branch
    mask |= segment(34 * s, 34 * s, 10 * s, 52 * s, 2.5 * s, 1.5 * s)  # twig
    return mask


def topology_figure(out: Path) -> None:
    import jax.numpy as jnp
    from matplotlib.colors import ListedColormap, TwoSlopeNorm

    import jaxseg
    from jaxseg._report import _new_figure

    mask = branching_mask()
    m = jnp.asarray(mask)
    skeleton = np.asarray(jaxseg.skeletonize(m))
    outside = np.asarray(jaxseg.distance_transform(m))  # 0 on the mask
    inside = np.asarray(jaxseg.distance_transform(~m))  # 0 off the mask
    signed = np.where(mask, 1.0 - inside, outside)  # boundary_loss's map

    fig = _new_figure((12.5, 4.4))
    axes = fig.subplots(1, 3)
    ax = axes[0]
    ax.imshow(mask, cmap="Greys", vmin=0, vmax=2.5, interpolation="nearest")
    red = ListedColormap(["tab:red"])
    ax.imshow(np.ma.masked_where(~skeleton, skeleton), cmap=red, interpolation="nearest")
    ax.set_title(f"mask and skeletonize(mask)\n({int(skeleton.sum())} skeleton pixels)")
    ax = axes[1]
    im = ax.imshow(np.where(mask, inside, np.nan), cmap="viridis", interpolation="nearest")
    ax.contour(outside, levels=[0.5], colors="black", linewidths=0.6)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="pixels")
    ax.set_title("distance_transform(~mask)\n(depth inside; ridges = skeleton)")
    ax = axes[2]
    # Two slopes: the interior depths (a few pixels) stay visible next to the far outside.
    norm = TwoSlopeNorm(vmin=float(signed.min()), vcenter=0.0, vmax=float(signed.max()))
    im = ax.imshow(signed, cmap="RdBu_r", norm=norm, interpolation="nearest")
    ax.contour(outside, levels=[0.5], colors="black", linewidths=0.6)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="pixels")
    bar.set_ticks([float(np.ceil(signed.min())), 0.0, *range(10, int(signed.max()) + 1, 10)])
    ax.set_title("signed map of boundary_loss\n(distance outside, 1 - depth inside)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, out)


# -- calibration ------------------------------------------------------------------


def demo_histogram(*, steps: int = 600, seed: int = 0, num_bins: int = NUM_BINS):
    """Train the ``jaxseg demo`` model; its :class:`~jaxseg.ProbabilityHistogram` on the test set.

    Same data, class weights and training as ``jaxseg demo --steps STEPS --seed SEED``.
    """
    import jax
    from flax import nnx

    import jaxseg
    from jaxseg import _demo

    x_train, y_train = _demo.make_dataset(512, seed=seed)
    x_test, y_test = _demo.make_dataset(128, seed=seed + 10_000)
    freq = _demo.label_state(y_train).to_numpy().sum(axis=1)
    weights = jaxseg.class_weights_from_counts(freq, scheme="inverse_sqrt")
    model = _demo.make_model(seed=seed)
    _demo.train(
        model, x_train, y_train, steps=steps, seed=seed, class_weights=weights, progress=False
    )

    @nnx.jit
    def eval_step(model, images, labels):
        return jaxseg.ProbabilityHistogram.from_logits(model(images), labels, num_bins=num_bins)

    h = jaxseg.ProbabilityHistogram.empty(_demo.NUM_CLASSES, num_bins=num_bins)
    for start in range(0, x_test.shape[0], 64):
        h = h + eval_step(model, x_test[start : start + 64], y_test[start : start + 64])
    return jax.device_get(h)


def calibration_figure(out: Path, *, steps: int = 600) -> None:
    import jaxseg
    from jaxseg._demo import CLASS_NAMES
    from jaxseg._report import reliability_figure

    h = demo_histogram(steps=steps)
    ece = jaxseg.expected_calibration_error
    print(f"pixels: {int(h.positives.sum())}, bins: {h.num_bins}")
    print(f"top-label ECE {float(ece(h, mode='top_label')):.4f}")
    print(f"top-label MCE {float(ece(h, mode='top_label', norm='max')):.4f}")
    print(f"marginal ECE  {float(ece(h)):.4f} (mean over classes)")
    per_class = np.asarray(ece(h, average=None))
    print(
        "per class:", ", ".join(f"{n} {v:.4f}" for n, v in zip(CLASS_NAMES, per_class, strict=True))
    )
    top = jaxseg.reliability_diagram(h, mode="top_label")
    conf, acc, count = (np.asarray(x) for x in top)
    print("top-label bins (confidence, accuracy, pixels):")
    for k in range(h.num_bins):
        if count[k]:
            print(
                f"  [{k / h.num_bins:.3f}, {(k + 1) / h.num_bins:.3f}) "
                f"{conf[k]:.4f} {acc[k]:.4f} {int(count[k])}"
            )
    auroc = np.asarray(jaxseg.auroc(h, average=None))
    print(
        "AUROC per class:",
        ", ".join(f"{n} {v:.4f}" for n, v in zip(CLASS_NAMES, auroc, strict=True)),
    )
    _save(reliability_figure(top, jaxseg.reliability_diagram(h), CLASS_NAMES), out)


def _save(fig, out: Path) -> None:
    from jaxseg._report import figure_png_bytes

    out.write_bytes(figure_png_bytes(fig))
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="*", choices=["topology", "calibration"], default=[])
    parser.add_argument("--steps", type=int, default=600, help="demo training steps")
    parser.add_argument("--out", type=Path, default=HERE, help="folder of the PNGs")
    args = parser.parse_args(argv)
    which = args.figures or ["topology", "calibration"]
    if "topology" in which:
        topology_figure(args.out / "topology.png")
    if "calibration" in which:
        calibration_figure(args.out / "reliability.png", steps=args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
