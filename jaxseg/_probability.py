"""Probabilities: :class:`ProbabilityHistogram`, calibration errors and threshold sweeps.

A :class:`ProbabilityHistogram` bins predicted probabilities per class into
``num_bins`` equal-width bins on ``[0, 1]`` and keeps, per class and bin, exact
counts of positive and negative pixels and the exact sum of the probabilities.
Every calibration error, reliability diagram, ROC / precision-recall curve,
AUROC, average precision and hard statistics at any bin-edge threshold is a
function of it, so these metrics accumulate over batches, devices and hosts on
the algebra of every state (:class:`jaxseg._state.StateAlgebra`), in
``O(C * num_bins)`` memory instead of one float per pixel.

**Bin rule.** With ``B = num_bins`` and ``e_k`` the float32 nearest to ``k / B``,
a probability ``p`` goes to bin ``k`` when ``e_k <= p < e_{k+1}``: a value on
an edge goes up (``p = float32(0.3)`` is in bin 3 of 10), decided exactly, not
by a rounded ``floor(p * B)``.
``p = 1`` is kept in a bin of its own (index ``B``) so that both conventions can
be served: by default it is folded into the last bin ``B - 1`` (MONAI's rule,
and the usual one); ``ones_bin=True`` keeps it apart (torchmetrics' rule).
``NaN`` and values outside ``[0, 1]`` are invalid: the pixel is left out and
counted in ``invalid`` (an error under :func:`jaxseg.checked`).

**Fixed-point sums.** Each probability is rounded to the grid of ``2**-24``
(``q = round(p * 2**24)``, an integer in ``[0, 2**24]``) and the integers are
summed exactly in limbs, as two 12-bit halves. So the sums, like the counts,
are identical for any batch split, device count and reduction order.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import checkify

from jaxseg import _checked, _counts, _kernels
from jaxseg import _classwise as cw_
from jaxseg import _validation as v
from jaxseg._state import LIMBS, BinaryStats, StateAlgebra, _check_threshold, _configured

ArrayLike = jax.typing.ArrayLike

#: Probabilities are summed on the grid of ``2**-FIXED_POINT_BITS``.
FIXED_POINT_BITS = 24
_HALF_BITS = FIXED_POINT_BITS // 2
_HALF_MASK = (1 << _HALF_BITS) - 1
#: Pixels per exact uint32 partial sum: ``2**19 * 2**12 <= 2**31``.
_CHUNK = 1 << 19
#: Largest ``num_bins``.
MAX_BINS = 1 << 16

ACTIVATIONS = ("softmax", "sigmoid")
NORMS = ("l1", "l2", "max")
MODES = ("marginal", "top_label")
AVERAGES = (None, "macro")


def _static(default: Any = dataclasses.MISSING) -> Any:
    return dataclasses.field(default=default, metadata={"static": True})


def check_num_bins(num_bins: Any) -> int:
    """A static number of bins in ``[1, MAX_BINS]``."""
    if isinstance(num_bins, bool | np.bool_) or not isinstance(num_bins, int | np.integer):
        raise TypeError(f"`num_bins` must be a positive int; got {v._show(num_bins)}.")
    if not 1 <= int(num_bins) <= MAX_BINS:
        raise ValueError(f"`num_bins` must be an int in [1, {MAX_BINS}]; got {int(num_bins)}.")
    return int(num_bins)


def _check_probabilities(p: jax.Array, name: str) -> None:
    """Under :func:`jaxseg.checked`: fail on NaN or values outside ``[0, 1]``."""
    if not _checked.enabled():
        return
    bad = ~((p >= 0) & (p <= 1))
    checkify.check(
        ~jnp.any(bad),
        f"jaxseg: `{name}` of shape {tuple(p.shape)} holds {{count}} value(s) that are NaN "
        "or outside [0, 1]; probabilities must lie in [0, 1].",
        count=jnp.sum(bad, dtype=jnp.int32),
    )


def bin_index(p: jax.Array, num_bins: int) -> jax.Array:
    """Bin of each probability (the module's bin rule), ``B`` for ``p = 1``.

    Bin ``k`` holds ``e_k <= p < e_{k+1}`` with ``e_k`` the float32 nearest to
    ``k / B``, decided exactly: ``floor(p B)`` in float32 can be one off (for
    ``p = float32(0.53)``, ``p * 100`` rounds to ``52.999996``), so it is corrected
    against the edges on either side. ``p`` must be valid (in ``[0, 1]``).
    """
    p = p.astype(jnp.float32)
    b = jnp.float32(num_bins)
    k = _small_int(jnp.clip(jnp.floor(p * b), 0, num_bins))
    # e_0 .. e_B from the host (float64 division rounded once); e_{B+1} = inf
    edges = jnp.concatenate([_edges(num_bins), jnp.full((1,), jnp.inf, jnp.float32)])
    k = jnp.where(p < jnp.take(edges, k, mode="clip"), k - 1, k)
    k = jnp.where(p >= jnp.take(edges, k + 1, mode="clip"), k + 1, k)
    return jnp.where(p < 1, jnp.clip(k, 0, num_bins - 1), num_bins)


#: Bits of 2**23 (float32), the magic number of :func:`_small_int`.
_TWO_23_BITS = 0x4B000000


def _small_int(x: jax.Array) -> jax.Array:
    """int32 of a float32 ``x`` holding ``round_half_even(x)`` for ``0 <= x < 2**23``.

    ``x + 2**23`` lies where float32 steps are 1, so the addition rounds ``x`` to an
    integer (half to even) and its bits are ``bits(2**23) + that integer``. A plain
    ``astype(int32)`` runs about ten times slower on XLA's CPU backend (its
    saturating conversion is not vectorised), and the histogram converts every
    (pixel, class) probability twice.
    """
    shifted = x.astype(jnp.float32) + jnp.float32(1 << 23)
    return lax.bitcast_convert_type(shifted, jnp.int32) - jnp.int32(_TWO_23_BITS)


def fixed_point(p: jax.Array) -> jax.Array:
    """``round(p * 2**24)`` (half to even) as uint32 (``p`` in ``[0, 1]``; the scaling
    is exact).

    Below ``2**23`` by :func:`_small_int`; from ``2**23`` on (``p >= 1/2``) ``p * 2**24``
    is already an integer (float32 steps of 1, and ``2**24`` itself), read off its bits.
    """
    x = p.astype(jnp.float32) * float(1 << FIXED_POINT_BITS)
    high = lax.bitcast_convert_type(x, jnp.int32) - jnp.int32(_TWO_23_BITS - (1 << 23))
    return jnp.where(x < float(1 << 23), _small_int(x), high).astype(jnp.uint32)


def _histogram(
    bins: jax.Array, rows: jax.Array, q: jax.Array, ok: jax.Array, shape: tuple[int, ...]
) -> tuple[jax.Array, jax.Array]:
    """Exact counts and fixed-point sums of ``q`` per ``(row, column, bin)``.

    ``bins``, ``rows``, ``q``, ``ok`` are ``[N, K]`` (``K`` columns, one per class
    and the top-label column); returns limbs ``counts [R, K, B1, 3]`` and
    ``sums [K, B1, 2, 3]`` (high and low 12-bit halves) for ``shape = (R, K, B1)``.
    """
    r, k, b1 = shape
    n = bins.shape[0]
    cells = r * k * b1
    col = jnp.arange(k, dtype=jnp.int32)[None, :]
    idx = jnp.where(ok, (rows * k + col) * b1 + bins, cells)  # invalid -> a dropped cell
    q = jnp.where(ok, q, 0)
    vals = jnp.stack([ok.astype(jnp.uint32), q >> _HALF_BITS, q & _HALF_MASK], -1)
    chunk = min(n, _CHUNK)
    chunks = -(-n // chunk) if n else 1
    pad = chunks * chunk - n
    idx = jnp.pad(idx, ((0, pad), (0, 0)), constant_values=cells).reshape(chunks, -1)
    vals = jnp.pad(vals, ((0, pad), (0, 0), (0, 0))).reshape(chunks, -1, 3)

    def one(i: jax.Array, v_: jax.Array) -> jax.Array:
        out = jnp.zeros((cells + 1, 3), jnp.uint32).at[i].add(v_, mode="drop")
        return out[:cells]  # exact: every sum below 2**31

    if chunks == 1:
        limbs = _counts.from_int(one(idx[0], vals[0]))
    else:

        def step(acc: jax.Array, xs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
            return _counts.add(acc, _counts.from_int(one(*xs))), None

        limbs, _ = lax.scan(step, _counts.zeros((cells, 3)), (idx, vals))
    limbs = limbs.reshape(r, k, b1, 3, _counts.NUM_LIMBS)
    counts = limbs[..., 0, :]
    sums = _counts.sum_limbs(limbs[..., 1:, :], 0)  # both label rows: [K, B1, 2, L]
    return counts, sums


@functools.partial(jax.jit, static_argnames=("b", "excl", "ignored"))
def _bin_pixels(p, labels, where, *, b, excl, ignored):
    """Limbs ``(counts, sums, invalid)`` of checked inputs (see ``from_probabilities``)."""
    c = p.shape[-1]
    p = p.astype(jnp.float32)
    p_ok = (p >= 0) & (p <= 1)  # NaN fails both
    if excl:
        mask = v.broadcast_where(where, labels.shape)
        considered, bad_label = _kernels.label_validity(labels, c, ignored, mask)
        pixel_ok = jnp.all(p_ok, -1)
        ok_px = considered & pixel_ok  # labels in range, every probability valid
        invalid = bad_label | ((considered | bad_label) & ~pixel_ok)
        safe = jnp.where(ok_px, labels, 0).astype(jnp.int32)
        pos = jax.nn.one_hot(safe, c, dtype=jnp.bool_)
        ok = jnp.broadcast_to(ok_px[..., None], p.shape)
        top_p = jnp.max(jnp.where(p_ok, p, 0), -1)
        correct = jnp.argmax(p, -1) == safe
        p_cols = jnp.concatenate([p, top_p[..., None]], -1)
        y_cols = jnp.concatenate([pos, correct[..., None]], -1)
        ok_cols = jnp.concatenate([ok, ok_px[..., None]], -1)
    else:
        mask = v.channel_where(where, p.shape)
        considered, bad_label = _kernels.label_validity(labels, 2, ignored, mask)
        ok = considered & p_ok
        invalid = bad_label | (considered & ~p_ok)
        pos = labels == 1
        p_cols = jnp.concatenate([p, jnp.zeros_like(p[..., :1])], -1)
        y_cols = jnp.concatenate([pos, jnp.zeros_like(pos[..., :1])], -1)
        ok_cols = jnp.concatenate([ok, jnp.zeros_like(ok[..., :1])], -1)
    k = c + 1
    p_cols = jnp.where(ok_cols, p_cols, 0).reshape(-1, k)
    counts, sums = _histogram(
        bin_index(p_cols, b),
        y_cols.reshape(-1, k).astype(jnp.int32),
        fixed_point(p_cols),
        ok_cols.reshape(-1, k),
        (2, k, b + 1),
    )
    invalid = _counts.from_int(jnp.sum(invalid, dtype=jnp.int32))
    return counts, sums, invalid


def _fixed_value(sums: jax.Array) -> jax.Array:
    """Float value of fixed-point sums ``[..., 2, L]`` (high, low halves)."""
    f = _counts.to_float(sums)
    return (f[..., 0] * float(1 << _HALF_BITS) + f[..., 1]) * (2.0**-FIXED_POINT_BITS)


def _fold(x: jax.Array, ones_bin: bool) -> jax.Array:
    """``[..., B + 1]`` -> ``[..., B]`` with ``p = 1`` in the last bin (or kept apart)."""
    if ones_bin:
        return x
    return jnp.concatenate([x[..., :-2], x[..., -2:-1] + x[..., -1:]], -1)


@functools.partial(jax.jit, static_argnames=("row_axis", "ones_bin"))
def _float_bins(counts, sums, *, row_axis: int, ones_bin: bool) -> tuple[jax.Array, ...]:
    """Float ``(positives, negatives, sums)`` per bin of count limbs (rows negative and
    positive on ``row_axis`` of the float counts, bins last) and fixed-point sums."""
    f = _counts.to_float(counts)
    pos, neg = (jnp.take(f, k, axis=row_axis) for k in (1, 0))
    return _fold(pos, ones_bin), _fold(neg, ones_bin), _fold(_fixed_value(sums), ones_bin)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ProbabilityHistogram(StateAlgebra):
    """Exact per-class histograms of predicted probabilities: calibration and thresholds.

    Per class ``c`` and bin ``k`` of ``B = num_bins`` equal-width bins on
    ``[0, 1]`` the state holds the count of positive pixels ``P[c, k]``
    (label ``c``), of negative pixels ``N[c, k]`` and the sum of their
    probabilities ``S[c, k]``, all exact: counts in limbs, sums in fixed point
    on a ``2**-24`` grid (see :mod:`jaxseg._probability` for the bin rule:
    ``k = floor(p B)``, an edge goes up, ``p = 1`` in the last bin, NaN and values
    outside ``[0, 1]`` invalid). For mutually exclusive classes (softmax) it also
    holds the top-label histogram: per bin of the pixel's largest probability,
    the count of correct (arg-max equals the label) and wrong pixels and the sum
    of those confidences, for the top-label calibration error.

    Functions of the state: :func:`jaxseg.expected_calibration_error`,
    :func:`jaxseg.reliability_diagram`, :func:`jaxseg.roc_curve`,
    :func:`jaxseg.precision_recall_curve`, :func:`jaxseg.auroc`,
    :func:`jaxseg.average_precision`, :func:`jaxseg.best_threshold` and
    :meth:`at_threshold` (hard statistics for every score). Merges, reduces and
    psums like every state; its memory is ``O(C B)``, whatever the pixel count.

    A single update is exact for any pixel count (partial sums are taken over
    blocks of ``2**19`` pixels); counts and the fixed-point sums (which grow
    ``2**24`` per pixel) are exact through merges until a sum's high half
    reaches ``2**48``, i.e. for at least ``2**36`` pixels per class and bin.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> probs = jnp.array([0.1, 0.4, 0.35, 0.8, 0.9, 1.0])[:, None]  # one channel
      >>> labels = jnp.array([0, 0, 1, 1, 1, 1])[:, None]
      >>> h = jaxseg.ProbabilityHistogram.from_probabilities(
      ...     probs, labels, num_bins=4, exclusive=False)
      >>> h.positives, h.negatives  # per class and bin
      (Array([[0., 1., 0., 3.]], dtype=float32), Array([[1., 1., 0., 0.]], dtype=float32))
      >>> jaxseg.auroc(h)
      Array(0.9375, dtype=float32)
      >>> jaxseg.dice(h.at_threshold(0.5), average=None)
      Array([0.85714287], dtype=float32)

    Attributes:
      counts: ``uint32 [..., 2, C, B + 1, 3]`` limbs; rows negatives, positives;
        bin ``B`` holds ``p = 1``.
      sums: ``uint32 [..., C, B + 1, 2, 3]`` limbs of the fixed-point sums of
        ``round(p * 2**24)``, as high and low 12-bit halves.
      top_counts: ``uint32 [..., 2, B + 1, 3]`` limbs of the top-label
        histogram; rows wrong, correct (zeros for independent channels).
      top_sums: ``uint32 [..., B + 1, 2, 3]`` limbs of the confidence sums.
      invalid: ``uint32 [..., 3]`` limbs of the invalid pixels (labels out of
        range, probabilities NaN or outside ``[0, 1]``).
      num_classes: ``C`` (static).
      num_bins: ``B`` (static).
      exclusive: ``True`` for softmax classes, ``False`` for independent
        channels (static).
      ignore_classes: ignored ids inside ``[0, C)`` (static).

    References:
      Guo et al., "On Calibration of Modern Neural Networks", ICML 2017;
      Naeini et al., "Obtaining Well Calibrated Probabilities Using Bayesian
      Binning", AAAI 2015; Fawcett, "An introduction to ROC analysis", 2006.
    """

    counts: jax.Array = dataclasses.field(metadata=LIMBS)
    sums: jax.Array = dataclasses.field(metadata=LIMBS)
    top_counts: jax.Array = dataclasses.field(metadata=LIMBS)
    top_sums: jax.Array = dataclasses.field(metadata=LIMBS)
    invalid: jax.Array = dataclasses.field(metadata=LIMBS)
    num_classes: int = _static()
    num_bins: int = _static()
    exclusive: bool = _static(True)
    ignore_classes: tuple[int, ...] = _static(())
    soft: ClassVar[bool] = False

    def _trailing_shapes(self) -> dict[str, tuple[int, ...]]:
        c, b1, limbs = self.num_classes, self.num_bins + 1, _counts.NUM_LIMBS
        return {
            "counts": (2, c, b1, limbs),
            "sums": (c, b1, 2, limbs),
            "top_counts": (2, b1, limbs),
            "top_sums": (b1, 2, limbs),
            "invalid": (limbs,),
        }

    # -- constructors ------------------------------------------------------------

    @classmethod
    def empty(
        cls,
        num_classes: int,
        *,
        num_bins: int,
        exclusive: bool = True,
        ignore_index: Any = None,
    ) -> ProbabilityHistogram:
        """The identity of :meth:`merge`: all counts and sums zero."""
        c, b = v.check_num_classes(num_classes), check_num_bins(num_bins)
        ignored = v.normalize_ignore_index(ignore_index)
        return cls(
            counts=_counts.zeros((2, c, b + 1)),
            sums=_counts.zeros((c, b + 1, 2)),
            top_counts=_counts.zeros((2, b + 1)),
            top_sums=_counts.zeros((b + 1, 2)),
            invalid=_counts.zeros(()),
            num_classes=c,
            num_bins=b,
            exclusive=v.check_bool("exclusive", exclusive),
            ignore_classes=v.class_ids_in_range(ignored, c),
        )

    @classmethod
    def from_probabilities(
        cls,
        probs: ArrayLike,
        labels: ArrayLike,
        *,
        num_bins: int,
        exclusive: bool = True,
        ignore_index: Any = None,
        where: ArrayLike | None = None,
    ) -> ProbabilityHistogram:
        """Bin probabilities ``[..., C]`` against their labels.

        Args:
          probs: probabilities in ``[0, 1]``, float ``[..., C]``.
          labels: with ``exclusive=True`` class ids, int ``[...]`` =
            ``probs.shape[:-1]``; with ``exclusive=False`` 0/1 per channel, int
            ``[..., C]`` (as :class:`jaxseg.BinaryStats`).
          num_bins: ``B >= 1`` equal-width bins on ``[0, 1]`` (static).
          exclusive: ``True`` (default) for mutually exclusive classes (a
            softmax: also fills the top-label histogram), ``False`` for
            independent channels (sigmoids).
          ignore_index: a label id or tuple of ids to leave out.
          where: boolean mask broadcastable to the per-pixel shape
            ``probs.shape[:-1]`` (or, with ``exclusive=False``, of ``probs.shape``).

        Returns:
          A state with histograms ``[C, B]`` (no batch axis; ``vmap`` to get one).
        """
        p = jnp.asarray(probs)
        if p.ndim < 1 or p.shape[-1] < 1:
            raise ValueError(f"`probs` must have shape [..., C] with C >= 1; got {p.shape}.")
        if not jnp.issubdtype(p.dtype, jnp.floating):
            raise TypeError(f"`probs` must be floating point; got dtype {p.dtype}.")
        b = check_num_bins(num_bins)
        excl = v.check_bool("exclusive", exclusive)
        ignored = v.normalize_ignore_index(ignore_index)
        labels = v.check_int_labels(v.as_int_array(labels, "labels"))
        _check_probabilities(p, "probs")
        c = p.shape[-1]
        if excl:
            v.check_labels_for_logits(p, labels)
        else:
            v.check_same_shape("probs", p, "labels", labels)
        where = None if where is None else jnp.asarray(where)
        counts, sums, invalid = _bin_pixels(p, labels, where, b=b, excl=excl, ignored=ignored)
        return cls(
            counts=counts[:, :c],
            sums=sums[:c],
            top_counts=counts[:, c],
            top_sums=sums[c],
            invalid=invalid,
            num_classes=c,
            num_bins=b,
            exclusive=excl,
            ignore_classes=v.class_ids_in_range(ignored, c) if excl else (),
        )

    @classmethod
    def from_logits(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        *,
        num_bins: int,
        activation: str = "softmax",
        ignore_index: Any = None,
        where: ArrayLike | None = None,
    ) -> ProbabilityHistogram:
        """Bin ``softmax(logits)`` (or ``sigmoid(logits)``) against their labels.

        Args:
          logits: scores ``[..., C]`` (any float dtype; computed in float32).
          labels: class ids int ``[...]`` for ``"softmax"``; 0/1 per channel
            ``[..., C]`` for ``"sigmoid"``.
          num_bins: ``B >= 1`` equal-width bins on ``[0, 1]`` (static).
          activation: ``"softmax"`` (mutually exclusive classes) or
            ``"sigmoid"`` (independent channels).
          ignore_index: a label id or tuple of ids to leave out.
          where: boolean mask, as in :meth:`from_probabilities`.

        Returns:
          A state with histograms ``[C, B]``.
        """
        v.check_choice("activation", activation, ACTIVATIONS)
        x = v.check_logits(jnp.asarray(logits)).astype(jnp.float32)
        softmax = activation == "softmax"
        probs = jax.nn.softmax(x, -1) if softmax else jax.nn.sigmoid(x)
        return cls.from_probabilities(
            probs,
            labels,
            num_bins=num_bins,
            exclusive=softmax,
            ignore_index=ignore_index,
            where=where,
        )

    @classmethod
    def configure(
        cls,
        num_classes: int,
        *,
        num_bins: int,
        activation: str = "softmax",
        ignore_index: Any = None,
    ) -> type[ProbabilityHistogram]:
        """A subclass with its settings bound, for CLU collections (as ``ConfusionMatrix``'s).

        Args:
          num_classes: ``C``.
          num_bins: ``B``.
          activation: ``"softmax"`` or ``"sigmoid"``.
          ignore_index: a label id or tuple of ids to leave out.

        Returns:
          A registered pytree subclass whose ``empty()`` and
          ``from_model_output(logits=..., labels=..., mask=...)`` need no settings.

        Examples:
          >>> import jax.numpy as jnp, jaxseg
          >>> Metric = jaxseg.ProbabilityHistogram.configure(3, num_bins=10)
          >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
          >>> update = Metric.from_model_output(logits=logits, labels=jnp.array([0, 1]))
          >>> Metric.empty().merge(update).compute()  # marginal ECE, mean over classes
          Array(0.38924515, dtype=float32)
        """
        c, b = v.check_num_classes(num_classes), check_num_bins(num_bins)
        v.check_choice("activation", activation, ACTIVATIONS)
        ignored = v.normalize_ignore_index(ignore_index)
        empty_kw = (("num_bins", b), ("exclusive", activation == "softmax"))
        empty_kw += (("ignore_index", ignored),)
        logits_kw = (("num_bins", b), ("activation", activation), ("ignore_index", ignored))
        return _configured(cls, c, empty_kw, logits_kw)  # type: ignore[arg-type,return-value]

    @classmethod
    def from_model_output(
        cls,
        logits: ArrayLike,
        labels: ArrayLike,
        mask: ArrayLike | None = None,
        *,
        num_bins: int,
        activation: str = "softmax",
        **_: Any,
    ) -> ProbabilityHistogram:
        """CLU protocol: :meth:`from_logits` with ``mask`` as ``where`` (see :meth:`configure`)."""
        where = None if mask is None else jnp.asarray(mask).astype(jnp.bool_)
        return cls.from_logits(
            logits, labels, num_bins=num_bins, activation=activation, where=where
        )

    def compute(self) -> jax.Array:
        """CLU ``compute``: the marginal ECE, mean over classes."""
        return expected_calibration_error(self)

    # -- readout -------------------------------------------------------------------

    def to_numpy(self) -> np.ndarray:
        """Exact host counts ``int64 [..., 2, C, B + 1]``: rows negatives, positives."""
        return _counts.to_int64_numpy(self.counts)

    def sums_to_numpy(self) -> np.ndarray:
        """Exact host fixed-point sums ``int64 [..., C, B + 1]`` (units of ``2**-24``)."""
        parts = _counts.to_int64_numpy(self.sums)
        return (parts[..., 0] << _HALF_BITS) + parts[..., 1]

    @property
    def num_invalid(self) -> jax.Array:
        """Invalid pixels (labels out of range, probabilities NaN or outside [0, 1])."""
        return _counts.to_float(self.invalid)

    def _marginal(self, ones_bin: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Float ``(positives, negatives, sums)`` per class and bin ``[..., C, K]``."""
        return _float_bins(self.counts, self.sums, row_axis=-3, ones_bin=ones_bin)

    def _top_label(self, ones_bin: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
        if not self.exclusive:
            raise ValueError(
                '`mode="top_label"` needs mutually exclusive classes (a softmax); this state '
                'holds independent channels (sigmoid): use `mode="marginal"`.'
            )
        return _float_bins(self.top_counts, self.top_sums, row_axis=-2, ones_bin=ones_bin)

    @property
    def positives(self) -> jax.Array:
        """Positive pixels per class and bin, float ``[..., C, B]`` (``p = 1`` in the last bin)."""
        return self._marginal()[0]

    @property
    def negatives(self) -> jax.Array:
        """Negative pixels per class and bin, float ``[..., C, B]``."""
        return self._marginal()[1]

    @property
    def probability_sums(self) -> jax.Array:
        """Sums of the probabilities per class and bin, float ``[..., C, B]``."""
        return self._marginal()[2]

    def at_threshold(self, threshold: ArrayLike) -> BinaryStats:
        """Hard statistics of ``p >= threshold`` per class, for every score.

        Pixels in bins whose lower edge is at or above ``threshold`` are predicted
        positive: exactly ``p >= threshold`` when ``threshold`` is a bin edge
        (the float32 nearest to ``k / B``); another threshold is rounded up to
        the next edge. (:class:`jaxseg.BinaryStats` ``from_logits`` counts
        ``p > threshold``: the two differ only for ``p`` exactly on the threshold.)

        Args:
          threshold: a probability in ``[0, 1]``, a scalar (may be traced).

        Returns:
          A :class:`jaxseg.BinaryStats` with ``tp, fp, fn, tn`` per class ``[..., C]``,
          exact counts, served by every score (``jaxseg.dice(h.at_threshold(0.5))``).
        """
        t = _check_threshold(threshold, 1)
        if t.ndim:
            raise ValueError(f"`threshold` must be a scalar; got shape {tuple(t.shape)}.")
        rows = _rows_at_threshold(self.counts, t, num_bins=self.num_bins)
        return BinaryStats(
            counts=rows,
            invalid=self.invalid,
            num_classes=self.num_classes,
            ignore_classes=self.ignore_classes,
        )


@functools.partial(jax.jit, static_argnames="num_bins")
def _rows_at_threshold(counts: jax.Array, t: jax.Array, *, num_bins: int) -> jax.Array:
    """``tp, fp, fn, tn`` limbs ``[..., 4, C, L]`` of ``p >= t`` from histogram limbs."""
    first = _first_bin(t, num_bins)
    above = jnp.arange(num_bins + 1) >= first  # [B + 1]
    sel = jnp.broadcast_to(above[:, None], counts.shape)  # counts [..., 2, C, B + 1, L]
    hit = _counts.sum_limbs(jnp.where(sel, counts, 0), -1)  # [..., 2, C, L]: neg, pos
    miss = _counts.sum_limbs(jnp.where(sel, 0, counts), -1)
    tp, fp, fn, tn = hit[..., 1, :, :], hit[..., 0, :, :], miss[..., 1, :, :], miss[..., 0, :, :]
    return jnp.stack([tp, fp, fn, tn], -3)


def _edges(num_bins: int) -> jax.Array:
    """``e_k``, the float32 nearest to ``k / B``, for ``k = 0, ..., B`` (host division)."""
    return jnp.asarray(np.arange(num_bins + 1) / num_bins, jnp.float32)


def _first_bin(t: jax.Array, num_bins: int) -> jax.Array:
    """The first bin whose lower edge is ``>= t``: ``p >= e_k`` iff ``bin(p) >= k``."""
    return jnp.sum(_edges(num_bins) < t.astype(jnp.float32), dtype=jnp.int32)


def _check_histogram(h: Any) -> ProbabilityHistogram:
    if not isinstance(h, ProbabilityHistogram):
        raise TypeError(f"expected a ProbabilityHistogram; got {type(h).__name__}.")
    return h


def _average(
    h: ProbabilityHistogram,
    per_class: jax.Array,
    defined: jax.Array,
    average: Any,
    include_background: bool,
) -> jax.Array:
    """Mean over counted classes where the value is defined (the class-average chain)."""
    v.check_choice("average", average, AVERAGES)
    include = cw_.include_mask(
        h.counted_classes, per_class.shape, include_background=include_background
    )
    return cw_.class_average(per_class, include & defined, average=average)


def _safe_div(num: jax.Array, den: jax.Array, fill: float = 0.0) -> jax.Array:
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), fill)


@functools.partial(jax.jit, static_argnames="norm")
def _calibration(pos: jax.Array, neg: jax.Array, sums: jax.Array, norm: str) -> jax.Array:
    """Calibration error over the last (bin) axis; NaN where there is no pixel."""
    n_bin = pos + neg
    n = n_bin.sum(-1)
    if norm == "l1":
        value = _safe_div(jnp.abs(pos - sums).sum(-1), n)
    else:
        gap = _safe_div(jnp.abs(pos - sums), n_bin)  # |accuracy - confidence| per bin
        if norm == "l2":
            value = jnp.sqrt(_safe_div((n_bin * gap * gap).sum(-1), n))
        else:
            value = jnp.max(gap, -1)
    return jnp.where(n > 0, value, jnp.nan)


def expected_calibration_error(
    h: ProbabilityHistogram,
    *,
    norm: str = "l1",
    mode: str = "marginal",
    average: str | None = "macro",
    include_background: bool = True,
    ones_bin: bool = False,
) -> jax.Array:
    """Calibration error of binned probabilities: ECE (``l1``), RMS (``l2``), MCE (``max``).

    Per bin ``k`` with ``n_k`` pixels, accuracy ``acc_k`` (fraction positive;
    top-label: fraction correct) and confidence ``conf_k`` (mean probability)::

        l1  = sum_k (n_k / n) |acc_k - conf_k|
        l2  = sqrt(sum_k (n_k / n) (acc_k - conf_k)^2)
        max = max over non-empty bins of |acc_k - conf_k|

    ``mode="marginal"`` scores each class ``c`` on its own probability ``p_c``
    against "label is ``c``" (MONAI's ``CalibrationErrorMetric``, per class;
    torchmetrics' ``BinaryCalibrationError`` for a single channel).
    ``mode="top_label"`` scores the largest probability of each pixel against
    "the arg-max is the label" (torchmetrics' ``MulticlassCalibrationError``;
    needs a softmax state).

    Args:
      h: a :class:`ProbabilityHistogram`.
      norm: ``"l1"`` (default), ``"l2"`` or ``"max"``.
      mode: ``"marginal"`` (default) or ``"top_label"``.
      average: marginal only: ``"macro"`` (default; mean over counted classes
        with pixels) or ``None`` (per class ``[..., C]``, NaN for ignored classes).
      include_background: ``False`` leaves class 0 out of the average.
      ones_bin: ``True`` gives ``p = 1`` a bin of its own, as torchmetrics does
        (``B + 1`` bins); by default it is in the last bin, as in MONAI.

    Returns:
      float ``[...]`` (the state's batch shape), or ``[..., C]`` for a marginal
      ``average=None``; NaN where there is no pixel.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> probs = jnp.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
      >>> labels = jnp.array([0, 0, 1, 1])
      >>> h = jaxseg.ProbabilityHistogram.from_probabilities(probs, labels, num_bins=5)
      >>> jaxseg.expected_calibration_error(h, mode="top_label")
      Array(0.15, dtype=float32)
      >>> jaxseg.expected_calibration_error(h, average=None)
      Array([0.3, 0.3], dtype=float32)

    References:
      Naeini et al., "Obtaining Well Calibrated Probabilities Using Bayesian
      Binning", AAAI 2015; Guo et al., "On Calibration of Modern Neural
      Networks", ICML 2017; Kumar et al., "Verified Uncertainty Calibration",
      NeurIPS 2019 (marginal and top-label errors).
    """
    h = _check_histogram(h)
    v.check_choice("norm", norm, NORMS)
    v.check_choice("mode", mode, MODES)
    ones_bin = v.check_bool("ones_bin", ones_bin)
    if mode == "top_label":
        return _calibration(*h._top_label(ones_bin), norm)
    per_class = _calibration(*h._marginal(ones_bin), norm)
    return _average(h, per_class, ~jnp.isnan(per_class), average, include_background)


def reliability_diagram(
    h: ProbabilityHistogram, *, mode: str = "marginal", ones_bin: bool = False
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Mean confidence, accuracy and pixel count per bin: the reliability diagram.

    ``confidence_k = S_k / n_k`` and ``accuracy_k = P_k / n_k`` (NaN for an empty
    bin), ``count_k = n_k``; plot accuracy against confidence (or against the bin
    centres ``(k + 0.5) / B``) next to the diagonal.

    Args:
      h: a :class:`ProbabilityHistogram`.
      mode: ``"marginal"`` (per class) or ``"top_label"`` (softmax states).
      ones_bin: ``True`` gives ``p = 1`` a bin of its own (``B + 1`` bins).

    Returns:
      ``(confidence, accuracy, count)``, float ``[..., C, B]`` (marginal) or
      ``[..., B]`` (top-label).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> probs = jnp.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
      >>> h = jaxseg.ProbabilityHistogram.from_probabilities(
      ...     probs, jnp.array([0, 0, 1, 1]), num_bins=2)
      >>> conf, acc, count = jaxseg.reliability_diagram(h, mode="top_label")
      >>> conf
      Array([ nan, 0.75], dtype=float32)
      >>> acc, count
      (Array([ nan, 0.75], dtype=float32), Array([0., 4.], dtype=float32))

    References:
      DeGroot and Fienberg, "The Comparison and Evaluation of Forecasters", 1983.
    """
    h = _check_histogram(h)
    v.check_choice("mode", mode, MODES)
    ones_bin = v.check_bool("ones_bin", ones_bin)
    pos, neg, sums = h._top_label(ones_bin) if mode == "top_label" else h._marginal(ones_bin)
    n = pos + neg
    return _safe_div(sums, n, jnp.nan), _safe_div(pos, n, jnp.nan), n


@jax.jit
def _cumulative(h: ProbabilityHistogram) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(tp, fp, thresholds)`` for predicting ``p >= k / B``, ``k = B, ..., 0``, after a
    first point with nothing predicted; ``tp, fp`` float ``[..., C, B + 2]``."""
    pos, neg, _ = h._marginal(ones_bin=True)  # [..., C, B + 1]; bin B holds p = 1
    zero = jnp.zeros_like(pos[..., :1])
    tp = jnp.concatenate([zero, jnp.cumsum(pos[..., ::-1], -1)], -1)
    fp = jnp.concatenate([zero, jnp.cumsum(neg[..., ::-1], -1)], -1)
    b = h.num_bins
    thresholds = jnp.concatenate([jnp.array([jnp.inf]), jnp.arange(b, -1, -1, dtype=tp.dtype) / b])
    return tp, fp, thresholds


def roc_curve(h: ProbabilityHistogram) -> tuple[jax.Array, jax.Array, jax.Array]:
    """ROC curve per class on the bin-quantised scores: ``(fpr, tpr, thresholds)``.

    Point ``j`` predicts positive the pixels with ``p >= thresholds[j]``; the
    thresholds are the bin edges ``k / B`` from 1 down to 0, after ``+inf``
    (nothing predicted, the point ``(0, 0)``). ``tpr = TP / P`` and
    ``fpr = FP / N`` (NaN for a class with no positive, resp. negative pixel).
    This is scikit-learn's ``roc_curve(y, floor(p B) / B,
    drop_intermediate=False)`` plus repeated points for empty bins.

    Args:
      h: a :class:`ProbabilityHistogram`.

    Returns:
      ``fpr`` and ``tpr`` float ``[..., C, B + 2]``; ``thresholds`` ``[B + 2]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> h = jaxseg.ProbabilityHistogram.from_probabilities(
      ...     jnp.array([[0.2], [0.6], [0.7]]), jnp.array([[0], [1], [0]]),
      ...     num_bins=2, exclusive=False)
      >>> fpr, tpr, thresholds = jaxseg.roc_curve(h)
      >>> thresholds
      Array([inf, 1. , 0.5, 0. ], dtype=float32)
      >>> fpr, tpr
      (Array([[0. , 0. , 0.5, 1. ]], dtype=float32), Array([[0., 0., 1., 1.]], dtype=float32))

    References:
      Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 2006.
    """
    h = _check_histogram(h)
    tp, fp, thresholds = _cumulative(h)
    return (
        _safe_div(fp, fp[..., -1:], jnp.nan),
        _safe_div(tp, tp[..., -1:], jnp.nan),
        thresholds,
    )


def precision_recall_curve(h: ProbabilityHistogram) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Precision-recall curve per class on the bin-quantised scores.

    Point ``j < B + 1`` predicts positive the pixels with ``p >= thresholds[j]``,
    thresholds rising over the bin edges ``0, 1 / B, ..., 1``; the last point is
    ``(precision, recall) = (1, 0)``, as in scikit-learn's
    ``precision_recall_curve``. ``precision = TP / (TP + FP)`` (1 where nothing is
    predicted, scikit-learn's rule), ``recall = TP / P`` (NaN without positives).

    Args:
      h: a :class:`ProbabilityHistogram`.

    Returns:
      ``precision`` and ``recall`` float ``[..., C, B + 2]``; ``thresholds`` ``[B + 1]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> h = jaxseg.ProbabilityHistogram.from_probabilities(
      ...     jnp.array([[0.2], [0.6], [0.7]]), jnp.array([[0], [1], [0]]),
      ...     num_bins=2, exclusive=False)
      >>> precision, recall, thresholds = jaxseg.precision_recall_curve(h)
      >>> precision
      Array([[0.33333334, 0.5       , 1.        , 1.        ]], dtype=float32)
      >>> recall
      Array([[1., 1., 0., 0.]], dtype=float32)

    References:
      Davis and Goadrich, "The Relationship Between Precision-Recall and ROC
      Curves", ICML 2006.
    """
    h = _check_histogram(h)
    tp, fp, thresholds = _cumulative(h)
    tp, fp, thresholds = tp[..., :0:-1], fp[..., :0:-1], thresholds[:0:-1]
    precision = _safe_div(tp, tp + fp, 1.0)
    recall = _safe_div(tp, tp[..., :1], jnp.nan)
    one, zero = jnp.ones_like(tp[..., :1]), jnp.zeros_like(tp[..., :1])
    return (
        jnp.concatenate([precision, one], -1),
        jnp.concatenate([recall, jnp.where(tp[..., :1] > 0, zero, jnp.nan)], -1),
        thresholds,
    )


def auroc(
    h: ProbabilityHistogram, *, average: str | None = "macro", include_background: bool = True
) -> jax.Array:
    """Area under the ROC curve per class, on the bin-quantised scores (ties count half).

    With ``P_k``, ``N_k`` the positive and negative pixels of bin ``k``::

        AUROC = sum_k N_k (P_{>k} + P_k / 2) / (P N)

    the probability that a random positive pixel scores above a random negative
    one, ties counting half: the trapezoidal area of :func:`roc_curve`, equal to
    scikit-learn's ``roc_auc_score(y, floor(p B) / B)``. NaN for a class without
    positive or without negative pixels (scikit-learn raises).

    Args:
      h: a :class:`ProbabilityHistogram`.
      average: ``"macro"`` (default; mean over counted classes where defined,
        one-vs-rest) or ``None`` (per class ``[..., C]``).
      include_background: ``False`` leaves class 0 out of the average.

    Returns:
      float ``[...]``, or ``[..., C]`` for ``average=None``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> h = jaxseg.ProbabilityHistogram.from_probabilities(
      ...     jnp.array([[0.2], [0.6], [0.7], [0.9]]), jnp.array([[0], [1], [0], [1]]),
      ...     num_bins=10, exclusive=False)
      >>> jaxseg.auroc(h)
      Array(0.75, dtype=float32)

    References:
      Hanley and McNeil, "The meaning and use of the area under a receiver
      operating characteristic (ROC) curve", Radiology 1982.
    """
    h = _check_histogram(h)
    pos, neg, _ = h._marginal(ones_bin=True)
    above = jnp.cumsum(pos[..., ::-1], -1)[..., ::-1] - pos  # P_{>k}
    p_total, n_total = pos.sum(-1), neg.sum(-1)
    num = (neg * (above + 0.5 * pos)).sum(-1)
    defined = (p_total > 0) & (n_total > 0)
    value = jnp.where(defined, num / jnp.where(defined, p_total * n_total, 1), jnp.nan)
    return _average(h, value, defined, average, include_background)


def average_precision(
    h: ProbabilityHistogram, *, average: str | None = "macro", include_background: bool = True
) -> jax.Array:
    """Average precision per class, on the bin-quantised scores.

    Over the thresholds ``k / B`` from high to low, with ``R_k`` and ``Prec_k``
    the recall and precision of predicting ``p >= k / B``::

        AP = sum_k (R_k - R_{k+1}) Prec_k

    (scikit-learn's ``average_precision_score(y, floor(p B) / B)``: no
    interpolation). NaN for a class without positive pixels.

    Args:
      h: a :class:`ProbabilityHistogram`.
      average: ``"macro"`` (default) or ``None`` (per class ``[..., C]``).
      include_background: ``False`` leaves class 0 out of the average.

    Returns:
      float ``[...]``, or ``[..., C]`` for ``average=None``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> h = jaxseg.ProbabilityHistogram.from_probabilities(
      ...     jnp.array([[0.2], [0.6], [0.7], [0.9]]), jnp.array([[0], [1], [0], [1]]),
      ...     num_bins=10, exclusive=False)
      >>> jaxseg.average_precision(h)
      Array(0.8333334, dtype=float32)

    References:
      Zhu, "Recall, precision and average precision", University of Waterloo, 2004;
      scikit-learn, ``average_precision_score``.
    """
    h = _check_histogram(h)
    pos, neg, _ = h._marginal(ones_bin=True)
    tp = jnp.cumsum(pos[..., ::-1], -1)  # thresholds from high to low
    fp = jnp.cumsum(neg[..., ::-1], -1)
    p_total = tp[..., -1:]
    precision = _safe_div(tp, tp + fp)
    value = _safe_div((pos[..., ::-1] * precision).sum(-1), p_total[..., 0])
    defined = p_total[..., 0] > 0
    value = jnp.where(defined, value, jnp.nan)
    return _average(h, value, defined, average, include_background)


def best_threshold(
    h: ProbabilityHistogram, score: Callable[..., jax.Array] | None = None
) -> tuple[jax.Array, jax.Array]:
    """The bin edge that maximises a score, per class, and the score there.

    Evaluates ``score(h.at_threshold(k / B), average=None)`` for every edge
    ``k = 0, ..., B`` at once (one batched statistics state, from cumulative
    sums over the bins) and takes the best
    per class; ties go to the lowest threshold; NaN scores never win.

    Args:
      h: a :class:`ProbabilityHistogram`.
      score: a jaxseg score taking ``average=None`` (default :func:`jaxseg.dice`;
        ``functools.partial`` binds other keywords, e.g. ``fbeta`` with ``beta=2``).

    Returns:
      ``(thresholds, values)``, float ``[..., C]`` (NaN where every value is NaN).

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> h = jaxseg.ProbabilityHistogram.from_probabilities(
      ...     jnp.array([[0.2], [0.35], [0.45], [0.9]]), jnp.array([[0], [1], [1], [1]]),
      ...     num_bins=10, exclusive=False)
      >>> jaxseg.best_threshold(h)  # Dice 1 from p >= 0.3
      (Array([0.3], dtype=float32), Array([1.], dtype=float32))
    """
    h = _check_histogram(h)
    if score is None:
        from jaxseg._scores import dice as score
    b = h.num_bins
    values = score(_every_edge(h), average=None)  # [B + 1, ..., C]
    finite = jnp.where(jnp.isnan(values), -jnp.inf, values)
    best = jnp.argmax(finite, 0)
    value = jnp.take_along_axis(values, best[None], 0)[0]
    # k / B divided on the host and rounded once: in float32 the edge e_k itself
    t = jnp.asarray(np.arange(b + 1) / b, value.dtype)[best]
    return jnp.where(jnp.isnan(value), jnp.nan, t), value


def _every_edge(h: ProbabilityHistogram) -> BinaryStats:
    """``h.at_threshold(k / B)`` for every edge ``k = 0, ..., B``, stacked on a first axis.

    Cumulative sums over the bins, ``O(B)`` counts per class instead of ``B + 1``
    masked sums of ``B + 1`` bins: above the edge ``k`` the suffix sum from bin ``k``,
    below it the prefix sum up to bin ``k - 1``. Exact: at most ``B + 1 <= 2**16 + 1``
    normal-form limbs (each below ``2**16``) are added, below ``2**32``.
    """
    c = _counts.normalize(h.counts)  # [..., 2, C, B + 1, L]
    hit = _counts.normalize(jnp.cumsum(c[..., ::-1, :], -2, dtype=jnp.uint32)[..., ::-1, :])
    zero = jnp.zeros_like(c[..., :1, :])
    miss = _counts.normalize(jnp.cumsum(jnp.concatenate([zero, c[..., :-1, :]], -2), -2))
    hit, miss = jnp.moveaxis(hit, -2, 0), jnp.moveaxis(miss, -2, 0)  # [B + 1, ..., 2, C, L]
    rows = jnp.stack(
        [hit[..., 1, :, :], hit[..., 0, :, :], miss[..., 1, :, :], miss[..., 0, :, :]], -3
    )
    return BinaryStats(
        counts=rows,  # tp, fp, fn, tn
        invalid=jnp.broadcast_to(h.invalid, (rows.shape[0], *h.invalid.shape)),
        num_classes=h.num_classes,
        ignore_classes=h.ignore_classes,
    )
