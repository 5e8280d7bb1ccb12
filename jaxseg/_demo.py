"""``jaxseg demo``: a small Flax NNX segmentation model trained on synthetic shapes.

The dataset is generated with NumPy: noisy three-channel images on a smooth
random background, with circles, squares, triangles and thin bars. Squares and
triangles share a colour range, so the net has to look at shape; bars are rare
(a few percent of the pixels), so class weights and Dice matter. Training uses
:func:`jaxseg.cross_entropy_loss` with class weights from
:func:`jaxseg.class_weights_from_counts` over the whole training set, plus
:func:`jaxseg.dice_loss`; evaluation accumulates an exact
:class:`jaxseg.ConfusionMatrix` over a held-out set.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

CLASS_NAMES = ("background", "circle", "square", "triangle", "bar")
NUM_CLASSES = len(CLASS_NAMES)
# Mean fill colour (RGB) per foreground class; squares and triangles overlap.
_COLOURS = {
    1: (0.9, 0.3, 0.3),
    2: (0.3, 0.5, 0.9),
    3: (0.3, 0.6, 0.8),
    4: (0.9, 0.9, 0.3),
}


# -- data -------------------------------------------------------------------------


def _draw(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image ``float32 [H, W, 3]`` and its label map ``int32 [H, W]``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    gx, gy = rng.normal(0.0, 0.3, size=(2, 3))
    base = rng.uniform(0.0, 0.4, size=3)
    image = base + (gx * xx[..., None] + gy * yy[..., None]) / size
    label = np.zeros((size, size), np.int32)
    shapes = list(rng.choice([1, 2, 3], size=rng.integers(2, 5)))
    if rng.random() < 0.5:
        shapes.append(4)
    for cls in shapes:
        cy, cx = rng.uniform(0.15 * size, 0.85 * size, size=2)
        r = rng.uniform(0.1, 0.2) * size
        if cls == 1:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif cls == 2:
            mask = (np.abs(yy - cy) <= r * 0.85) & (np.abs(xx - cx) <= r * 0.85)
        elif cls == 3:  # upright isosceles triangle: apex at the top
            top = cy - r
            half = (yy - top) * 0.6
            mask = (yy >= top) & (yy <= cy + r) & (np.abs(xx - cx) <= half)
        else:  # thin bar, horizontal or vertical, 2 px wide
            length = rng.uniform(0.3, 0.6) * size
            if rng.random() < 0.5:
                mask = (np.abs(yy - cy) < 1.0) & (np.abs(xx - cx) <= length / 2)
            else:
                mask = (np.abs(xx - cx) < 1.0) & (np.abs(yy - cy) <= length / 2)
        colour = np.asarray(_COLOURS[cls]) + rng.normal(0.0, 0.12, size=3)
        image[mask] = colour
        label[mask] = cls
    image = image + rng.normal(0.0, 0.15, size=image.shape)
    return image.astype(np.float32), label


def make_dataset(num: int, *, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic shapes: images ``float32 [N, H, W, 3]`` and labels ``int32 [N, H, W]``."""
    rng = np.random.default_rng(seed)
    pairs = [_draw(rng, size) for _ in range(num)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


# -- model ------------------------------------------------------------------------


def make_model(num_classes: int = NUM_CLASSES, *, width: int = 16, seed: int = 0) -> Any:
    """A tiny U-Net (Flax NNX): two resolutions, one skip connection."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    class TinyUNet(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            w = width
            self.enc1 = nnx.Conv(3, w, (3, 3), rngs=rngs)
            self.enc2 = nnx.Conv(w, w, (3, 3), rngs=rngs)
            self.down = nnx.Conv(w, 2 * w, (3, 3), strides=(2, 2), rngs=rngs)
            self.mid1 = nnx.Conv(2 * w, 2 * w, (3, 3), kernel_dilation=(2, 2), rngs=rngs)
            self.mid2 = nnx.Conv(2 * w, 2 * w, (3, 3), kernel_dilation=(2, 2), rngs=rngs)
            self.up = nnx.ConvTranspose(2 * w, w, (2, 2), strides=(2, 2), rngs=rngs)
            self.dec = nnx.Conv(2 * w, w, (3, 3), rngs=rngs)
            self.head = nnx.Conv(w, num_classes, (1, 1), rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            relu = jax.nn.relu
            skip = relu(self.enc2(relu(self.enc1(x))))
            h = relu(self.down(skip))
            h = relu(self.mid2(relu(self.mid1(h))))
            h = relu(self.up(h))
            h = relu(self.dec(jnp.concatenate([h, skip], axis=-1)))
            return self.head(h)

    # Build the structure abstractly, then fill it from NumPy: He-normal kernels,
    # zero biases. Running Flax's initialisers eagerly compiles dozens of tiny
    # programs, which costs more CPU time than the whole short training run.
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: TinyUNet(nnx.Rngs(0))))
    rng = np.random.default_rng(seed)

    def init(path: Any, leaf: Any) -> jax.Array:
        names = [getattr(k, "key", None) for k in path]
        if "bias" in names:
            return jnp.zeros(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape), leaf.dtype)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(init, abstract))


# -- training and evaluation ------------------------------------------------------


def label_state(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> Any:
    """Label histogram of a dataset as a :class:`~jaxseg.ConfusionMatrix` (labels vs labels)."""
    import jax.numpy as jnp

    import jaxseg

    y = jnp.asarray(labels)
    return jaxseg.ConfusionMatrix.from_predictions(y, y, num_classes=num_classes)


def train(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    seed: int = 0,
    class_weights: Any = None,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` in place with Adam on CE (class-weighted) + Dice; return the losses."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    import jaxseg

    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
    x_all, y_all = jnp.asarray(images), jnp.asarray(labels)
    weights = None if class_weights is None else jnp.asarray(class_weights, jnp.float32)

    def loss_fn(model, x, y):
        logits = model(x)
        ce = jaxseg.cross_entropy_loss(logits, y, class_weights=weights)  # [batch]
        dl = jaxseg.dice_loss(logits, y)  # [batch]
        return jnp.mean(ce) + jnp.mean(dl)

    @nnx.jit
    def step(model, optimizer, idx):
        x, y = x_all[idx], y_all[idx]
        loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(seed)
    losses: list[float] = []
    bar = _progress(steps, progress, "train")
    n = images.shape[0]
    for i in range(steps):
        idx = jnp.asarray(rng.integers(0, n, size=batch_size))
        # optax's Adam bias correction mixes Python floats with int32 step counts,
        # which strict dtype promotion (used by the test suite) rejects.
        with jax.numpy_dtype_promotion("standard"):
            loss = step(model, optimizer, idx)
        if i % 10 == 0 or i == steps - 1:
            losses.append(float(jax.device_get(loss)))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        bar.update(1)
    bar.close()
    return losses


def evaluate(
    model: Any, images: np.ndarray, labels: np.ndarray, *, batch_size: int = 64
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Exact confusion matrix over a dataset, per-image mIoU and the predictions."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import jaxseg

    @nnx.jit
    def eval_step(model, x, y):
        logits = model(x)
        states = jax.vmap(jaxseg.ConfusionMatrix.from_logits)(logits, y)  # per image
        return states.reduce(), jaxseg.iou(states), jnp.argmax(logits, axis=-1)

    total = jaxseg.ConfusionMatrix.empty(NUM_CLASSES)
    mious, preds = [], []
    for start in range(0, images.shape[0], batch_size):
        x = jnp.asarray(images[start : start + batch_size])
        y = jnp.asarray(labels[start : start + batch_size])
        state, miou, pred = eval_step(model, x, y)
        total = total + state
        mious.append(np.asarray(miou))
        preds.append(np.asarray(pred))
    return total, np.concatenate(mious), np.concatenate(preds)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, file=sys.stderr, desc=desc, disable=None if enabled else True, leave=False
    )


def _palette() -> np.ndarray:
    return np.array(
        [[0.1, 0.1, 0.1], *(_COLOURS[c] for c in range(1, NUM_CLASSES))], dtype=np.float32
    )


def figure(images, labels, preds, matrix) -> Any:
    """Inputs, labels and predictions of a few test images, and the confusion matrix."""
    from matplotlib.patches import Patch

    from jaxseg._report import _new_figure, confusion_figure

    k = min(4, images.shape[0])
    fig = _new_figure((13, 7.5))
    sub = fig.subfigures(1, 2, width_ratios=[1.2, 1])
    axes = sub[0].subplots(k, 3, squeeze=False)
    pal = _palette()
    for i in range(k):
        for j, (title, img) in enumerate(
            (
                ("input", np.clip(images[i], 0, 1)),
                ("label", pal[labels[i]]),
                ("prediction", pal[preds[i]]),
            )
        ):
            ax = axes[i, j]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title)
    sub[0].legend(
        handles=[Patch(color=pal[c], label=n) for c, n in enumerate(CLASS_NAMES)],
        loc="outside lower center",
        ncols=NUM_CLASSES,
        fontsize=8,
    )
    confusion_figure(matrix, CLASS_NAMES, ax=sub[1].subplots())
    return fig


def train_and_evaluate(
    *,
    steps: int = 600,
    seed: int = 0,
    quiet: bool = False,
    num_train: int = 512,
    num_test: int = 128,
    size: int = 32,
    log: Any = None,
) -> dict[str, Any]:
    """Generate data, train with CE + Dice, evaluate exactly; return the report dict.

    The report holds the per-class table and summary scores (see
    :func:`jaxseg._report.class_report`) plus ``"losses"``, and the arrays needed
    for the figure under ``"_figure"``.
    """
    import jaxseg
    from jaxseg._report import class_report

    def say(text: str) -> None:
        if log is not None:
            print(text, file=log)

    t0 = time.perf_counter()
    x_train, y_train = make_dataset(num_train, size=size, seed=seed)
    x_test, y_test = make_dataset(num_test, size=size, seed=seed + 10_000)
    freq = label_state(y_train).to_numpy().sum(axis=1)
    weights = jaxseg.class_weights_from_counts(freq, scheme="inverse_sqrt")
    say(f"synthetic shapes: {num_train} training and {num_test} test images of {size}x{size}")
    say(
        "class pixel share: "
        + ", ".join(f"{n} {f:.1%}" for n, f in zip(CLASS_NAMES, freq / freq.sum(), strict=True))
    )
    say(
        "class weights (inverse_sqrt, from the whole training set): "
        + ", ".join(f"{float(w):.2f}" for w in np.asarray(weights))
    )
    model = make_model(seed=seed)
    losses = train(
        model, x_train, y_train, steps=steps, seed=seed, class_weights=weights, progress=not quiet
    )
    say(
        f"trained {steps} steps in {time.perf_counter() - t0:.1f} s; "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    state, mious, preds = evaluate(model, x_test, y_test)
    report = class_report(state.to_numpy(), CLASS_NAMES)
    report["miou_imagewise"] = float(np.nanmean(mious))
    report["num_images_scored"] = int(np.sum(~np.isnan(mious)))
    report["losses"] = losses
    report["_figure"] = (x_test, y_test, preds, state.to_numpy())
    return report


def run(
    *,
    steps: int = 600,
    out: str | None = "jaxseg-demo.png",
    seed: int = 0,
    quiet: bool = False,
    **sizes: int,
) -> int:
    """The ``jaxseg demo`` command: train, evaluate, print the table, write the figure."""
    from jaxseg import _io
    from jaxseg._report import figure_png_bytes, format_summary, format_table

    out_stream = sys.stdout
    report = train_and_evaluate(steps=steps, seed=seed, quiet=quiet, log=out_stream, **sizes)
    n_test = report["_figure"][0].shape[0]
    print(f"held-out evaluation ({n_test} images):", file=out_stream)
    print(format_table(report), file=out_stream)
    print(format_summary(report), file=out_stream)
    if out:
        fig = figure(*report["_figure"])
        _io.write_output(out, figure_png_bytes(fig))
        print(f"wrote {out}", file=out_stream)
    return 0
