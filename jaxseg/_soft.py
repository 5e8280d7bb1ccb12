"""Soft statistics: differentiable float sums behind the region losses."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jaxseg import _validation as v
from jaxseg._fused import class_sums, softmax_label_sums
from jaxseg._kernels import label_validity
from jaxseg._state import FLOAT, StateAlgebra

ArrayLike = jax.typing.ArrayLike
ACTIVATIONS = ("softmax", "sigmoid")


def _static(default: Any = dataclasses.MISSING) -> Any:
    return dataclasses.field(default=default, metadata={"static": True})


def prepare_targets(
    logits: jax.Array,
    labels: jax.Array,
    *,
    exclusive: bool,
    ignore_index: tuple[int, ...],
    where: jax.Array | None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Turn labels into float targets ``[..., C]`` plus pixel masks.

    Integer class ids (``exclusive``, shape ``logits.shape[:-1]``) become one-hot
    rows with out-of-range and ignored ids sanitised first, so that label 255
    never indexes out of bounds and -1 never wraps. Float labels of
    ``logits.shape`` are used as given (soft / one-hot targets). For
    independent channels (``not exclusive``) labels have ``logits.shape``.

    Returns:
      ``(targets, valid, invalid)``: ``targets`` float32 of ``logits.shape``
      (zero where not valid); ``valid`` and ``invalid`` are boolean masks,
      per pixel ``logits.shape[:-1]`` for exclusive classes and per element
      ``logits.shape`` for independent channels.
    """
    c = logits.shape[-1]
    if jnp.issubdtype(labels.dtype, jnp.floating):
        if exclusive and tuple(labels.shape) == tuple(logits.shape[:-1]):
            v.check_int_labels(labels)  # float class ids: raises TypeError
        v.check_same_shape("logits", logits, "labels", labels)
        mask_shape = logits.shape[:-1] if exclusive else logits.shape
        if where is None:
            valid = jnp.ones(mask_shape, jnp.bool_)
        elif exclusive:
            valid = v.broadcast_where(where, mask_shape)
        else:
            valid = v.channel_where(where, logits.shape)
        if ignore_index:
            raise ValueError(
                "`ignore_index` applies to integer labels; with float (soft / one-hot) "
                "labels mask pixels with `where` instead."
            )
        targets = labels.astype(jnp.float32)
        vmask = valid[..., None] if exclusive else valid
        return jnp.where(vmask, targets, 0.0), valid, jnp.zeros_like(valid)
    labels = v.check_int_labels(labels)
    if exclusive:
        safe, valid, invalid = sanitize_class_ids(logits, labels, ignore_index, where)
        onehot = jax.nn.one_hot(safe, c, dtype=jnp.float32) * valid[..., None].astype(jnp.float32)
        return onehot, valid, invalid
    v.check_same_shape("logits", logits, "labels", labels)
    mask = v.channel_where(where, logits.shape)
    valid, invalid = label_validity(labels, 2, ignore_index, mask)
    return ((labels == 1) & valid).astype(jnp.float32), valid, invalid


def sanitize_class_ids(
    logits: jax.Array,
    labels: jax.Array,
    ignore_index: tuple[int, ...],
    where: Any,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Integer class ids -> ``(safe int32 ids, valid, invalid)``, all ``logits.shape[:-1]``.

    Ignored, masked and out-of-range ids become 0 in ``safe`` and false in
    ``valid``, so no gather or one-hot ever sees them.
    """
    labels = v.check_int_labels(labels)
    v.check_labels_for_logits(logits, labels)
    mask = v.broadcast_where(where, labels.shape)
    valid, invalid = label_validity(labels, logits.shape[-1], ignore_index, mask)
    return jnp.where(valid, labels, 0).astype(jnp.int32), valid, invalid


def pool_axes(axis: Any, pixel_ndim: int) -> tuple[int, ...]:
    """Pooled per-pixel axes; ``None`` means all but the first (batch) axis.

    The same default as every loss: one result per example. Pool everything
    with ``axis=tuple(range(pixel_ndim))`` or fold a batched state with ``reduce``.
    """
    if axis is None:
        return tuple(range(1, pixel_ndim))
    return v.normalize_axis(axis, pixel_ndim)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SoftStats(StateAlgebra):
    """Differentiable per-class sums of probabilities against (soft) targets.

    With probabilities ``p`` and targets ``y`` in ``[0, 1]`` summed over valid
    pixels of the pooled axes::

        tp_c = sum min(p, y)        fp_c = sum max(p - y, 0)
        fn_c = sum max(y - p, 0)    tn_c = sum min(1 - p, 1 - y)

    For hard targets ``y in {0, 1}`` these are the familiar ``sum p*y``,
    ``sum p*(1-y)``, ``sum (1-p)*y``. For soft targets this L1 form (as in
    smp and MONAI's ``soft_label``) keeps the region scores maximal exactly at
    ``p = y``, which the product form does not. On one-hot ``p`` the soft
    statistics equal the hard counts, so every score function accepts both.

    ``axis`` defaults to every per-pixel axis but the first (batch) one, as in
    the losses, so ``1 - jaxseg.dice(SoftStats.from_logits(x, y))`` is
    ``jaxseg.dice_loss(x, y)``. The state has the algebra of the count states:
    ``merge`` / ``+``, ``reduce`` (fold a batch axis), ``psum``. A class whose
    labelled mass ``tp + fn`` is negligible (at most ``1e-6`` pixel) is *empty*
    for the scores: a softmax never predicts exactly zero, so the count states'
    rule (``tp + fp + fn == 0``) would never apply.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> probs = jnp.array([[[0.8, 0.2], [0.4, 0.6]]])  # [batch 1, 2 pixels, C 2]
      >>> s = jaxseg.SoftStats.from_probabilities(probs, jnp.array([[0, 1]]))
      >>> s.tp
      Array([[0.8, 0.6]], dtype=float32)
      >>> s.fp, s.fn
      (Array([[0.4, 0.2]], dtype=float32), Array([[0.2, 0.4]], dtype=float32))
      >>> jaxseg.dice(s, average=None)
      Array([[0.72727275, 0.6666667 ]], dtype=float32)
      >>> jaxseg.dice(s.reduce(), average=None)  # fold the batch axis
      Array([0.72727275, 0.6666667 ], dtype=float32)

    Attributes:
      tp, fp, fn, tn: float32 ``[..., C]`` sums.
      invalid: float32 ``[...]``, valid-mask pixels whose integer label was out of range.
      num_classes: ``C`` (static).
      exclusive: ``True`` for softmax classes, ``False`` for sigmoid channels (static).
    """

    tp: jax.Array = dataclasses.field(metadata=FLOAT)
    fp: jax.Array = dataclasses.field(metadata=FLOAT)
    fn: jax.Array = dataclasses.field(metadata=FLOAT)
    tn: jax.Array = dataclasses.field(metadata=FLOAT)
    invalid: jax.Array = dataclasses.field(metadata=FLOAT)
    num_classes: int = _static()
    exclusive: bool = _static(True)
    ignore_classes: tuple[int, ...] = _static(())
    soft: ClassVar[bool] = True

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        c = self.num_classes
        return {"tp": (c,), "fp": (c,), "fn": (c,), "tn": (c,), "invalid": ()}

    @classmethod
    def empty(
        cls, num_classes: int, *, exclusive: bool = True, ignore_index: Any = None
    ) -> SoftStats:
        """The identity of :meth:`merge`: all sums zero.

        Pass the ``ignore_index`` of the updates so that the ignored classes match.
        """
        c = v.check_num_classes(num_classes)
        ignored = v.normalize_ignore_index(ignore_index)
        z = jnp.zeros((c,), jnp.float32)
        return cls._of((z, z, z, z), jnp.zeros((), jnp.float32), exclusive, ignored)

    @classmethod
    def _of(
        cls,
        sums: tuple[jax.Array, ...],
        invalid: jax.Array,
        exclusive: bool,
        ignored: tuple[int, ...],
    ) -> SoftStats:
        """A state of the sums ``(tp, fp, fn, tn)``; ignored ids count for exclusive classes."""
        c = sums[0].shape[-1]
        return cls(
            *sums,
            invalid,
            num_classes=c,
            exclusive=exclusive,
            ignore_classes=v.class_ids_in_range(ignored, c) if exclusive else (),
        )

    @classmethod
    def from_probabilities(
        cls,
        probs: ArrayLike,
        labels: ArrayLike,
        *,
        axis: Any = None,
        exclusive: bool = True,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
    ) -> SoftStats:
        """Sum probabilities against labels over the pooled ``axis``.

        Args:
          probs: probabilities ``[..., C]`` (any float dtype; sums in float32).
          labels: int class ids ``probs.shape[:-1]`` or float targets
            ``probs.shape`` when ``exclusive``; 0/1 ints or floats of
            ``probs.shape`` when not.
          axis: per-pixel axes to pool (the class axis is not counted); default
            all but the first (batch) axis, as in the losses.
          exclusive: classes are mutually exclusive (softmax) or independent
            channels (sigmoid).
          ignore_index: integer label id(s) to leave out.
          where: boolean mask, per pixel (``probs.shape[:-1]``), or per element
            for independent channels.

        Returns:
          A state whose sums have the non-pooled axes followed by ``C``.
        """
        probs = v.check_logits(jnp.asarray(probs), "probs")
        labels = v.as_int_array(labels, "labels")
        ignored = v.normalize_ignore_index(ignore_index)
        y, valid, invalid = prepare_targets(
            probs, labels, exclusive=exclusive, ignore_index=ignored, where=where
        )
        axes = pool_axes(axis, probs.ndim - 1)
        p = probs.astype(jnp.float32)
        if exclusive:
            vmask = valid[..., None]
            invalid_sum = jnp.sum(invalid, axis=axes, dtype=jnp.float32)
        else:
            vmask = valid
            invalid_sum = jnp.sum(jnp.any(invalid, -1), axis=axes, dtype=jnp.float32)
        p = jnp.where(vmask, p, 0.0)
        one = vmask.astype(jnp.float32)
        tp = jnp.sum(jnp.minimum(p, y), axis=axes)
        fp = jnp.sum(jnp.maximum(p - y, 0.0), axis=axes)
        fn = jnp.sum(jnp.maximum(y - p, 0.0), axis=axes)
        tn = jnp.sum(jnp.minimum(one - p, one - y), axis=axes)
        return cls._of((tp, fp, fn, tn), invalid_sum, exclusive, ignored)

    @classmethod
    def from_logits(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        *,
        activation: str = "softmax",
        axis: Any = None,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
    ) -> SoftStats:
        """:meth:`from_probabilities` of ``softmax(logits)`` or ``sigmoid(logits)``.

        ``activation="softmax"`` treats the last axis as exclusive classes,
        ``"sigmoid"`` as independent channels. The activation runs in float32.
        """
        v.check_choice("activation", activation, ACTIVATIONS)
        logits = v.check_logits(jnp.asarray(logits)).astype(jnp.float32)
        labels = v.as_int_array(labels, "labels")
        if activation == "softmax" and not jnp.issubdtype(labels.dtype, jnp.floating):
            return cls._from_logits_and_ids(logits, labels, axis, ignore_index, where)
        if activation == "softmax":
            probs = jax.nn.softmax(logits, axis=-1)
        else:
            probs = jax.nn.sigmoid(logits)
        return cls.from_probabilities(
            probs,
            labels,
            axis=axis,
            exclusive=activation == "softmax",
            ignore_index=ignore_index,
            where=where,
        )

    @classmethod
    def from_model_output(
        cls, logits: ArrayLike, labels: ArrayLike, mask: ArrayLike | None = None, **_: Any
    ) -> SoftStats:
        """CLU protocol: softmax :meth:`from_logits` pooled over every pixel axis.

        ``mask`` acts as ``where``; other keywords are ignored. The result has
        no batch axis, so it merges into :meth:`empty`.
        """
        logits = jnp.asarray(logits)
        where = None if mask is None else jnp.asarray(mask).astype(jnp.bool_)
        axis = tuple(range(logits.ndim - 1))
        return cls.from_logits(logits, labels, axis=axis, where=where)

    def compute(self) -> jax.Array:
        """Mean soft IoU (``average="macro"``), the CLU ``compute`` of this metric."""
        from jaxseg._scores import iou

        return iou(self, average="macro")

    @classmethod
    def _from_logits_and_ids(cls, x, labels, axis, ignore_index, where) -> SoftStats:
        """Softmax statistics against class ids through the fused custom-VJP reduction.

        Same values as :meth:`from_probabilities` (for hard targets ``min(p, y) = p y``),
        but the backward pass recomputes the softmax from a saved log-sum-exp
        instead of keeping ``[..., C]`` intermediates (see :mod:`jaxseg._fused`).
        """
        ignored = v.normalize_ignore_index(ignore_index)
        safe, valid, invalid = sanitize_class_ids(x, labels, ignored, where)
        axes = pool_axes(axis, x.ndim - 1)
        c = x.shape[-1]
        tp, total = softmax_label_sums(x, safe, valid, axes)
        support = class_sums(None, safe, valid, axes, c)
        n_valid = jnp.sum(valid, axis=axes, dtype=jnp.int32).astype(jnp.float32)[..., None]
        fp = total - tp
        fn = support - tp
        tn = n_valid - total - support + tp
        return cls(
            tp,
            fp,
            fn,
            tn,
            jnp.sum(invalid, axis=axes, dtype=jnp.float32),
            num_classes=c,
            exclusive=True,
            ignore_classes=v.class_ids_in_range(ignored, c),
        )
