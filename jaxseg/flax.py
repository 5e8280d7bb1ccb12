"""Flax NNX adapter: exact segmentation metrics as an ``nnx.Metric``.

Flax is an optional dependency (``pip install 'jaxseg[flax]'``); this module is
the only place jaxseg imports it, and ``import jaxseg`` never does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg import _validation as v
from jaxseg._scores import iou, mean_accuracy, pixel_accuracy
from jaxseg._state import ConfusionMatrix

try:
    from flax import nnx
except ImportError as e:  # pragma: no cover - exercised only without flax
    raise ImportError(
        "jaxseg.flax needs Flax; install it with `pip install 'jaxseg[flax]'`."
    ) from e

__all__ = ["SegmentationMetrics"]


def _leaves(state: Any) -> dict[str, jax.Array]:
    """The array fields of a state dataclass, by name."""
    return {
        f.name: getattr(state, f.name)
        for f in dataclasses.fields(state)
        if not f.metadata.get("static")
    }


class SegmentationMetrics(nnx.Metric):
    """Exact multiclass segmentation metrics as an ``nnx.Metric``.

    Holds a :class:`jaxseg.ConfusionMatrix` (exact wide integer counts) in
    ``nnx.metrics.MetricState`` variables, so ``update`` works inside
    ``nnx.jit`` and the metric drops into ``nnx.MultiMetric``. Scores are
    computed once from the summed counts (dataset-level mIoU), never averaged
    over batches::

        IoU_c = TP_c / (TP_c + FP_c + FN_c)        mIoU = mean over counted classes
        pixel accuracy = sum_c TP_c / sum_c (TP_c + FN_c)

    Args:
      num_classes: ``C``.
      ignore_index: a label id or tuple of ids to leave out (e.g. ``255``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxseg.flax import SegmentationMetrics
      >>> metric = SegmentationMetrics(2, ignore_index=255)
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 1.0]]])
      >>> metric.update(logits=logits, labels=jnp.array([[0, 1, 1, 255]]))
      >>> out = metric.compute()
      >>> out["mean_iou"], out["pixel_accuracy"]
      (Array(0.5, dtype=float32), Array(0.6666667, dtype=float32))
      >>> out["iou"]
      Array([0.5, 0.5], dtype=float32)
      >>> metric.state.to_numpy()
      array([[1, 0],
             [1, 1]])
      >>> metric.reset()
      >>> int(metric.state.to_numpy().sum())
      0

    References:
      Everingham et al. 2010, "The PASCAL Visual Object Classes (VOC)
      Challenge" (dataset-level IoU from accumulated counts).
    """

    def __init__(self, num_classes: int, *, ignore_index: Any = None):
        self.num_classes = v.check_num_classes(num_classes)
        self.ignore_index = v.normalize_ignore_index(ignore_index)
        for name, leaf in _leaves(self._empty()).items():
            setattr(self, name, nnx.metrics.MetricState(leaf))

    def _empty(self) -> ConfusionMatrix:
        return ConfusionMatrix.empty(self.num_classes, ignore_index=self.ignore_index)

    @property
    def state(self) -> ConfusionMatrix:
        """The exact accumulated :class:`jaxseg.ConfusionMatrix`."""
        empty = self._empty()
        return dataclasses.replace(empty, **{k: getattr(self, k)[...] for k in _leaves(empty)})

    def reset(self) -> None:
        """Set every count to zero, in place."""
        self._assign(self._empty())

    def update(
        self,
        *,
        logits: jax.typing.ArrayLike,
        labels: jax.typing.ArrayLike,
        where: jax.typing.ArrayLike | None = None,
        mask: jax.typing.ArrayLike | None = None,
        **_: Any,
    ) -> None:
        """Count ``argmax(logits)`` against ``labels`` and add to the state, in place.

        Args:
          logits: scores ``[..., C]``.
          labels: int class ids ``logits.shape[:-1]``.
          where: boolean mask broadcastable to ``labels.shape``; false pixels
            (or whole padded examples, e.g. ``valid[:, None, None]``) are left out.
          mask: the mask ``nnx.MultiMetric.update`` passes to every metric;
            combined with ``where`` (both must hold). Other keyword arguments
            (such as a loss for an ``nnx.metrics.Average`` in the same
            ``MultiMetric``) are ignored.
        """
        logits = jnp.asarray(logits)
        if logits.ndim >= 1 and logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"`logits` must have {self.num_classes} classes on the last axis; "
                f"got shape {tuple(logits.shape)}."
            )
        labels = jnp.asarray(labels)
        masks = [
            v.broadcast_where(m, tuple(labels.shape), name)
            for name, m in (("where", where), ("mask", mask))
            if m is not None
        ]
        combined = None
        for m in masks:
            combined = m if combined is None else combined & m
        self.merge_state(
            ConfusionMatrix.from_logits(
                logits, labels, ignore_index=self.ignore_index, where=combined
            )
        )

    def merge_state(self, state: ConfusionMatrix) -> None:
        """Add an existing state (e.g. one summed with ``psum`` across devices), in place."""
        self._assign(self.state.merge(state))

    def _assign(self, state: ConfusionMatrix) -> None:
        for name, leaf in _leaves(state).items():
            getattr(self, name)[...] = leaf

    def compute(self) -> dict[str, jax.Array]:
        """Scores from the accumulated counts.

        Returns:
          A dict with ``"mean_iou"`` (scalar), ``"pixel_accuracy"`` (scalar),
          ``"mean_accuracy"`` (scalar, mean per-class recall) and ``"iou"``
          (per class ``[C]``, NaN for a class absent from labels and predictions).
        """
        state = self.state
        return {
            "mean_iou": iou(state, average="macro"),
            "pixel_accuracy": pixel_accuracy(state),
            "mean_accuracy": mean_accuracy(state),
            "iou": iou(state, average=None),
        }
