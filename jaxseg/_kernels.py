"""Counting kernels: the hot inner loops behind the hard statistics.

Each kernel returns exact int32 counts for one call (exact below ``2**31``
pixels per call); callers turn them into wide limbs (:mod:`jaxseg._counts`).

The implementation is picked per platform when the computation is lowered
(:func:`jax.lax.platform_dependent`), from the measurements of ``benchmarks/``
(see ``docs/benchmarks.md``); every path gives bit-identical results:

* **argmax** (``argmax_classes``). On CPU ``jnp.argmax`` lowers to a
  variadic (value, index) reduction that XLA:CPU does not vectorise; a
  comparison network over the class slices is several times faster
  (:func:`cpu_argmax_method` picks by ``C``): a balanced tournament for few
  classes, a running-max chain for tens of classes, the tournament again up
  to ``UNROLLED_MAX_CLASSES``, and above it a blocked tournament (a chain over whole blocks of
  ``BLOCK_WIDTH`` classes, then a tournament across the block's lanes), whose
  graph has about ``C / 16 + 16`` comparisons instead of ``C``, so that its
  compile time stays below a second at ``C = 1000`` (the unrolled networks
  took 6-34 s there). Elsewhere (GPU, TPU) ``jnp.argmax`` is a fast fused
  reduction and is used as is.
* **count** (``confusion_counts``). On CPU one integer ``bincount`` of
  ``label * C + pred`` with a dump bin for the pixels that do not count (about
  10x faster than one-hot products). On accelerators scatter-adds serialise on
  the few hot bins, so counts come from a one-hot matmul (0/1 in bfloat16,
  accumulated in float32, exact because each block holds fewer than ``2**24``
  pixels), blocked over pixels so that no ``[pixels, C]`` temporary is larger
  than one block.

Argmax semantics, on every path: the index of the first maximal value (ties
go to the lowest class, as :func:`jax.numpy.argmax` and :func:`numpy.argmax`);
a NaN counts as larger than any number, so a pixel with NaN logits is
predicted as its first NaN class (again as ``jnp.argmax``). ``-inf``
everywhere gives class 0.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxseg import _checked
from jaxseg import _validation as v

#: Argmax implementations: ``None`` picks per platform.
ARGMAX_METHODS = (None, "reduce", "tree", "chain", "blocked")
#: Counting implementations: ``None`` picks per platform.
COUNT_METHODS = (None, "scatter", "matmul")
#: CPU argmax by class count (``python -m benchmarks.argmax_sweep`` and the W1 / W2
#: path rows on a 2-core CPU): tournament up to ``TREE_MAX_CLASSES`` (tree and
#: chain within noise at C=4, 8, 12), running-max chain up to
#: ``CHAIN_MAX_CLASSES`` (1.4-1.6x faster than the tree on W1, C=19; 1.8x at
#: C=32; mixed at C=64), the tournament again up to ``UNROLLED_MAX_CLASSES``
#: (1.1-1.2x faster than the chain at C=150 in five runs), the blocked
#: tournament above (1.5-2x faster than the tree at C=300, 2-4x at C=1000,
#: where it is 3-5x faster than ``jnp.argmax``).
TREE_MAX_CLASSES = 12
CHAIN_MAX_CLASSES = 64
UNROLLED_MAX_CLASSES = 150
#: Classes per block of the blocked tournament (16 beat 8, 32 and 64 at C=150-1000).
BLOCK_WIDTH = 16
#: Pixels per one-hot matmul block: below ``2**24`` so float32 sums stay exact.
MATMUL_BLOCK = 1 << 16


def label_validity(
    labels: jax.Array,
    num_classes: int,
    ignore_index: tuple[int, ...],
    where: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Split pixels into ``counted`` and ``invalid``.

    A pixel is *considered* when ``where`` is true and its label is not ignored.
    Among those, labels outside ``[0, num_classes)`` are *invalid*: they are
    counted separately and never used as an index.

    Returns:
      ``(in_range, invalid)`` boolean arrays of ``labels.shape``.
    """
    considered = jnp.ones(labels.shape, jnp.bool_) if where is None else where
    info = jnp.iinfo(labels.dtype)
    for i in ignore_index:
        if info.min <= i <= info.max:  # an id the dtype cannot hold matches no label
            considered = considered & (labels != i)
    in_range = in_class_range(labels, num_classes)
    invalid = considered & ~in_range
    _checked.check_labels(labels, invalid, num_classes)  # traced only under `jaxseg.checked`
    return considered & in_range, invalid


def in_class_range(ids: jax.Array, num_classes: int) -> jax.Array:
    """``0 <= ids < num_classes`` without wrapping ``num_classes`` into a narrow dtype."""
    if num_classes > jnp.iinfo(ids.dtype).max:
        return ids >= 0
    return (ids >= 0) & (ids < num_classes)


# -- sharding helpers -------------------------------------------------------------


def replicated_sharding(x: jax.Array) -> jax.sharding.NamedSharding | None:
    """A replicated output sharding when ``x`` is sharded over explicit mesh axes.

    Under ``jax.sharding.AxisType.Explicit`` a scatter (``bincount``) whose input
    is sharded cannot infer its output sharding; the counts are wanted
    replicated (XLA sums the per-shard counts). Elsewhere returns ``None``.
    """
    mesh = getattr(jax.typeof(x).sharding, "mesh", None)
    if mesh is None or jax.sharding.AxisType.Explicit not in tuple(mesh.axis_types):
        return None
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


# -- argmax ---------------------------------------------------------------------


def _take_right(a: jax.Array, b: jax.Array) -> jax.Array:
    """Whether ``b`` (a later class) beats ``a``: strictly larger, or NaN over a number."""
    return ~(b <= a) & (a == a)


def _argmax_chain(logits: jax.Array) -> jax.Array:
    """Running max over the class slices, one class at a time."""
    best = logits[..., 0]
    index = jnp.zeros_like(best, jnp.int32)
    for c in range(1, logits.shape[-1]):
        x = logits[..., c]
        take = _take_right(best, x)
        best = jnp.where(take, x, best)
        index = jnp.where(take, jnp.int32(c), index)
    return index


def _argmax_tree(logits: jax.Array) -> jax.Array:
    """Balanced tournament over the class slices; the left side holds lower classes."""
    values = [logits[..., c] for c in range(logits.shape[-1])]
    indices = [jnp.full_like(values[c], c, jnp.int32) for c in range(logits.shape[-1])]
    return _tournament(values, indices, lambda a, ia, b, ib: _take_right(a, b))


def _tournament(values: list[jax.Array], indices: list[jax.Array], take: Any) -> jax.Array:
    """Balanced pairwise knockout; ``take(a, ia, b, ib)`` says whether the right one wins."""
    while len(values) > 1:
        next_values, next_indices = [], []
        for k in range(0, len(values) - 1, 2):
            wins = take(values[k], indices[k], values[k + 1], indices[k + 1])
            next_values.append(jnp.where(wins, values[k + 1], values[k]))
            next_indices.append(jnp.where(wins, indices[k + 1], indices[k]))
        if len(values) % 2:
            next_values.append(values[-1])
            next_indices.append(indices[-1])
        values, indices = next_values, next_indices
    return indices[0]


def _take_lower(a: jax.Array, ia: jax.Array, b: jax.Array, ib: jax.Array) -> jax.Array:
    """Whether ``(b, ib)`` beats ``(a, ia)`` for classes in any order.

    NaN beats a number, a larger number beats a smaller one, and equal values
    (or two NaNs) go to the lower class index.
    """
    a_nan, b_nan = a != a, b != b
    lower = ib < ia
    return jnp.where(
        a_nan | b_nan,
        b_nan & (~a_nan | lower),
        (b > a) | ((b == a) & lower),
    )


def _argmax_blocked(logits: jax.Array, width: int | None = None) -> jax.Array:
    """Tournament over contiguous blocks of ``width`` classes, then across the lanes.

    With ``K = width`` and ``B = C // K`` blocks, stage one runs the running-max
    chain over the ``B`` slices ``x[..., jK:(j+1)K]`` (whole ``[..., K]`` blocks,
    lane ``k`` holds class ``jK + k``; a later block wins only when strictly
    larger, or NaN over a number), so lane ``k`` ends with the first maximum of
    the classes ``k, K + k, ...``. Stage two is a balanced tournament over the
    ``K`` lanes and the ``C - BK`` leftover classes, ties going to the lower
    class index. About ``C / K + K`` comparisons in the graph instead of ``C``.
    """
    c = logits.shape[-1]
    k = width or BLOCK_WIDTH
    blocks = c // k
    if blocks < 2:
        return _argmax_tree(logits)
    best = logits[..., :k]
    lane = lax.broadcasted_iota(jnp.int32, best.shape, best.ndim - 1)
    index = lane
    for j in range(1, blocks):
        x = logits[..., j * k : (j + 1) * k]
        take = _take_right(best, x)
        best = jnp.where(take, x, best)
        index = jnp.where(take, lane + jnp.int32(j * k), index)
    values = [best[..., i] for i in range(k)] + [logits[..., i] for i in range(blocks * k, c)]
    indices = [index[..., i] for i in range(k)]
    indices += [jnp.full(values[0].shape, i, jnp.int32) for i in range(blocks * k, c)]
    return _tournament(values, indices, _take_lower)


def _argmax_reduce(logits: jax.Array) -> jax.Array:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def cpu_argmax_method(num_classes: int) -> str:
    """The argmax method used on CPU for ``num_classes`` classes (a pure function of C)."""
    if num_classes <= TREE_MAX_CLASSES:
        return "tree"
    if num_classes <= CHAIN_MAX_CLASSES:
        return "chain"
    if num_classes <= UNROLLED_MAX_CLASSES:
        return "tree"
    return "blocked"


def _argmax_cpu(logits: jax.Array) -> jax.Array:
    return _ARGMAX[cpu_argmax_method(logits.shape[-1])](logits)


_ARGMAX = {
    "reduce": _argmax_reduce,
    "tree": _argmax_tree,
    "chain": _argmax_chain,
    "blocked": _argmax_blocked,
}


def argmax_classes(logits: jax.Array, *, method: str | None = None) -> jax.Array:
    """Index of the largest logit along the last axis, as int32.

    First maximal index on ties, NaN counts as the largest value (the semantics
    of ``jnp.argmax``). ``method`` forces an implementation (for tests and
    benchmarks); ``None`` picks the fastest measured one for the platform.
    """
    v.check_choice("method", method, ARGMAX_METHODS)
    if method is not None:
        return _ARGMAX[method](logits)
    return lax.platform_dependent(logits, cpu=_argmax_cpu, default=_argmax_reduce)


# -- confusion counts -----------------------------------------------------------


def _counts_scatter(
    rows: jax.Array, cols: jax.Array, ok: jax.Array, invalid: jax.Array, c: int
) -> tuple[jax.Array, jax.Array]:
    """One ``bincount`` of ``row * (C + 1) + col``, with a bin for invalid pixels and a dump bin.

    ``cols == C`` is the void column. Counting the invalid pixels in the same
    pass saves a separate reduction (and its ``[pixels]`` temporary) over the labels.
    """
    k = c * (c + 1)
    index = jnp.where(ok, rows * (c + 1) + cols, jnp.where(invalid, k, k + 1)).reshape(-1)
    counts = jnp.bincount(index, length=k + 2, out_sharding=replicated_sharding(index))
    return counts[:k].reshape(c, c + 1).astype(jnp.int32), counts[k].astype(jnp.int32)


def _counts_matmul(
    rows: jax.Array, cols: jax.Array, ok: jax.Array, invalid: jax.Array, c: int
) -> tuple[jax.Array, jax.Array]:
    """``onehot(rows)^T @ onehot(cols)`` over blocks of pixels, exact int32 sums.

    ``cols`` has ``C + 1`` one-hot columns, the last one for void predictions.
    """
    rows = jnp.where(ok, rows, -1).reshape(-1)  # -1 has an all-zero one-hot row
    cols = cols.reshape(-1)
    n = rows.shape[0]
    block = max(1, min(n, MATMUL_BLOCK))
    blocks = -(-n // block)
    pad = blocks * block - n
    rows = jnp.pad(rows, (0, pad), constant_values=-1).reshape(blocks, block)
    cols = jnp.pad(cols, (0, pad), constant_values=-1).reshape(blocks, block)
    row_classes = jnp.arange(c, dtype=jnp.int32)[None, :]
    col_classes = jnp.arange(c + 1, dtype=jnp.int32)[None, :]

    def one_block(rc: tuple[jax.Array, jax.Array]) -> jax.Array:
        r, k = rc
        hot_r = (r[:, None] == row_classes).astype(jnp.bfloat16)
        hot_k = (k[:, None] == col_classes).astype(jnp.bfloat16)
        part = jnp.einsum(
            "pr,pk->rk",
            hot_r,
            hot_k,
            preferred_element_type=jnp.float32,
            out_sharding=replicated_sharding(r),
        )
        return part.astype(jnp.int32)

    # lax.map, not a scan carry: the per-block parts need no device-variance
    # bookkeeping inside shard_map, and [blocks, C, C + 1] is small.
    counts = lax.map(one_block, (rows, cols)).sum(0, dtype=jnp.int32)
    return counts, jnp.sum(invalid, dtype=jnp.int32)


_COUNT = {"scatter": _counts_scatter, "matmul": _counts_matmul}


def confusion_counts(
    preds: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    ignore_index: tuple[int, ...],
    where: jax.Array | None,
    method: str | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Exact confusion counts: ``([C, C] counts, [C] void, invalid)``, all int32.

    Rows are labels. A valid pixel whose label lies outside ``[0, C)`` is
    counted as invalid. A valid, in-range pixel whose *prediction* lies outside
    ``[0, C)`` (a void prediction) is counted in ``void[label]``: a miss of the
    label's class, as the Cityscapes evaluation counts it. ``method`` forces
    ``"scatter"`` (one ``bincount`` with a dump bin) or ``"matmul"`` (blocked
    one-hot matmul); ``None`` picks per platform.
    """
    v.check_choice("method", method, COUNT_METHODS)
    c = num_classes
    ok, invalid = label_validity(labels, c, ignore_index, where)
    rows = labels.astype(jnp.int32)
    cols = jnp.where(in_class_range(preds, c), preds.astype(jnp.int32), jnp.int32(c))
    if method is not None:
        counts, n_invalid = _COUNT[method](rows, cols, ok, invalid, c)
    else:
        counts, n_invalid = lax.platform_dependent(
            rows,
            cols,
            ok,
            invalid,
            cpu=functools.partial(_counts_scatter, c=c),
            default=functools.partial(_counts_matmul, c=c),
        )
    return counts[:, :c], counts[:, c], n_invalid


def binary_counts(
    preds: jax.Array,
    labels: jax.Array,
    *,
    ignore_index: tuple[int, ...],
    where: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Per-class ``[4, C]`` int32 counts ``(tp, fp, fn, tn)`` and the invalid count.

    ``preds`` is boolean ``[..., C]``; ``labels`` are 0/1 integers of the same shape.
    """
    ok, invalid = label_validity(labels, 2, ignore_index, where)
    pos = labels == 1
    axes = tuple(range(preds.ndim - 1))

    def count(mask):
        return jnp.sum(mask, axis=axes, dtype=jnp.int32)

    tp = count(ok & preds & pos)
    fp = count(ok & preds & ~pos)
    fn = count(ok & ~preds & pos)
    tn = count(ok & ~preds & ~pos)
    return jnp.stack([tp, fp, fn, tn]), jnp.sum(invalid, dtype=jnp.int32)


# -- per-class counts (O(C) state) ----------------------------------------------


def class_counts(
    preds: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    ignore_index: tuple[int, ...],
    where: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Per-class ``int32 [4, C]`` ``(labels, predictions, hits, void)`` and the invalid count.

    The sums of the confusion matrix that the scores need, without the matrix:
    row sums plus voids (label support), column sums (predictions at valid
    pixels), the diagonal (hits) and the void predictions per label class; the
    pixel rules are those of :func:`confusion_counts`. Every valid pixel adds
    one to its label's bin and one to exactly one of: its label's hit bin, its
    label's void bin, or the bin of the (other) class it predicts; so one
    ``bincount`` of ``2 * pixels`` indices into ``4C + 2`` bins (one for invalid
    pixels, one dump bin) counts everything, in ``O(pixels + C)`` time and memory.
    """
    c = num_classes
    ok, invalid = label_validity(labels, c, ignore_index, where)
    rows = labels.astype(jnp.int32)
    pred_ok = in_class_range(preds, c)
    cols = preds.astype(jnp.int32)
    hit = pred_ok & (cols == rows)
    dump = jnp.int32(4 * c + 1)
    first = jnp.where(ok, rows, jnp.where(invalid, jnp.int32(4 * c), dump))
    second = jnp.where(
        hit,
        2 * c + rows,
        jnp.where(pred_ok, c + cols, 3 * c + rows),
    )
    second = jnp.where(ok, second, dump)
    index = jnp.concatenate([first.reshape(-1), second.reshape(-1)])
    counts = jnp.bincount(index, length=4 * c + 2, out_sharding=replicated_sharding(index))
    counts = counts.astype(jnp.int32)
    table = counts[: 4 * c].reshape(4, c)
    # the prediction row holds misses only so far: predictions = misses + hits
    table = table.at[1].add(table[2])
    return table, counts[4 * c]
