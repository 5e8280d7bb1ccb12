"""T1: ``value_and_grad`` of each topology / distance-map loss against MONAI on CPU.

Workload ``[8, 256, 256, 2]`` logits with blob labels (``--tiny``: ``[2, 16, 16, 2]``,
one repetition). jaxseg runs one jitted ``value_and_grad``; MONAI runs its loss
forward and backward in torch (its distance maps come from SciPy, item by item).
Each row checks that the two losses agree before timing. Prints a Markdown table
and returns 1 if a check fails.

    python -m benchmarks.topology [--tiny] [--reps N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxseg
from benchmarks.timing import cheap_compiles


def _workload(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    rng = np.random.default_rng(0)
    fg = ndimage.gaussian_filter(rng.random(shape), (0, 4, 4)) > 0.5
    y = np.stack([~fg, fg], -1).astype(np.float32)
    x = (rng.normal(size=y.shape) + 2 * (2 * y - 1)).astype(np.float32)
    return x, y


def _rows():
    from monai import losses as ml

    return [
        (
            "soft_cldice_loss",
            lambda x, y: jaxseg.soft_cldice_loss(x, y, average="micro"),
            ml.SoftclDiceLoss(softmax=True),
        ),
        (
            "soft_cldice_loss(dice_weight=0.5)",
            lambda x, y: jaxseg.soft_cldice_loss(x, y, average="micro", dice_weight=0.5),
            ml.SoftDiceclDiceLoss(softmax=True),
        ),
        (
            "hausdorff_dt_loss",
            jaxseg.hausdorff_dt_loss,
            ml.HausdorffDTLoss(softmax=True, include_background=True),
        ),
    ]


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy shapes, one repetition")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    import torch

    shape = (2, 16, 16) if args.tiny else (8, 256, 256)
    reps = 1 if args.tiny else args.reps
    x, y = _workload(shape)
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    xt = torch.tensor(np.moveaxis(x, -1, 1))
    yt = torch.tensor(np.moveaxis(y, -1, 1))
    print(f"T1: value_and_grad on {list(x.shape)} (median of {reps}), jax {jax.__version__}")
    print("| loss | jaxseg (s) | compile (s) | MONAI (s) | ratio |")
    print("|---|---|---|---|---|")
    with cheap_compiles(args.tiny):
        return _run(xj, yj, xt, yt, reps)


def _run(xj, yj, xt, yt, reps: int) -> int:
    status = 0
    for name, fn, peer in _rows():
        # labels are an argument, as in a training step (a constant would be folded)
        step = jax.jit(jax.value_and_grad(lambda a, b, fn=fn: jnp.mean(fn(a, b))))
        t = time.perf_counter()
        compiled = step.lower(xj, yj).compile()
        compile_s = time.perf_counter() - t
        ours = jax.block_until_ready(compiled(xj, yj))

        def monai_step(peer=peer):
            a = xt.clone().requires_grad_(True)
            v = peer(a, yt)
            v.backward()
            return v, a.grad

        ref_v, _ = monai_step()
        if not np.isclose(float(ours[0]), ref_v.item(), rtol=1e-4, atol=1e-5):
            print(f"check failed for {name}: {float(ours[0])} vs MONAI {ref_v.item()}")
            status = 1
        t_ours = _median_time(lambda c=compiled: jax.block_until_ready(c(xj, yj)), reps)
        t_monai = _median_time(monai_step, reps)
        ratio = t_ours / t_monai
        print(f"| {name} | {t_ours:.4f} | {compile_s:.2f} | {t_monai:.4f} | {ratio:.2f}x |")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
