"""Exact count states: :class:`ConfusionMatrix` and :class:`BinaryStats`.

Both are immutable pytrees (registered dataclasses) whose leaves are wide
integer counts (:mod:`jaxseg._counts`) and whose class count and ignored
classes are static metadata. They form a commutative monoid under
:meth:`merge` with :meth:`empty` as identity, so they can be accumulated over
batches (Python loops, ``lax.scan``), vmapped images (:meth:`reduce`), devices
(:meth:`psum`, or nothing at all under ``jit`` over sharded arrays) and hosts.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, Self

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseg import _checked, _counts, _kernels
from jaxseg import _validation as v

ArrayLike = jax.typing.ArrayLike


def _static(default: Any = dataclasses.MISSING) -> Any:
    return dataclasses.field(default=default, metadata={"static": True})


class StateAlgebra:
    """The commutative monoid shared by every statistics state.

    Subclasses are frozen dataclasses whose non-static fields are the array
    leaves and whose static fields (``num_classes``, ignored classes, ...) must
    match to merge. A subclass says how two leaves add (:meth:`_combine`), how a
    leading axis folds (:meth:`_fold`) and how a mapped axis sums
    (:meth:`_all_reduce`); ``merge`` / ``+``, ``reduce``, ``psum`` and the
    compatibility checks are written once here.
    """

    num_classes: int
    ignore_classes: tuple[int, ...]
    #: Classes are mutually exclusive (softmax / argmax) rather than independent.
    exclusive: bool
    #: Float sums of probabilities rather than exact counts (see ``_classwise``).
    soft: ClassVar[bool] = False

    def _leaves(self) -> dict[str, jax.Array]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if not f.metadata.get("static")
        }

    def _static_fields(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.metadata.get("static")
        }

    # Leaf arithmetic, overridden by the exact count states.
    @staticmethod
    def _combine(a: jax.Array, b: jax.Array) -> jax.Array:
        return a + b

    @staticmethod
    def _fold(a: jax.Array) -> jax.Array:
        return a.sum(0)

    @staticmethod
    def _all_reduce(a: jax.Array, axis_name: Any) -> jax.Array:
        return lax.psum(a, axis_name)

    def _check_compatible(self, other: Any) -> None:
        name = type(self).__name__
        if type(other) is not type(self):
            raise TypeError(f"can only merge {name} with {name}; got {type(other).__name__}.")
        mine_static, theirs_static = self._static_fields(), other._static_fields()
        if other.num_classes != self.num_classes:
            hint = (
                ""
                if self.exclusive
                else " Channels are read from the last axis: for arrays without a channel "
                "axis (one binary mask), pass `channel_axis=None`."
            )
            raise ValueError(
                f"cannot merge states with different `num_classes`: "
                f"{self.num_classes} and {other.num_classes}.{hint}"
            )
        if other.ignore_classes != self.ignore_classes:
            raise ValueError(
                "cannot merge states with different ignored classes: "
                f"{self.ignore_classes} and {other.ignore_classes}; create the empty state "
                "with the same `ignore_index` as the updates."
            )
        if mine_static != theirs_static:
            raise ValueError(
                f"cannot merge {name} states with different settings: "
                f"{mine_static} and {theirs_static}."
            )
        mine, theirs = self._leaves(), other._leaves()
        for leaf in mine:
            if mine[leaf].shape != theirs[leaf].shape:
                raise ValueError(
                    f"cannot merge states with different batch shapes: `{leaf}` has shape "
                    f"{mine[leaf].shape} and {theirs[leaf].shape}; call `.reduce()` on "
                    "batched (vmapped or per-device) states first."
                )

    def merge(self, other: Self) -> Self:
        """Add the statistics of two states (commutative and associative)."""
        self._check_compatible(other)
        theirs = other._leaves()
        new = {k: self._combine(a, theirs[k]) for k, a in self._leaves().items()}
        self._check_values(new, "merge")
        return dataclasses.replace(self, **new)  # type: ignore[type-var]

    def __add__(self, other: Self) -> Self:
        return self.merge(other)

    def reduce(self) -> Self:
        """Fold the leading axis (of a vmapped or per-device stacked state)."""
        if not self.batch_shape:
            raise ValueError("`reduce` folds a leading batch axis, but this state is not batched.")
        new = {k: self._fold(a) for k, a in self._leaves().items()}
        self._check_values(new, "reduce")
        return dataclasses.replace(self, **new)  # type: ignore[type-var]

    def psum(self, axis_name: Any) -> Self:
        """Sum over a named mapped axis (``pmap``, ``shard_map``) with ``lax.psum``.

        Communication is the leaves, ``O(C^2)`` words for a confusion matrix,
        independent of the number of devices. Count states are exact for up to
        65,536 members: a larger (static) axis raises ``ValueError``; under
        :func:`jaxseg.checked` a count reaching ``2**48`` raises too.
        """
        self._check_axis_size(axis_name)
        new = {k: self._all_reduce(a, axis_name) for k, a in self._leaves().items()}
        self._check_values(new, "psum")
        return dataclasses.replace(self, **new)  # type: ignore[type-var]

    # Hooks of the exact count states (no-ops for float sums).
    def _check_values(self, leaves: dict[str, jax.Array], op: str) -> None:
        pass

    def _check_axis_size(self, axis_name: Any) -> None:
        pass

    #: The leaf whose leading axes are the batch axes, and its unbatched rank.
    _batch_leaf: ClassVar[tuple[str, int]] = ("counts", 3)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading axes added by ``vmap`` (per-image states) or stacking."""
        name, ndim = self._batch_leaf
        leaf = getattr(self, name)
        return tuple(leaf.shape[: leaf.ndim - ndim])

    @property
    def counted_classes(self) -> np.ndarray:
        """Static boolean mask ``[C]``: classes that enter class averages."""
        return v.counted_mask(self.num_classes, self.ignore_classes)


class _CountAlgebra(StateAlgebra):
    """Exact count states: leaves are normal-form limb arrays with a trailing limb axis."""

    exclusive: ClassVar[bool]

    @staticmethod
    def _combine(a: jax.Array, b: jax.Array) -> jax.Array:
        return _counts.add(a, b)

    @staticmethod
    def _fold(a: jax.Array) -> jax.Array:
        return _counts.sum_limbs(a, 0)

    @staticmethod
    def _all_reduce(a: jax.Array, axis_name: Any) -> jax.Array:
        """Exact for up to 65,536 summands (16-bit limbs in 32-bit words)."""
        return _counts.normalize(lax.psum(a, axis_name))

    def _check_values(self, leaves: dict[str, jax.Array], op: str) -> None:
        for leaf in leaves.values():
            _checked.check_counts(leaf, op)  # traced only under `jaxseg.checked`

    def _check_axis_size(self, axis_name: Any) -> None:
        _checked.check_psum_size(lax.axis_size(axis_name), _counts.MAX_SUMMANDS)

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each leaf's shape after its batch axes (limb axis included), per field name."""
        raise NotImplementedError

    def __post_init__(self) -> None:
        self._check_leaves()

    def _check_leaves(self) -> None:
        """Shapes and dtypes of concrete leaves; anything else passes.

        JAX rebuilds pytrees with arbitrary leaves (tracers, ``ShapeDtypeStruct``,
        sentinel objects, ``None``, float0 cotangents), so only concrete arrays
        are checked: a hand-built or restored state of the wrong size fails here,
        not later inside a score.
        """
        if not isinstance(self.num_classes, int):
            return
        cls = type(self).__name__
        batch: dict[str, tuple[int, ...]] = {}
        for name, trailing in self._trailing_shapes().items():
            leaf = getattr(self, name)
            if not isinstance(leaf, np.ndarray | jax.Array) or isinstance(leaf, jax.core.Tracer):
                continue
            shape = tuple(leaf.shape)
            k = len(shape) - len(trailing)
            if k < 0 or shape[k:] != trailing:
                raise ValueError(
                    f"{cls} `{name}` must have shape (..., {', '.join(map(str, trailing))}); "
                    f"got {shape} (num_classes={self.num_classes}, limbs last)."
                )
            if leaf.dtype not in (np.uint32, jax.dtypes.float0):
                raise TypeError(
                    f"{cls} `{name}` must be uint32 limbs; got {leaf.dtype}. Build states with "
                    "`empty` / `from_*`, or restore them with their saved dtype."
                )
            batch[name] = shape[:k]
        if len(set(batch.values())) > 1:
            shown = " and ".join(f"`{n}` has {b}" for n, b in batch.items())
            raise ValueError(
                f"{cls} leaves must share their batch shapes (the axes before the trailing "
                f"ones); {shown}."
            )

    @property
    def num_invalid(self) -> jax.Array:
        """Pixels whose label was outside the valid range and not ignored (float)."""
        return _counts.to_float(self.invalid)  # type: ignore[attr-defined]

    # -- CLU metric protocol ---------------------------------------------------

    def compute(self) -> jax.Array:
        """Mean IoU (``average="macro"``), the CLU ``compute`` of this metric."""
        from jaxseg._scores import iou

        return iou(self, average="macro")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ConfusionMatrix(_CountAlgebra):
    """Exact multiclass confusion matrix: rows are labels, columns predictions.

    A pytree whose leaves are wide integer counts (exact to at least ``2**48``
    per cell without ``jax_enable_x64``; see :mod:`jaxseg._counts`) and whose
    ``num_classes`` and ignored classes are static metadata.

    Limits: counts are guaranteed exact below ``2**48`` per cell, through any
    number of merges and through one :meth:`psum` of at most 65,536 members.
    Past ``2**48`` nothing raises by default (merges stay exact, ``to_numpy``
    to ``2**63``, but the guarantee is void); under :func:`jaxseg.checked`,
    ``merge`` / ``+`` / ``reduce`` / ``psum`` raise when a count reaches
    ``2**48``. A :meth:`psum` over a larger static axis raises ``ValueError``.

    A pixel is *valid* when ``where`` is true and its label is not in
    ``ignore_index``; valid pixels whose label lies outside ``[0, C)`` are
    counted in ``invalid``, never wrapped or dropped. A valid pixel whose
    *prediction* lies outside ``[0, C)`` (a void prediction, such as
    Cityscapes' 255) is a miss: counted in ``void[label]``, a false negative of
    the label's class and a false positive of none, as the Cityscapes
    evaluation counts it. Integer inputs of any width are range-checked before
    any cast (an int64 label ``2**32 + 1`` is invalid, never class 1). Ignored
    ids inside ``[0, C)`` are also left out of class averages.

    Statistics per class ``c`` (float, ``[..., C]``), with ``V`` the void counts::

        tp_c = M[c, c]      fp_c = sum_{r != c} M[r, c]
        fn_c = sum_{k != c} M[c, k] + V[c]      tn_c = N - tp_c - fp_c - fn_c

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 1.0]])
      >>> labels = jnp.array([0, 1, 1, 255])
      >>> cm = jaxseg.ConfusionMatrix.from_logits(logits, labels, ignore_index=255)
      >>> cm.to_numpy()
      array([[1, 0],
             [1, 1]])
      >>> jaxseg.iou(cm, average=None)
      Array([0.5, 0.5], dtype=float32)

    Attributes:
      counts: ``uint32 [..., C, C, 3]`` limbs of the counts.
      invalid: ``uint32 [..., 3]`` limbs of the invalid-pixel count.
      void: ``uint32 [..., C, 3]`` limbs of the void predictions per label class
        (zeros when constructed without it, e.g. from an older checkpoint).
      num_classes: ``C`` (static).
      ignore_classes: ignored ids inside ``[0, C)`` (static).
    """

    counts: jax.Array
    invalid: jax.Array
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    void: jax.Array | None = None
    exclusive: ClassVar[bool] = True

    def __post_init__(self) -> None:
        # States saved before void predictions were counted have no `void` leaf.
        if self.void is None and hasattr(self.counts, "shape"):
            zeros = jnp.zeros((*self.counts.shape[:-2], self.counts.shape[-1]), jnp.uint32)
            object.__setattr__(self, "void", zeros)
        super().__post_init__()

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        c, limbs = self.num_classes, _counts.NUM_LIMBS
        return {"counts": (c, c, limbs), "invalid": (limbs,), "void": (c, limbs)}

    @classmethod
    def empty(cls, num_classes: int, *, ignore_index: Any = None) -> ConfusionMatrix:
        """The identity of :meth:`merge`: all counts zero."""
        c = v.check_num_classes(num_classes)
        ignored = v.normalize_ignore_index(ignore_index)
        return cls(
            counts=_counts.zeros((c, c)),
            invalid=_counts.zeros(()),
            void=_counts.zeros((c,)),
            num_classes=c,
            ignore_classes=v.class_ids_in_range(ignored, c),
        )

    @classmethod
    def from_predictions(
        cls,
        preds: ArrayLike,
        labels: ArrayLike,
        *,
        num_classes: int,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
    ) -> ConfusionMatrix:
        """Count integer predictions against integer labels of the same shape.

        Args:
          preds: predicted class ids, int ``[...]``.
          labels: true class ids, int ``[...]``, same shape.
          num_classes: ``C``.
          ignore_index: a label id or tuple of ids to leave out.
          where: boolean mask broadcastable to ``labels.shape``; false pixels
            are left out.

        Returns:
          A state with counts ``[C, C]`` (no batch axis; ``vmap`` to get one).
        """
        c = v.check_num_classes(num_classes)
        preds = v.check_int_labels(v.as_int_array(preds, "preds"), "preds")
        labels = v.check_int_labels(v.as_int_array(labels, "labels"), "labels")
        v.check_same_shape("preds", preds, "labels", labels)
        ignored = v.normalize_ignore_index(ignore_index)
        mask = v.broadcast_where(where, labels.shape)
        counts, void, invalid = _kernels.confusion_counts(
            preds, labels, num_classes=c, ignore_index=ignored, where=mask
        )
        return cls(
            counts=_counts.from_int(counts),
            invalid=_counts.from_int(invalid),
            void=_counts.from_int(void),
            num_classes=c,
            ignore_classes=v.class_ids_in_range(ignored, c),
        )

    @classmethod
    def from_logits(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        *,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
    ) -> ConfusionMatrix:
        """Count ``argmax(logits, -1)`` against integer labels.

        Args:
          logits: scores ``[..., C]`` (any float dtype; probabilities work too).
          labels: class ids, int ``[...]`` = ``logits.shape[:-1]``.
          ignore_index: a label id or tuple of ids to leave out.
          where: boolean mask broadcastable to ``labels.shape``.

        Returns:
          A state with counts ``[C, C]``.
        """
        logits = v.check_logits(jnp.asarray(logits))
        labels = v.check_int_labels(v.as_int_array(labels, "labels"))
        v.check_labels_for_logits(logits, labels)
        preds = _kernels.argmax_classes(logits)
        return cls.from_predictions(
            preds,
            labels,
            num_classes=logits.shape[-1],
            ignore_index=ignore_index,
            where=where,
        )

    @classmethod
    def from_model_output(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        mask: ArrayLike | None = None,
        **_: Any,
    ) -> ConfusionMatrix:
        """CLU protocol: :meth:`from_logits` with ``mask`` as ``where``."""
        if mask is not None:
            mask = jnp.asarray(mask).astype(jnp.bool_)
        return cls.from_logits(logits, labels, where=mask)

    @classmethod
    def configure(cls, num_classes: int, *, ignore_index: Any = None) -> type[ConfusionMatrix]:
        """A subclass with ``num_classes`` and ``ignore_index`` bound, for CLU collections.

        ``clu.metrics.Collection`` calls ``Metric.empty()`` with no arguments and
        ``Metric.from_model_output(**model_outputs)``; the returned class
        supplies the bound values to both (``mask`` acts as ``where``). The
        same arguments return the same class, so jitted functions do not
        retrace.

        Args:
          num_classes: ``C``.
          ignore_index: a label id or tuple of ids to leave out.

        Returns:
          A registered pytree subclass of this class.

        Examples:
          >>> import jax.numpy as jnp, jaxseg
          >>> Metric = jaxseg.ConfusionMatrix.configure(2, ignore_index=255)
          >>> Metric is jaxseg.ConfusionMatrix.configure(2, ignore_index=[255])
          True
          >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
          >>> update = Metric.from_model_output(logits=logits, labels=jnp.array([0, 1, 255]))
          >>> Metric.empty().merge(update).to_numpy()
          array([[1, 0],
                 [0, 1]])
        """
        c = v.check_num_classes(num_classes)
        ignored = v.normalize_ignore_index(ignore_index)
        return _configured(cls, c, (("ignore_index", ignored),), (("ignore_index", ignored),))

    def to_numpy(self) -> np.ndarray:
        """Exact host counts, ``int64 [..., C, C]`` (void predictions: :meth:`void_to_numpy`)."""
        return _counts.to_int64_numpy(self.counts)

    def void_to_numpy(self) -> np.ndarray:
        """Exact host counts of void predictions per label class, ``int64 [..., C]``."""
        return _counts.to_int64_numpy(self.void)

    def label_counts(self) -> np.ndarray:
        """Exact host label support per class (row sums plus voids), ``int64 [..., C]``."""
        return self.to_numpy().sum(-1) + self.void_to_numpy()

    # -- statistics ------------------------------------------------------------

    def _limb_stats(self) -> dict[str, jax.Array]:
        c = self.num_classes
        eye = jnp.broadcast_to(jnp.eye(c, dtype=jnp.bool_)[..., None], self.counts.shape)
        diag = jnp.diagonal(self.counts, axis1=-3, axis2=-2)  # [..., 3, C]
        diag = jnp.moveaxis(diag, -2, -1)
        off = jnp.where(eye, jnp.uint32(0), self.counts)
        fp = _counts.normalize(off.sum(-3))  # column sums without the diagonal
        fn = _counts.normalize(off.sum(-2) + self.void)  # row sums without the diagonal
        return {"tp": diag, "fp": fp, "fn": fn}

    @property
    def tp(self) -> jax.Array:
        """True positives per class, float ``[..., C]``."""
        return _counts.to_float(self._limb_stats()["tp"])

    @property
    def fp(self) -> jax.Array:
        """False positives per class (column sum minus diagonal), float ``[..., C]``."""
        return _counts.to_float(self._limb_stats()["fp"])

    @property
    def fn(self) -> jax.Array:
        """False negatives per class (row sum minus diagonal, plus void predictions)."""
        return _counts.to_float(self._limb_stats()["fn"])

    @property
    def tn(self) -> jax.Array:
        """True negatives per class, float ``[..., C]``, computed exactly in limbs."""
        s = self._limb_stats()
        flat = self.counts.reshape((*self.counts.shape[:-3], -1, _counts.NUM_LIMBS))
        flat = jnp.concatenate([flat, self.void], axis=-2)  # every valid pixel once
        total = _counts.sum_limbs(jnp.moveaxis(flat, -2, 0), 0)[..., None, :]
        signed = (
            total.astype(jnp.int32)
            - s["tp"].astype(jnp.int32)
            - s["fp"].astype(jnp.int32)
            - s["fn"].astype(jnp.int32)
        )
        return _counts.to_float(_counts.normalize_signed(signed))


class _StatRows(_CountAlgebra):
    """Count states that store ``tp, fp, fn, tn`` per class as rows of ``counts``.

    ``counts`` is ``uint32 [..., 4, C, 3]`` (limbs last) and ``invalid`` is
    ``uint32 [..., 3]``.
    """

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        c, limbs = self.num_classes, _counts.NUM_LIMBS
        return {"counts": (4, c, limbs), "invalid": (limbs,)}

    def to_numpy(self) -> np.ndarray:
        """Exact host counts ``int64 [..., 4, C]``: rows ``tp, fp, fn, tn``."""
        return _counts.to_int64_numpy(self.counts)  # type: ignore[attr-defined]

    def label_counts(self) -> np.ndarray:
        """Exact host label support per class, ``tp + fn``, ``int64 [..., C]``."""
        rows = self.to_numpy()
        return rows[..., 0, :] + rows[..., 2, :]

    def _stat(self, k: int) -> jax.Array:
        return _counts.to_float(self.counts[..., k, :, :])  # type: ignore[attr-defined]

    @property
    def tp(self) -> jax.Array:
        """True positives per class, float ``[..., C]``."""
        return self._stat(0)

    @property
    def fp(self) -> jax.Array:
        """False positives per class, float ``[..., C]``."""
        return self._stat(1)

    @property
    def fn(self) -> jax.Array:
        """False negatives per class, float ``[..., C]``."""
        return self._stat(2)

    @property
    def tn(self) -> jax.Array:
        """True negatives per class, float ``[..., C]``."""
        return self._stat(3)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BinaryStats(_StatRows):
    """Exact per-class ``tp, fp, fn, tn`` for binary and multilabel predictions.

    Each of the ``C`` channels is an independent yes/no decision (sigmoid
    outputs thresholded per channel). Same algebra as :class:`ConfusionMatrix`:
    ``empty``, ``merge`` / ``+``, ``reduce``, ``psum``, ``to_numpy``.

    Labels must be 0 or 1; a label equal to an ``ignore_index`` id is left out,
    any other value is counted in ``invalid``.

    **Layout.** Channels are read from the axis ``channel_axis`` of
    :meth:`from_logits` / :meth:`from_predictions` (and :meth:`configure`):

    * ``-1`` (default): channels last, ``[..., C]``, as everywhere in jaxseg;
    * another int: channels on that axis (``1`` for channels-first ``[N, C, H, W]``);
    * ``None``: no channel axis, one binary mask ``[...]`` (``C = 1``).

    The arrays alone cannot tell a single-channel volume ``[D, H, W]`` from
    ``W`` channels: with the default it is counted as ``W`` channels. Pass
    ``channel_axis=None`` for masks without a channel axis. Where ``C`` is known
    the mistake raises: :meth:`configure` checks the channel count of every
    update, and :meth:`merge` refuses states with different ``C``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> logits = jnp.array([[3.0, -1.0], [-2.0, 2.0], [1.0, 1.0]])
      >>> labels = jnp.array([[1, 0], [1, 1], [0, 1]])
      >>> s = jaxseg.BinaryStats.from_logits(logits, labels)
      >>> s.to_numpy()  # rows tp, fp, fn, tn; one column per channel
      array([[1, 2],
             [1, 0],
             [1, 0],
             [0, 1]])
      >>> jaxseg.dice(s, average=None)
      Array([0.5, 1. ], dtype=float32)

      A mask without a channel axis (here ``[H, W]``) is one channel:

      >>> mask_logits = jnp.array([[2.0, -1.0], [1.0, -3.0]])
      >>> mask = jnp.array([[1, 0], [0, 0]])
      >>> one = jaxseg.BinaryStats.from_logits(mask_logits, mask, channel_axis=None)
      >>> one.num_classes, jaxseg.dice(one, average=None)
      (1, Array([0.6666667], dtype=float32))

    Attributes:
      counts: ``uint32 [..., 4, C, 3]`` limbs of ``(tp, fp, fn, tn)``.
      invalid: ``uint32 [..., 3]`` limbs of the invalid count.
      num_classes: number of channels ``C`` (static).
    """

    counts: jax.Array
    invalid: jax.Array
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    exclusive: ClassVar[bool] = False

    @classmethod
    def empty(cls, num_classes: int) -> BinaryStats:
        """The identity of :meth:`merge`."""
        c = v.check_num_classes(num_classes)
        return cls(counts=_counts.zeros((4, c)), invalid=_counts.zeros(()), num_classes=c)

    @classmethod
    def from_predictions(
        cls,
        preds: ArrayLike,
        labels: ArrayLike,
        *,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
        channel_axis: int | None = -1,
    ) -> BinaryStats:
        """Count boolean (or 0/1) predictions ``[..., C]`` against 0/1 labels ``[..., C]``.

        ``where`` has the shape of ``preds`` or broadcasts to the per-pixel shape
        (``preds.shape`` without the channel axis: one flag per pixel, shared by
        the channels). ``channel_axis`` as in :meth:`from_logits`.
        """
        preds = v.as_int_array(preds, "preds")
        labels = v.check_int_labels(v.as_int_array(labels, "labels"), "labels")
        v.check_int_labels(preds, "preds")
        v.check_same_shape("preds", preds, "labels", labels)
        preds, labels, where = _channels_last(channel_axis, preds, labels, where)
        if preds.ndim < 1:
            raise ValueError("`preds` must have a trailing channel axis; got a scalar.")
        mask = v.channel_where(where, preds.shape)
        counts, invalid = _kernels.binary_counts(
            preds.astype(jnp.bool_),
            labels,
            ignore_index=v.normalize_ignore_index(ignore_index),
            where=mask,
        )
        return cls(
            counts=_counts.from_int(counts),
            invalid=_counts.from_int(invalid),
            num_classes=preds.shape[-1],
        )

    @classmethod
    def from_logits(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        *,
        threshold: ArrayLike = 0.5,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
        channel_axis: int | None = -1,
    ) -> BinaryStats:
        """Count ``sigmoid(logits) > threshold`` against 0/1 labels of the same shape.

        Args:
          logits: ``[..., C]``, one independent logit per channel (see ``channel_axis``).
          labels: 0/1 ints (or bool) of ``logits.shape``.
          threshold: probability threshold in ``[0, 1]``, a scalar or one per
            channel ``[C]``.
          ignore_index: label value(s) to leave out (e.g. 255).
          where: mask of ``logits.shape``, or broadcastable to the per-pixel shape
            (``logits.shape`` without the channel axis).
          channel_axis: the axis of the ``C`` channels: ``-1`` (default) for
            channels last, ``1`` for ``[N, C, H, W]``, ``None`` when the arrays
            have no channel axis (one binary mask, ``C = 1``). A single-channel
            volume ``[D, H, W]`` needs ``None``: by default its last axis is taken
            as ``W`` channels.

        Returns:
          A state with counts ``[4, C]`` (no batch axis; ``vmap`` to get one).
        """
        logits = jnp.asarray(logits)
        labels = v.check_int_labels(v.as_int_array(labels, "labels"), "labels")
        v.check_same_shape("logits", logits, "labels", labels)
        logits, labels, where = _channels_last(channel_axis, logits, labels, where)
        logits = v.check_logits(logits)
        threshold = _check_threshold(threshold, logits.shape[-1])
        preds = jax.nn.sigmoid(logits.astype(jnp.float32)) > jnp.broadcast_to(
            threshold, logits.shape
        )
        return cls.from_predictions(preds, labels, ignore_index=ignore_index, where=where)

    @classmethod
    def from_model_output(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        mask: ArrayLike | None = None,
        **_: Any,
    ) -> BinaryStats:
        """CLU protocol: :meth:`from_logits` with ``mask`` as ``where``."""
        if mask is not None:
            mask = jnp.asarray(mask).astype(jnp.bool_)
        return cls.from_logits(logits, labels, where=mask)

    @classmethod
    def configure(
        cls,
        num_classes: int,
        *,
        threshold: Any = 0.5,
        ignore_index: Any = None,
        channel_axis: int | None = -1,
    ) -> type[BinaryStats]:
        """A subclass with the channel count, threshold and ignored ids bound, for CLU.

        As :meth:`ConfusionMatrix.configure`: ``clu.metrics.Collection`` calls
        ``Metric.empty()`` with no arguments and
        ``Metric.from_model_output(logits=..., labels=..., mask=...)``; equal
        arguments return the same class. Every update must have ``num_classes``
        channels on ``channel_axis``; a mismatch raises ``ValueError``.

        Args:
          num_classes: number of channels ``C``.
          threshold: probability threshold in ``[0, 1]``, a scalar or one per channel.
          ignore_index: label value(s) to leave out (e.g. 255).
          channel_axis: the channel axis of the updates, as in :meth:`from_logits`;
            ``None`` (masks without a channel axis) needs ``num_classes=1``.

        Returns:
          A registered pytree subclass of this class.

        Examples:
          >>> import jax.numpy as jnp, jaxseg
          >>> Metric = jaxseg.BinaryStats.configure(2, threshold=[0.5, 0.9], ignore_index=255)
          >>> logits = jnp.array([[3.0, 1.0], [-2.0, 3.0], [1.0, 1.0]])
          >>> labels = jnp.array([[1, 1], [0, 1], [255, 0]])
          >>> update = Metric.from_model_output(logits=logits, labels=labels)
          >>> Metric.empty().merge(update).to_numpy()  # rows tp, fp, fn, tn
          array([[1, 1],
                 [0, 0],
                 [0, 1],
                 [1, 1]])
        """
        c = v.check_num_classes(num_classes)
        t = np.asarray(_check_threshold(threshold, c), np.float64)
        bound_threshold = float(t) if t.ndim == 0 else tuple(float(x) for x in t)
        ignored = v.normalize_ignore_index(ignore_index)
        axis = _check_channel_axis(channel_axis)
        if axis is None and c != 1:
            raise ValueError(
                "`channel_axis=None` (masks without a channel axis) counts one channel, so "
                f"`num_classes` must be 1; got {c}."
            )
        bound = (("threshold", bound_threshold), ("ignore_index", ignored), ("channel_axis", axis))
        return _configured(cls, c, (), bound)


def _check_channel_axis(channel_axis: Any) -> int | None:
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool | np.bool_) or not isinstance(channel_axis, int | np.integer):
        raise TypeError(f"`channel_axis` must be an int or None; got {v._show(channel_axis)}.")
    return int(channel_axis)


def _channels_last(
    channel_axis: Any, x: jax.Array, labels: jax.Array, where: Any
) -> tuple[jax.Array, jax.Array, Any]:
    """Move the channel axis of ``x`` and ``labels`` (same shape) last; see ``BinaryStats``.

    A ``where`` of the full shape moves with them; a per-pixel ``where`` is left as is.
    """
    axis = _check_channel_axis(channel_axis)
    if axis is None:
        return x[..., None], labels[..., None], where
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(
            f"`channel_axis` {axis} is out of range for {x.ndim} axes (shape {tuple(x.shape)}); "
            "pass `channel_axis=None` for arrays without a channel axis."
        )
    axis %= x.ndim
    if axis == x.ndim - 1:
        return x, labels, where
    if where is not None and tuple(jnp.shape(where)) == tuple(x.shape):
        where = jnp.moveaxis(jnp.asarray(where), axis, -1)
    return jnp.moveaxis(x, axis, -1), jnp.moveaxis(labels, axis, -1), where


def _check_threshold(threshold: Any, num_classes: int) -> jax.Array:
    expected = (
        "`threshold` must be a probability in [0, 1] (a number, or one per channel); "
        f"got {v._show(threshold)}."
    )
    if isinstance(threshold, str | bytes | bool | np.bool_) or threshold is None:
        raise TypeError(expected)
    try:
        t = np.asarray(threshold) if not isinstance(threshold, jax.core.Tracer) else threshold
    except (TypeError, ValueError):  # ragged or unconvertible
        raise TypeError(expected) from None
    if not (jnp.issubdtype(t.dtype, jnp.floating) or jnp.issubdtype(t.dtype, jnp.integer)):
        raise TypeError(expected)
    if t.ndim not in (0, 1) or (t.ndim == 1 and t.shape[0] != num_classes):
        raise ValueError(
            f"`threshold` must be a scalar or have shape ({num_classes},); "
            f"got shape {tuple(t.shape)}."
        )
    if isinstance(t, np.ndarray) and (np.any(t < 0) or np.any(t > 1) or np.any(np.isnan(t))):
        raise ValueError(f"`threshold` must lie in [0, 1]; got {threshold!r}.")
    return jnp.asarray(t, jnp.float32)


@functools.cache
def _configured(
    base: type[_CountAlgebra],
    num_classes: int,
    empty_kwargs: tuple[tuple[str, Any], ...],
    logits_kwargs: tuple[tuple[str, Any], ...],
) -> type[_CountAlgebra]:
    """Build (once per arguments) the subclass returned by ``configure``.

    ``empty_kwargs`` and ``logits_kwargs`` are the bound keywords of
    ``base.empty`` and ``base.from_logits``, as hashable ``(name, value)`` pairs.
    """
    bound = dict(logits_kwargs)

    def empty(cls, num_classes: int = num_classes, **kwargs: Any):
        return base.empty.__func__(cls, num_classes, **{**dict(empty_kwargs), **kwargs})

    def from_model_output(cls, logits, labels, mask=None, **_):
        logits = jnp.asarray(logits)
        axis = bound.get("channel_axis", -1)
        if axis is not None and (
            not -logits.ndim <= axis < logits.ndim or logits.shape[axis] != num_classes
        ):
            where_ = "the last axis" if axis == -1 else f"axis {axis}"
            hint = (
                ""
                if base.exclusive
                else " For masks without a channel axis, pass `channel_axis=None` to "
                "`configure`; for channels on another axis, pass that axis."
            )
            raise ValueError(
                f"`logits` must have {num_classes} classes on {where_}, as configured; "
                f"got shape {tuple(logits.shape)}.{hint}"
            )
        where = None if mask is None else jnp.asarray(mask).astype(jnp.bool_)
        return cls.from_logits(logits, labels, where=where, **bound)

    settings = ", ".join(f"{k}={val}" for k, val in (("num_classes", num_classes), *logits_kwargs))
    name = f"{base.__name__}_{num_classes}"
    namespace = {
        "__doc__": f"{base.__name__} with {settings}.",
        "__module__": base.__module__,
        "__qualname__": name,
        "empty": classmethod(empty),
        "from_model_output": classmethod(from_model_output),
    }
    sub = type(name, (base,), namespace)
    return jax.tree_util.register_dataclass(dataclasses.dataclass(frozen=True)(sub))
