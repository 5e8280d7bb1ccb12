"""Statistics states on one algebra: :class:`ConfusionMatrix`, :class:`BinaryStats`, ...

Every state (``ConfusionMatrix``, ``BinaryStats``, ``SoftStats``,
``BoundaryStats``, ``DistanceStats``) is an immutable pytree (a registered
dataclass) whose array leaves each have a *kind* and whose class count and
settings are static metadata. The kind says how a leaf adds:

* ``"limbs"``: exact integer counts in 16-bit limbs (:mod:`jaxseg._counts`),
  carry-normalised on every merge, fold and ``psum``; exact to ``2**48`` and
  bit-reproducible for any batch split, device count or reduction order;
* ``"float"``: float sums (the soft statistics), added as floats;
* ``"wide"``: float sums of unbounded range (mantissa and exponent), which
  never overflow to ``inf`` (distance sums).

:class:`StateAlgebra` writes ``merge`` / ``+``, ``reduce`` and ``psum`` once, leaf
by leaf through the kinds, so the states form commutative monoids with
``empty`` as identity and accumulate over batches (Python loops, ``lax.scan``),
vmapped images (``reduce``), devices (``psum``, or nothing at all under ``jit``
over sharded arrays) and hosts. The scores accept anything that has the
:class:`Statistics` protocol.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseg import _checked, _counts, _kernels
from jaxseg import _validation as v

ArrayLike = jax.typing.ArrayLike


def _static(default: Any = dataclasses.MISSING) -> Any:
    return dataclasses.field(default=default, metadata={"static": True})


@runtime_checkable
class Statistics(Protocol):
    """What the score functions read: per-class ``tp, fp, fn, tn`` and the counted classes.

    ``ConfusionMatrix``, ``BinaryStats``, ``SoftStats`` and ``BoundaryStats``
    have it; so may a user's own object (a dataclass of arrays will do):

    * ``tp``, ``fp``, ``fn``, ``tn``: float arrays ``[..., C]`` (leading axes
      give per-image scores);
    * ``counted_classes``: a static boolean ``[C]`` NumPy mask of the classes
      that enter class averages (``False`` for ignored ids inside ``[0, C)``).

    Two optional class attributes refine the rules, read with a default when absent:

    * ``soft`` (default ``False``): the statistics are float sums of
      probabilities; a class is then empty when its labelled mass ``tp + fn``
      is negligible, not when ``tp + fp + fn == 0``;
    * ``exclusive`` (default ``True``): classes are mutually exclusive (one
      class per pixel), as multiclass MCC and kappa require.

    ``isinstance(x, Statistics)`` checks that the five names exist, not their shapes.
    Statistics held as NumPy arrays are scored on the host in float64 (NumPy
    results); JAX arrays give JAX results.

    Examples:
      >>> import dataclasses, numpy as np, jaxseg
      >>> @dataclasses.dataclass
      ... class Counts:  # per-class counts from elsewhere, e.g. a database
      ...     tp: np.ndarray
      ...     fp: np.ndarray
      ...     fn: np.ndarray
      ...     tn: np.ndarray
      ...     counted_classes: np.ndarray
      >>> c = Counts(*np.array([[8.0, 3.0], [2.0, 1.0], [1.0, 2.0], [4.0, 9.0]]), np.ones(2, bool))
      >>> isinstance(c, jaxseg.Statistics)
      True
      >>> jaxseg.iou(c, average=None)
      array([0.72727273, 0.5       ])
    """

    @property
    def tp(self) -> Any: ...

    @property
    def fp(self) -> Any: ...

    @property
    def fn(self) -> Any: ...

    @property
    def tn(self) -> Any: ...

    @property
    def counted_classes(self) -> np.ndarray: ...


class _Kind:
    """How the leaves of one kind add, fold a leading axis and sum over devices."""

    #: How the trailing axis of the representation reads, for error messages.
    layout = ""
    #: Most members one ``psum`` may sum exactly; ``None`` for no limit.
    max_summands: int | None = None

    def combine(self, a: jax.Array, b: jax.Array) -> jax.Array:
        return a + b

    def fold(self, a: jax.Array) -> jax.Array:
        return a.sum(0)

    def all_reduce(self, a: jax.Array, axis_name: Any) -> jax.Array:
        return lax.psum(a, axis_name)

    def check(self, a: jax.Array, op: str) -> None:
        """Value checks, traced only under :func:`jaxseg.checked`."""

    def dtype_ok(self, dtype: Any) -> bool:
        return jnp.issubdtype(dtype, jnp.floating)

    expected = "floating point"


class _Limbs(_Kind):
    layout = ", limbs last"
    max_summands = _counts.MAX_SUMMANDS
    expected = "uint32 limbs"

    def combine(self, a: jax.Array, b: jax.Array) -> jax.Array:
        return _counts.add(a, b)

    def fold(self, a: jax.Array) -> jax.Array:
        return _counts.sum_limbs(a, 0)

    def all_reduce(self, a: jax.Array, axis_name: Any) -> jax.Array:
        # exact for up to 65,536 summands (16-bit limbs in 32-bit words)
        return _counts.normalize(lax.psum(a, axis_name))

    def check(self, a: jax.Array, op: str) -> None:
        _checked.check_counts(a, op)

    def dtype_ok(self, dtype: Any) -> bool:
        return dtype == np.uint32


class _Wide(_Kind):
    layout = ", mantissa and exponent last"

    def combine(self, a: jax.Array, b: jax.Array) -> jax.Array:
        return _counts.wide_add(a, b)

    def fold(self, a: jax.Array) -> jax.Array:
        return _counts.wide_sum(a, 0)

    def all_reduce(self, a: jax.Array, axis_name: Any) -> jax.Array:
        return _counts.wide_psum(a, axis_name)


#: The leaf kinds, by the name a field declares in its metadata (see ``LIMBS``).
LEAF_KINDS: dict[str, _Kind] = {"limbs": _Limbs(), "float": _Kind(), "wide": _Wide()}


#: Field metadata of array leaves, one per kind: ``dataclasses.field(metadata=LIMBS)``.
LIMBS, FLOAT, WIDE = ({"kind": name} for name in ("limbs", "float", "wide"))


class StateAlgebra:
    """The commutative monoid shared by every statistics state.

    Subclasses are frozen dataclasses whose array fields declare their kind
    (``counts: jax.Array = dataclasses.field(metadata=LIMBS)``, or ``FLOAT``, ``WIDE``) and
    whose static fields (``num_classes``, ignored classes, ...) must match to
    merge. ``merge`` / ``+``, ``reduce``, ``psum``, the compatibility checks and
    the leaf checks are written once here; no state overrides them.
    """

    num_classes: int
    ignore_classes: tuple[int, ...]
    #: Classes are mutually exclusive (softmax / argmax) rather than independent.
    exclusive: bool
    #: Float sums of probabilities rather than exact counts (see ``_classwise``).
    soft: ClassVar[bool] = False

    def _leaves(self) -> dict[str, jax.Array]:
        return {name: getattr(self, name) for name in self._kinds()}

    def _kinds(self) -> dict[str, _Kind]:
        return {
            f.name: LEAF_KINDS[f.metadata["kind"]]
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if not f.metadata.get("static")
        }

    def _static_fields(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.metadata.get("static")
        }

    def _check_compatible(self, other: Any) -> None:
        name = type(self).__name__
        if type(other) is not type(self):
            raise TypeError(f"can only merge {name} with {name}; got {type(other).__name__}.")
        mine_static, theirs_static = self._static_fields(), other._static_fields()
        if other.num_classes != self.num_classes:
            hint = (
                ""
                if getattr(self, "exclusive", True) or not hasattr(self, "tp")
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

    def _apply(self, op: str, fn: Any) -> Self:
        kinds = self._kinds()
        new = {k: fn(kinds[k], a, k) for k, a in self._leaves().items()}
        for k, leaf in new.items():
            kinds[k].check(leaf, op)  # traced only under `jaxseg.checked`
        return dataclasses.replace(self, **new)  # type: ignore[type-var]

    def merge(self, other: Self) -> Self:
        """Add the statistics of two states (commutative and associative)."""
        self._check_compatible(other)
        theirs = other._leaves()
        return self._apply("merge", lambda kind, a, k: kind.combine(a, theirs[k]))

    def __add__(self, other: Self) -> Self:
        return self.merge(other)

    def reduce(self) -> Self:
        """Fold the leading axis (of a vmapped or per-device stacked state)."""
        if not self.batch_shape:
            raise ValueError("`reduce` folds a leading batch axis, but this state is not batched.")
        return self._apply("reduce", lambda kind, a, k: kind.fold(a))

    def psum(self, axis_name: Any) -> Self:
        """Sum over a named mapped axis (``pmap``, ``shard_map``) with ``lax.psum``.

        Communication is the leaves, ``O(C^2)`` words for a confusion matrix,
        independent of the number of devices. Exact counts stay exact for up to
        65,536 members: a larger (static) axis raises ``ValueError``; under
        :func:`jaxseg.checked` a count reaching ``2**48`` raises too.
        """
        limits = [k.max_summands for k in self._kinds().values() if k.max_summands]
        if limits:
            _checked.check_psum_size(lax.axis_size(axis_name), min(limits))
        return self._apply("psum", lambda kind, a, k: kind.all_reduce(a, axis_name))

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each leaf's shape after its batch axes, kind axis included, per field name."""
        return {}

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
        kinds = self._kinds()
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
                    f"got {shape} (num_classes={self.num_classes}{kinds[name].layout})."
                )
            if not (kinds[name].dtype_ok(leaf.dtype) or leaf.dtype == jax.dtypes.float0):
                raise TypeError(
                    f"{cls} `{name}` must be {kinds[name].expected}; got {leaf.dtype}. Build "
                    "states with `empty` / `from_*`, or restore them with their saved dtype."
                )
            batch[name] = shape[:k]
        if len(set(batch.values())) > 1:
            shown = " and ".join(f"`{n}` has {b}" for n, b in batch.items())
            raise ValueError(
                f"{cls} leaves must share their batch shapes (the axes before the trailing "
                f"ones); {shown}."
            )

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading axes added by ``vmap`` (per-image states) or stacking."""
        name, trailing = next(iter(self._trailing_shapes().items()))
        leaf = getattr(self, name)
        return tuple(leaf.shape[: leaf.ndim - len(trailing)])

    @property
    def counted_classes(self) -> np.ndarray:
        """Static boolean mask ``[C]``: classes that enter class averages."""
        return v.counted_mask(self.num_classes, self.ignore_classes)


def label_maps(preds: ArrayLike, labels: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Integer ``preds`` and ``labels`` checked for dtype and equal shape."""
    preds = v.check_int_labels(v.as_int_array(preds, "preds"), "preds")
    labels = v.check_int_labels(v.as_int_array(labels, "labels"), "labels")
    v.check_same_shape("preds", preds, "labels", labels)
    return preds, labels


def argmax_of_logits(logits: ArrayLike, labels: ArrayLike) -> tuple[jax.Array, jax.Array, int]:
    """``(argmax(logits, -1), labels, C)`` after checking ``logits [..., C]`` against ``labels``."""
    logits = v.check_logits(jnp.asarray(logits))
    labels = v.check_int_labels(v.as_int_array(labels, "labels"))
    v.check_labels_for_logits(logits, labels)
    return _kernels.argmax_classes(logits), labels, logits.shape[-1]


@functools.partial(jax.jit, static_argnums=0)
def _float_statistics(limbs_of: Callable[..., tuple[jax.Array, ...]], *leaves: jax.Array):
    """``tp, fp, fn, tn`` as floats from a state's limb leaves, in one compiled call.

    Scores read all four statistics; computing them together keeps an eager
    score call to one dispatch, and under an outer ``jit`` this inlines.
    """
    return tuple(_counts.to_float(x) for x in limbs_of(*leaves))


class _CountAlgebra(StateAlgebra):
    """Exact pixel-count states (limb leaves, an ``invalid`` count), scored by mIoU."""

    exclusive: ClassVar[bool]
    #: The leaves :meth:`_statistic_limbs` reads, in order.
    _statistic_leaves: ClassVar[tuple[str, ...]] = ("counts",)

    def _statistics(self) -> tuple[jax.Array, ...]:
        """``tp, fp, fn, tn`` per class, float ``[..., C]``, from one compiled call."""
        leaves = (getattr(self, name) for name in self._statistic_leaves)
        return _float_statistics(self._statistic_limbs, *leaves)  # type: ignore[attr-defined]

    @property
    def num_invalid(self) -> jax.Array:
        """Pixels whose label was outside the valid range and not ignored (float)."""
        return _counts.to_float(self.invalid)  # type: ignore[attr-defined]

    @classmethod
    def _from_limbs(cls, num_classes: int, ignored: tuple[int, ...], **limbs: jax.Array) -> Self:
        """A state of ``num_classes`` classes from its limb leaves; ``ignored`` normalised ids."""
        return cls(
            **limbs,
            num_classes=num_classes,
            ignore_classes=v.class_ids_in_range(ignored, num_classes),
        )

    # -- CLU metric protocol ---------------------------------------------------

    @classmethod
    def from_model_output(
        cls, logits: ArrayLike, labels: ArrayLike, mask: ArrayLike | None = None, **_: Any
    ) -> Self:
        """CLU protocol: ``from_logits`` with ``mask`` as ``where``; other keywords ignored."""
        if mask is not None:
            mask = jnp.asarray(mask).astype(jnp.bool_)
        return cls.from_logits(logits, labels, where=mask)  # type: ignore[attr-defined]

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

    counts: jax.Array = dataclasses.field(metadata=LIMBS)
    invalid: jax.Array = dataclasses.field(metadata=LIMBS)
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    void: jax.Array | None = dataclasses.field(default=None, metadata=LIMBS)
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
        return cls._from_limbs(
            c,
            v.normalize_ignore_index(ignore_index),
            counts=_counts.zeros((c, c)),
            invalid=_counts.zeros(()),
            void=_counts.zeros((c,)),
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
        preds, labels = label_maps(preds, labels)
        ignored = v.normalize_ignore_index(ignore_index)
        mask = v.broadcast_where(where, labels.shape)
        counts, void, invalid = _kernels.confusion_counts(
            preds, labels, num_classes=c, ignore_index=ignored, where=mask
        )
        return cls._from_limbs(
            c,
            ignored,
            counts=_counts.from_int(counts),
            invalid=_counts.from_int(invalid),
            void=_counts.from_int(void),
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
        preds, labels, c = argmax_of_logits(logits, labels)
        return cls.from_predictions(
            preds, labels, num_classes=c, ignore_index=ignore_index, where=where
        )

    @classmethod
    def from_counts(
        cls,
        matrix: Any,
        *,
        void: Any = None,
        invalid: Any = 0,
        ignore_index: Any = None,
    ) -> ConfusionMatrix:
        """A state from counts you already have, exactly (the inverse of :meth:`to_numpy`).

        Host integers of any dtype (``int64`` NumPy counts above ``2**31``
        included) are stored exactly without ``jax_enable_x64``, up to the
        documented limit ``2**48`` per cell. This is a host-side constructor: it
        checks the values, so it does not run under ``jit``.

        Args:
          matrix: integer counts ``[..., C, C]``, rows labels, columns predictions.
          void: integer counts ``[..., C]`` of void predictions per label class
            (:meth:`void_to_numpy`); default zeros.
          invalid: integer count of invalid labels, a scalar or one per batch
            element ``[...]``; default 0.
          ignore_index: the ``ignore_index`` of the states this one will merge with.

        Returns:
          A state with the batch axes of ``matrix``.

        Raises:
          TypeError: a non-integer (or boolean) or traced argument.
          ValueError: a wrong shape, a negative count, a count of ``2**48`` or more.

        Examples:
          >>> import numpy as np, jaxseg
          >>> m = np.array([[3_000_000_000, 1], [2, 5_000_000_000]])  # above 2**31
          >>> cm = jaxseg.ConfusionMatrix.from_counts(m)
          >>> cm.to_numpy()
          array([[3000000000,          1],
                 [         2, 5000000000]])
          >>> jaxseg.iou(cm, average=None)
          Array([1., 1.], dtype=float32)
        """
        m = _counts.from_host(matrix, "matrix")
        if m.ndim < 2 or m.shape[-1] != m.shape[-2] or m.shape[-1] == 0:
            raise ValueError(f"`matrix` must have shape [..., C, C]; got {m.shape}.")
        c, batch = m.shape[-1], m.shape[:-2]
        ignored = v.normalize_ignore_index(ignore_index)
        return cls(
            counts=_counts.from_python_int(m),
            invalid=_counts.from_python_int(_host_counts(invalid, "invalid", batch)),
            void=_counts.from_python_int(_host_counts(void, "void", (*batch, c), broadcast=False)),
            num_classes=c,
            ignore_classes=v.class_ids_in_range(ignored, c),
        )

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

    @staticmethod
    def _statistic_limbs(counts: jax.Array, void: jax.Array) -> tuple[jax.Array, ...]:
        """Exact ``tp, fp, fn, tn`` limbs ``[..., C, 3]`` of a confusion matrix."""
        c = counts.shape[-2]
        eye = jnp.broadcast_to(jnp.eye(c, dtype=jnp.bool_)[..., None], counts.shape)
        tp = jnp.moveaxis(jnp.diagonal(counts, axis1=-3, axis2=-2), -2, -1)  # [..., C, 3]
        off = jnp.where(eye, jnp.uint32(0), counts)
        fp = _counts.normalize(off.sum(-3))  # column sums without the diagonal
        fn = _counts.normalize(off.sum(-2) + void)  # row sums without the diagonal
        cells = counts.reshape((*counts.shape[:-3], -1, counts.shape[-1]))
        flat = jnp.concatenate([cells, void], -2)
        total = _counts.sum_limbs(jnp.moveaxis(flat, -2, 0), 0)[..., None, :]  # every valid pixel
        tn = _counts.difference(total, tp, fp, fn)
        return tp, fp, fn, tn

    _statistic_leaves = ("counts", "void")

    @property
    def tp(self) -> jax.Array:
        """True positives per class, float ``[..., C]``."""
        return self._statistics()[0]

    @property
    def fp(self) -> jax.Array:
        """False positives per class (column sum minus diagonal), float ``[..., C]``."""
        return self._statistics()[1]

    @property
    def fn(self) -> jax.Array:
        """False negatives per class (row sum minus diagonal, plus void predictions)."""
        return self._statistics()[2]

    @property
    def tn(self) -> jax.Array:
        """True negatives per class, float ``[..., C]``, computed exactly in limbs."""
        return self._statistics()[3]


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

    @staticmethod
    def _statistic_limbs(counts: jax.Array) -> tuple[jax.Array, ...]:
        return tuple(counts[..., k, :, :] for k in range(4))

    def _stat(self, k: int) -> jax.Array:
        return self._statistics()[k]

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

    counts: jax.Array = dataclasses.field(metadata=LIMBS)
    invalid: jax.Array = dataclasses.field(metadata=LIMBS)
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    exclusive: ClassVar[bool] = False

    @classmethod
    def empty(cls, num_classes: int) -> BinaryStats:
        """The identity of :meth:`merge`."""
        c = v.check_num_classes(num_classes)
        return cls(counts=_counts.zeros((4, c)), invalid=_counts.zeros(()), num_classes=c)

    @classmethod
    def from_counts(cls, counts: Any, *, invalid: Any = 0) -> BinaryStats:
        """A state from counts you already have, exactly (the inverse of :meth:`to_numpy`).

        Host integers of any dtype are stored exactly without ``jax_enable_x64``,
        up to ``2**48`` per cell; a host-side constructor (not under ``jit``).

        Args:
          counts: integer counts ``[..., 4, C]``, rows ``tp, fp, fn, tn``
            (``np.stack([tp, fp, fn, tn], -2)`` from separate arrays).
          invalid: integer count of invalid labels, a scalar or one per batch
            element ``[...]``; default 0.

        Returns:
          A state with the batch axes of ``counts``.

        Raises:
          TypeError: a non-integer (or boolean) or traced argument.
          ValueError: a wrong shape, a negative count, a count of ``2**48`` or more.

        Examples:
          >>> import numpy as np, jaxseg
          >>> tp, fp, fn, tn = [90, 5], [10, 0], [0, 5], [900, 990]
          >>> s = jaxseg.BinaryStats.from_counts(np.stack([tp, fp, fn, tn], -2))
          >>> jaxseg.dice(s, average=None)
          Array([0.94736844, 0.6666667 ], dtype=float32)
        """
        rows = _counts.from_host(counts, "counts")
        if rows.ndim < 2 or rows.shape[-2] != 4 or rows.shape[-1] == 0:
            raise ValueError(f"`counts` must have shape [..., 4, C]; got {rows.shape}.")
        return cls(
            counts=_counts.from_python_int(rows),
            invalid=_counts.from_python_int(_host_counts(invalid, "invalid", rows.shape[:-2])),
            num_classes=rows.shape[-1],
        )

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


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DistanceStats(StateAlgebra):
    """Dataset aggregation of per-image distance metrics (HD, HD95, ASD, NSD).

    Per class: the sum of the finite values, and exact counts of finite, NaN
    (both masks empty, ignored class) and ``+inf`` (one mask empty) values. The
    counts are exact limbs; the sum is a wide float (mantissa and exponent,
    float32, or float64 under x64) that never overflows, so a mean of values
    near ``3e38`` stays finite, and it is equal across batch splits and device
    counts up to rounding. Merges, reduces and psums on the algebra of every
    state. :meth:`compute` is the mean of the finite values per class::

        mean_c = sum_c / finite_c        (NaN where finite_c = 0)

    The state has no ``num_invalid``: a value is finite, NaN or infinite
    (:attr:`num_finite`, :attr:`num_nan`, :attr:`num_inf`).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> hd = jnp.array([[1.0, jnp.nan], [3.0, jnp.inf]])  # [batch, C]
      >>> s = jaxseg.DistanceStats.from_values(hd)
      >>> s.compute()
      Array([ 2., nan], dtype=float32)
      >>> s.to_numpy()  # rows finite, nan, inf
      array([[2, 0],
             [0, 1],
             [0, 1]])

    Attributes:
      sum_parts: float ``[..., C, 2]`` wide sums of the finite values (mantissa,
        exponent); :attr:`sums` is their value.
      counts: ``uint32 [..., 3, C, 3]`` limbs of the finite / NaN / inf counts.
      num_classes: ``C`` (static).
    """

    sum_parts: jax.Array = dataclasses.field(metadata=WIDE)
    counts: jax.Array = dataclasses.field(metadata=LIMBS)
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    exclusive: ClassVar[bool] = False

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        c = self.num_classes
        return {"counts": (3, c, _counts.NUM_LIMBS), "sum_parts": (c, _counts.WIDE_PARTS)}

    @classmethod
    def empty(cls, num_classes: int) -> DistanceStats:
        """The identity of :meth:`merge`."""
        c = v.check_num_classes(num_classes)
        parts = jnp.zeros((c, _counts.WIDE_PARTS), v.float_dtype())
        return cls(sum_parts=parts, counts=_counts.zeros((3, c)), num_classes=c)

    @classmethod
    def from_values(cls, values: ArrayLike) -> DistanceStats:
        """Accumulate per-image values ``[..., C]`` (leading axes pooled).

        Args:
          values: float ``[..., C]`` with ``C >= 1``, e.g. the output of
            :func:`jaxseg.hausdorff_distance`.

        Returns:
          A state with sums and counts ``[C]``.
        """
        x = jnp.asarray(values)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"`values` must be floating point; got dtype {x.dtype}.")
        if x.ndim < 1 or x.shape[-1] == 0:
            raise ValueError(
                "`values` must have at least one class on the last axis, [..., C]; "
                f"got shape {tuple(x.shape)}."
            )
        x = x.reshape((-1, x.shape[-1])).astype(v.float_dtype())
        sum_parts, counts = _distance_leaves(x)
        return cls(sum_parts=sum_parts, counts=counts, num_classes=x.shape[-1])

    @classmethod
    def from_model_output(cls, values: ArrayLike, **_: Any) -> DistanceStats:
        """CLU protocol: :meth:`from_values`; other keywords are ignored."""
        return cls.from_values(values)

    def to_numpy(self) -> np.ndarray:
        """Exact host counts ``int64 [..., 3, C]``: rows finite, NaN, inf."""
        return _counts.to_int64_numpy(self.counts)

    @property
    def sums(self) -> jax.Array:
        """Sums of the finite values per class ``[..., C]`` (``inf`` past the float range)."""
        return _counts.wide_value(self.sum_parts)

    @property
    def num_finite(self) -> jax.Array:
        """Count of finite values per class, float ``[..., C]``."""
        return _counts.to_float(self.counts[..., 0, :, :])

    @property
    def num_nan(self) -> jax.Array:
        """Count of NaN values per class, float ``[..., C]``."""
        return _counts.to_float(self.counts[..., 1, :, :])

    @property
    def num_inf(self) -> jax.Array:
        """Count of infinite values per class, float ``[..., C]``."""
        return _counts.to_float(self.counts[..., 2, :, :])

    def compute(self) -> jax.Array:
        """Mean of the finite values per class ``[..., C]`` (NaN where there are none)."""
        return _finite_mean(self.sum_parts, self.counts)


@jax.jit
def _distance_leaves(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``DistanceStats`` leaves of values ``[N, C]``: wide sums of the finite values and
    the counts of finite, NaN and infinite values (one compiled call)."""
    finite = jnp.isfinite(x)
    counts = jnp.stack(
        [
            jnp.sum(finite, 0, dtype=jnp.int32),
            jnp.sum(jnp.isnan(x), 0, dtype=jnp.int32),
            jnp.sum(jnp.isinf(x), 0, dtype=jnp.int32),
        ]
    )
    return _counts.wide_from_values(jnp.where(finite, x, 0), 0), _counts.from_int(counts)


@jax.jit
def _finite_mean(sum_parts: jax.Array, counts: jax.Array) -> jax.Array:
    """Mean of the finite values per class from ``DistanceStats`` leaves (NaN if none)."""
    n = _counts.to_float(counts[..., 0, :, :]).astype(sum_parts.dtype)
    mean = _counts.wide_value(sum_parts, jnp.where(n > 0, n, 1))
    return jnp.where(n > 0, mean, jnp.nan)


def _host_counts(
    values: Any, name: str, shape: tuple[int, ...], *, broadcast: bool = True
) -> np.ndarray:
    """Checked host counts of ``shape`` (zeros for ``None``; scalars broadcast if allowed)."""
    if values is None:
        return np.zeros(shape, np.uint64)
    arr = _counts.from_host(values, name)
    if arr.shape != shape and not (broadcast and arr.ndim == 0):
        raise ValueError(f"`{name}` must have shape {shape}; got {arr.shape}.")
    return np.broadcast_to(arr, shape)


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


#: Rows of :attr:`ClassCounts.counts` (and of :meth:`ClassCounts.counts_to_numpy`).
CLASS_COUNT_ROWS = ("labels", "predictions", "hits", "void")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ClassCounts(_CountAlgebra):
    """Exact per-class sums of a confusion matrix without the matrix: an ``O(C)`` state.

    For thousands of classes (ADE20K-full's 3,688, LVIS' 1,203) a
    :class:`ConfusionMatrix` holds ``C²`` counts (163 MB of limbs at
    ``C = 3688``) and every update writes them all. The scores need only four
    sums per class, which this state keeps exactly (limbs, as every count
    state), with ``M`` the confusion matrix and ``V`` the void predictions that
    :class:`ConfusionMatrix` would hold::

        labels_c      = sum_k M[c, k] + V[c]     (label support)
        predictions_c = sum_r M[r, c]            (predicted at valid pixels)
        hits_c        = M[c, c]                  (true positives)
        void_c        = V[c]                     (void predictions of label c)

    so that, with ``N = sum_c labels_c`` the valid pixels::

        tp_c = hits_c     fp_c = predictions_c - hits_c     fn_c = labels_c - hits_c
        tn_c = N - labels_c - predictions_c + hits_c

    These are exactly :class:`ConfusionMatrix`'s statistics on the same data,
    so every score (IoU, Dice, ..., multiclass MCC and kappa, which need only
    the per-class sums) is equal too. The pixel rules are
    :class:`ConfusionMatrix`'s: ``ignore_index`` and ``where`` leave pixels out,
    valid labels outside ``[0, C)`` are counted in ``invalid``, a prediction
    outside ``[0, C)`` at a valid pixel is a miss (``void``), integer inputs of
    any width are range-checked before any cast. The state is ``4C + 1`` counts
    (177 kB at ``C = 3688``); :meth:`psum` moves ``O(C)`` words.

    What it cannot give is the matrix itself: which class was mistaken for
    which. :meth:`to_numpy` (the ``C × C`` view) raises ``TypeError``; use
    :class:`ConfusionMatrix` where the matrix or a confusion plot is needed.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> preds = jnp.array([0, 1, 1, 2, 255])
      >>> labels = jnp.array([0, 1, 2, 2, 1])
      >>> s = jaxseg.ClassCounts.from_predictions(preds, labels, num_classes=3)
      >>> s.counts_to_numpy()  # rows labels, predictions, hits, void
      array([[1, 2, 2],
             [1, 2, 1],
             [1, 1, 1],
             [0, 1, 0]])
      >>> jaxseg.iou(s, average=None)
      Array([1.        , 0.33333334, 0.5       ], dtype=float32)
      >>> cm = jaxseg.ConfusionMatrix.from_predictions(preds, labels, num_classes=3)
      >>> bool((jaxseg.iou(cm, average=None) == jaxseg.iou(s, average=None)).all())
      True

    Attributes:
      counts: ``uint32 [..., 4, C, 3]`` limbs of the rows ``labels``,
        ``predictions``, ``hits``, ``void``.
      invalid: ``uint32 [..., 3]`` limbs of the invalid-pixel count.
      num_classes: ``C`` (static).
      ignore_classes: ignored ids inside ``[0, C)`` (static).
    """

    counts: jax.Array = dataclasses.field(metadata=LIMBS)
    invalid: jax.Array = dataclasses.field(metadata=LIMBS)
    num_classes: int = _static()
    ignore_classes: tuple[int, ...] = _static(())
    exclusive: ClassVar[bool] = True

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        c, limbs = self.num_classes, _counts.NUM_LIMBS
        return {"counts": (4, c, limbs), "invalid": (limbs,)}

    @classmethod
    def empty(cls, num_classes: int, *, ignore_index: Any = None) -> ClassCounts:
        """The identity of :meth:`merge`: all counts zero."""
        c = v.check_num_classes(num_classes)
        return cls._from_limbs(
            c,
            v.normalize_ignore_index(ignore_index),
            counts=_counts.zeros((4, c)),
            invalid=_counts.zeros(()),
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
    ) -> ClassCounts:
        """Count integer predictions against integer labels of the same shape.

        One ``bincount`` of two indices per pixel into ``4C + 2`` bins: time and
        memory ``O(pixels + C)``, whatever ``C``.

        Args:
          preds: predicted class ids, int ``[...]``.
          labels: true class ids, int ``[...]``, same shape.
          num_classes: ``C``.
          ignore_index: a label id or tuple of ids to leave out.
          where: boolean mask broadcastable to ``labels.shape``; false pixels
            are left out.

        Returns:
          A state with counts ``[4, C]`` (no batch axis; ``vmap`` to get one).
        """
        c = v.check_num_classes(num_classes)
        preds, labels = label_maps(preds, labels)
        ignored = v.normalize_ignore_index(ignore_index)
        mask = v.broadcast_where(where, labels.shape)
        counts, invalid = _kernels.class_counts(
            preds, labels, num_classes=c, ignore_index=ignored, where=mask
        )
        return cls._from_limbs(
            c, ignored, counts=_counts.from_int(counts), invalid=_counts.from_int(invalid)
        )

    @classmethod
    def from_logits(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        *,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
    ) -> ClassCounts:
        """Count ``argmax(logits, -1)`` against integer labels.

        Args:
          logits: scores ``[..., C]`` (any float dtype; probabilities work too).
          labels: class ids, int ``[...]`` = ``logits.shape[:-1]``.
          ignore_index: a label id or tuple of ids to leave out.
          where: boolean mask broadcastable to ``labels.shape``.

        Returns:
          A state with counts ``[4, C]``.
        """
        preds, labels, c = argmax_of_logits(logits, labels)
        return cls.from_predictions(
            preds, labels, num_classes=c, ignore_index=ignore_index, where=where
        )

    @classmethod
    def from_counts(cls, counts: Any, *, invalid: Any = 0, ignore_index: Any = None) -> ClassCounts:
        """A state from per-class counts you already have, exactly (see :meth:`counts_to_numpy`).

        A host-side constructor (not under ``jit``): host integers of any dtype
        are stored exactly without ``jax_enable_x64``, up to ``2**48`` per count.

        Args:
          counts: integer counts ``[..., 4, C]``, rows ``labels``,
            ``predictions``, ``hits``, ``void``, with ``hits + void <= labels``
            and ``hits <= predictions``.
          invalid: integer count of invalid labels, a scalar or one per batch
            element ``[...]``; default 0.
          ignore_index: the ``ignore_index`` of the states this one will merge with.

        Returns:
          A state with the batch axes of ``counts``.

        Raises:
          TypeError: a non-integer (or boolean) or traced argument.
          ValueError: a wrong shape, a negative count, a count of ``2**48`` or
            more, or rows that no confusion matrix has.

        Examples:
          >>> import numpy as np, jaxseg
          >>> rows = np.array([[5_000_000_000, 30], [4_000_000_000, 40], [3_999_999_990, 20],
          ...                  [0, 0]])
          >>> s = jaxseg.ClassCounts.from_counts(rows)
          >>> s.label_counts()
          array([5000000000,         30])
        """
        rows = _counts.from_host(counts, "counts")
        if rows.ndim < 2 or rows.shape[-2] != 4 or rows.shape[-1] == 0:
            raise ValueError(
                "`counts` must have shape [..., 4, C] (rows labels, predictions, hits, void); "
                f"got {rows.shape}."
            )
        lab, pred, hit, void = (rows[..., k, :] for k in range(4))
        if np.any(hit + void > lab) or np.any(hit > pred):
            raise ValueError(
                "`counts` must have hits + void <= labels and hits <= predictions in every "
                "class (rows labels, predictions, hits, void)."
            )
        c = rows.shape[-1]
        ignored = v.normalize_ignore_index(ignore_index)
        return cls(
            counts=_counts.from_python_int(rows),
            invalid=_counts.from_python_int(_host_counts(invalid, "invalid", rows.shape[:-2])),
            num_classes=c,
            ignore_classes=v.class_ids_in_range(ignored, c),
        )

    @classmethod
    def configure(cls, num_classes: int, *, ignore_index: Any = None) -> type[ClassCounts]:
        """A subclass with ``num_classes`` and ``ignore_index`` bound, for CLU collections.

        As :meth:`ConfusionMatrix.configure`.

        Args:
          num_classes: ``C``.
          ignore_index: a label id or tuple of ids to leave out.

        Returns:
          A registered pytree subclass of this class.

        Examples:
          >>> import jax.numpy as jnp, jaxseg
          >>> Metric = jaxseg.ClassCounts.configure(2, ignore_index=255)
          >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
          >>> update = Metric.from_model_output(logits=logits, labels=jnp.array([0, 0, 255]))
          >>> Metric.empty().merge(update).counts_to_numpy()
          array([[2, 0],
                 [1, 1],
                 [1, 0],
                 [0, 0]])
        """
        c = v.check_num_classes(num_classes)
        ignored = v.normalize_ignore_index(ignore_index)
        return _configured(cls, c, (("ignore_index", ignored),), (("ignore_index", ignored),))

    # -- host readout ----------------------------------------------------------

    def to_numpy(self) -> np.ndarray:
        """Not available: this state has no ``C × C`` matrix (raises ``TypeError``).

        Use :meth:`counts_to_numpy` for its exact per-class counts, or a
        :class:`ConfusionMatrix` for the matrix view.
        """
        raise TypeError(
            f"ClassCounts keeps per-class sums (O(C)), not the {self.num_classes}x"
            f"{self.num_classes} confusion matrix, so it has no matrix view: use "
            "`counts_to_numpy()` for its exact counts [4, C] (labels, predictions, hits, "
            "void), or a ConfusionMatrix for the matrix."
        )

    def counts_to_numpy(self) -> np.ndarray:
        """Exact host counts ``int64 [..., 4, C]``: rows labels, predictions, hits, void."""
        return _counts.to_int64_numpy(self.counts)

    def label_counts(self) -> np.ndarray:
        """Exact host label support per class (void predictions included), ``int64 [..., C]``."""
        return _counts.to_int64_numpy(self.counts[..., 0, :, :])

    def void_to_numpy(self) -> np.ndarray:
        """Exact host counts of void predictions per label class, ``int64 [..., C]``."""
        return _counts.to_int64_numpy(self.counts[..., 3, :, :])

    # -- statistics ------------------------------------------------------------

    @staticmethod
    def _statistic_limbs(counts: jax.Array) -> tuple[jax.Array, ...]:
        """Exact ``tp, fp, fn, tn`` limbs from rows labels, predictions, hits (void in labels)."""
        labels, predictions, hits = (counts[..., k, :, :] for k in range(3))
        total = _counts.sum_limbs(jnp.moveaxis(labels, -2, 0), 0)[..., None, :]
        fp = _counts.difference(predictions, hits)
        fn = _counts.difference(labels, hits)
        tn = _counts.difference(jnp.broadcast_to(total, labels.shape), labels, fp)
        return hits, fp, fn, tn

    @property
    def tp(self) -> jax.Array:
        """True positives per class (hits), float ``[..., C]``."""
        return self._statistics()[0]

    @property
    def fp(self) -> jax.Array:
        """False positives per class (predictions minus hits), float ``[..., C]``."""
        return self._statistics()[1]

    @property
    def fn(self) -> jax.Array:
        """False negatives per class (labels minus hits; void predictions included)."""
        return self._statistics()[2]

    @property
    def tn(self) -> jax.Array:
        """True negatives per class, float ``[..., C]``, computed exactly in limbs."""
        return self._statistics()[3]
