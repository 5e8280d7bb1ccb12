"""Exact Euclidean distance transform and surface-distance metrics (HD, ASD, NSD).

Everything here has static shapes and runs under ``jit`` and ``vmap`` on the
accelerator: no host callback and no SciPy.

* :func:`distance_transform` is separable and exact: one linear pass along one
  axis (nearest ``True`` to the left and right by cumulative max / min of
  indices), then along each further axis the exact lower envelope
  ``g(i) = min_j f(j) + (s (i - j))^2``. Short axes (and non-CPU backends) take
  the brute-force min-plus over the whole line, which XLA fuses into one
  reduction (memory ``O(N)``, work ``O(N n)``). Axes of 64 or more on CPU take
  a windowed min-plus, ``|i - j| <= R / s``, with ``R`` an upper bound on every
  distance read off a 4x-coarser grid: work ``O(N R)``, exact because no
  minimiser of a distance ``<= R`` lies further away. The measurements behind
  the choice are in ``docs/benchmarks.md`` (D1).
* Surface metrics reduce *weighted* distance maps: a weight per grid point (1 on
  an edge voxel for ``definition="monai"``, the surfel area for ``"deepmind"``)
  and the distance from that point to the other surface. Percentiles are exact
  k-th value selections with a traced rank: a bisection over the bit patterns of
  the non-negative float32 distances (31 counting passes).
"""

from __future__ import annotations

import fractions
import functools
import itertools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseg import _validation as v

ArrayLike = jax.typing.ArrayLike

DEFINITIONS = ("monai", "deepmind", "medpy")
_INF_BITS = 0x7F800000  # bit pattern of float32 +inf


# -- distance transform ----------------------------------------------------------


#: Accepted spacings: squared distances stay normal float32 numbers on any grid.
SPACING_RANGE = (1e-12, 1e12)


def _real_scalar(x: Any) -> float | None:
    """``x`` as a float if it is a real number (not a bool), else None."""
    if isinstance(x, bool | np.bool_):
        return None
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        if isinstance(x, jax.core.Tracer) or np.ndim(x) != 0:
            return None
        x = np.asarray(x)
        return float(x) if x.dtype.kind in "iuf" else None
    return float(x) if isinstance(x, int | float) else None


def _check_spacing(spacing: Any, ndim: int) -> tuple[float, ...]:
    """One positive number (isotropic) or one per axis -> a tuple of ``ndim`` floats.

    Python, NumPy and concrete JAX numbers and arrays are accepted; bools,
    strings, traced arrays and values outside :data:`SPACING_RANGE` are not.
    """
    if spacing is None:
        return (1.0,) * ndim
    expected = f"`spacing` must be a positive number or {ndim} positive numbers, one per axis"
    if isinstance(spacing, jax.core.Tracer):
        raise TypeError(f"{expected}, known at trace time; got a traced array.")
    if isinstance(spacing, jax.Array | np.ndarray) and spacing.ndim <= 1:
        items = list(np.asarray(spacing).reshape(-1))
        if spacing.ndim == 0:
            items = items * ndim
    elif isinstance(spacing, list | tuple):
        items = list(spacing)
    else:
        items = [spacing] * ndim
    values = [_real_scalar(x) for x in items]
    if any(x is None for x in values):
        raise TypeError(f"{expected}; got {v._show(spacing)}.")
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise ValueError(
            f"`spacing` must have one entry per spatial axis ({ndim}); got {len(values)}: "
            f"{spacing!r}."
        )
    lo, hi = SPACING_RANGE
    if not all(lo <= x <= hi for x in values):
        raise ValueError(
            f"`spacing` entries must be finite and lie in [{lo:g}, {hi:g}] (float32 "
            f"distances neither underflow nor overflow there); got {spacing!r}."
        )
    return tuple(values)


def _check_percentile(percentile: Any) -> float | None:
    """``None`` or a number in ``[0, 100]`` (Python, NumPy or concrete 0-d JAX) -> float."""
    if percentile is None:
        return None
    value = _real_scalar(percentile)
    if value is None:
        raise TypeError(
            "`percentile` must be None or a number in [0, 100], known at trace time; "
            f"got {v._show(percentile)}."
        )
    if not 0 <= value <= 100:
        raise ValueError(f"`percentile` must lie in [0, 100]; got {percentile!r}.")
    return value


class Grid(NamedTuple):
    """A grid's spacing as data: what the distance transform reads of it.

    ``steps[a]`` is the spacing of axis ``a`` (a float32 scalar) and
    ``tables[a][d] = (d * steps[a])**2``, computed in float64 and rounded once to
    float32, for ``d = 0 .. n_a + 2 * _WINDOW_CHUNK``. A static spacing gives NumPy
    constants (:func:`grid`); passed as traced arrays, one compiled program serves
    every spacing with bit-for-bit the same distances.
    """

    steps: tuple[Any, ...]
    tables: tuple[Any, ...]


@functools.lru_cache(maxsize=256)
def grid(spacing: tuple[float, ...], shape: tuple[int, ...]) -> Grid:
    """The :class:`Grid` of ``spacing`` for arrays of ``shape`` (host arrays)."""
    tables = []
    for step, n in zip(spacing, shape, strict=True):
        d = np.arange(n + 2 * _WINDOW_CHUNK + 1, dtype=np.float64)
        tables.append(((d * step) ** 2).astype(np.float32))
    return Grid(tuple(np.float32(x) for x in spacing), tuple(tables))


def _as_grid(spacing: tuple[float, ...] | Grid, shape: tuple[int, ...]) -> Grid:
    return spacing if isinstance(spacing, Grid) else grid(tuple(spacing), tuple(shape))


def _pair_table(table: Any, n: int) -> Any:
    """``[n, n]``: ``table[|i - j|]``, the squared distance between positions i and j."""
    i = np.arange(n)
    return table[np.abs(i[:, None] - i[None, :])]


def _nearest_along_first_axis(mask: jax.Array, step: Any) -> jax.Array:
    """Squared distance to the nearest ``True`` on the same line along axis 0 (inf if none)."""
    m = jnp.moveaxis(mask, 0, -1)
    n = m.shape[-1]
    idx = jnp.arange(n, dtype=jnp.int32).reshape((1,) * (m.ndim - 1) + (n,))
    far = jnp.int32(1 << 29)
    left = lax.cummax(jnp.where(m, idx, -far), axis=m.ndim - 1)
    right = lax.cummin(jnp.where(m, idx, far), axis=m.ndim - 1, reverse=True)
    gap = jnp.minimum(idx - left, right - idx)
    d = gap.astype(jnp.float32) * jnp.float32(step)
    sq = jnp.where(gap < (1 << 28), d * d, jnp.float32(jnp.inf))
    return jnp.moveaxis(sq, -1, 0)


def _min_plus_table(sq: jax.Array, axis: int, table: jax.Array) -> jax.Array:
    """``g[..., i, ...] = min_j sq[..., j, ...] + table[i, j]`` along ``axis``."""
    f = jnp.moveaxis(sq, axis, -1)
    table = table.reshape((1,) * (f.ndim - 1) + table.shape)
    g = jnp.min(f[..., None, :] + table, axis=-1)
    return jnp.moveaxis(g, -1, axis)


def _squared_edt_min_plus(mask: jax.Array, spacing: tuple[float, ...] | Grid) -> jax.Array:
    """Brute force: the linear first pass, then the ``O(N n)`` min-plus per further axis."""
    grid_ = _as_grid(spacing, mask.shape)
    sq = _nearest_along_first_axis(mask, grid_.steps[0])
    for axis in range(1, mask.ndim):
        table = jnp.asarray(_pair_table(grid_.tables[axis], mask.shape[axis]), jnp.float32)
        sq = _min_plus_table(sq, axis, table)
    return sq


#: Side of the blocks of the coarse grid that bounds the largest distance.
_BOUND_BLOCK = 4
#: Offsets per iteration of the windowed min-plus loop (fused into one kernel).
_WINDOW_CHUNK = 4
#: Shortest longest axis for which the windowed passes are used (CPU).
_WINDOWED_MIN_LENGTH = 64


def _distance_bound(mask: jax.Array, spacing: Grid) -> jax.Array:
    """An upper bound ``R`` on every finite distance of the EDT (``inf`` if no ``True``).

    The mask is reduced to blocks of ``b`` elements per axis (a block is set if it
    holds a ``True`` element) and the coarse EDT between block centres is taken by
    brute force (``b^d`` times fewer elements). Any element lies within ``h`` (half
    the block diagonal) of its block's centre, and so does a seed of the nearest
    set block: ``D(p) <= D_coarse(block(p)) + 2 h``.
    """
    b = _BOUND_BLOCK
    padded = jnp.pad(mask, [(0, (-n) % b) for n in mask.shape])
    blocks = padded.reshape([k for n in padded.shape for k in (n // b, b)])
    coarse = jnp.any(blocks, axis=tuple(range(1, 2 * mask.ndim, 2)))
    # the coarse grid's steps are b * s: every b-th entry of the tables
    steps = tuple(jnp.float32(b) * jnp.float32(x) for x in spacing.steps)
    sq = _squared_edt_min_plus(coarse, Grid(steps, tuple(t[::b] for t in spacing.tables)))
    h = jnp.sqrt(sum((jnp.float32((b - 1) / 2) * jnp.float32(x)) ** 2 for x in spacing.steps))
    return jnp.sqrt(jnp.max(sq)) + 2 * h


def _nearest_along(mask: jax.Array, axis: int, step: Any) -> jax.Array:
    """:func:`_nearest_along_first_axis` along ``axis``, by ``O(N log n)`` parallel scans.

    (``lax.cummax`` lowers to a full-length window reduction on CPU: ``O(N n)``.)
    """
    n = mask.shape[axis]
    idx = jnp.arange(n, dtype=jnp.int32).reshape([n if a == axis else 1 for a in range(mask.ndim)])
    far = jnp.int32(1 << 29)
    left = lax.associative_scan(jnp.maximum, jnp.where(mask, idx, -far), axis=axis)
    right = lax.associative_scan(jnp.minimum, jnp.where(mask, idx, far), axis=axis, reverse=True)
    gap = jnp.minimum(idx - left, right - idx)
    d = gap.astype(jnp.float32) * jnp.float32(step)
    return jnp.where(gap < (1 << 28), d * d, jnp.float32(jnp.inf))


def _windowed_min_plus(
    f: jax.Array, axis: int, spacing: Grid, bound: jax.Array, *, skip: Any = False
) -> jax.Array:
    """``g[i] = min_{|d| <= W} f[i + d] + (step d)^2`` along ``axis``, ``W >= bound / step``.

    A ``while_loop`` over chunks of :data:`_WINDOW_CHUNK` offsets; each chunk is
    one fused pass of shifted minima. The loop stops once the offsets cover the
    window, so the cost is ``O(N W)`` with ``W`` read from the data. ``skip``
    (traced) returns ``f`` without a pass.
    """
    n = f.shape[axis]
    k = _WINDOW_CHUNK
    step = spacing.steps[axis]
    w = jnp.where(
        jnp.isfinite(bound), jnp.minimum(jnp.floor(bound * (1 + 1e-4) / step) + 2, n - 1), 0
    )
    chunks = jnp.where(skip, 0, jnp.ceil(w / k).astype(jnp.int32))
    pad = [(0, 0)] * f.ndim
    pad[axis] = (n + k, n + k)
    fp = jnp.pad(f, pad, constant_values=jnp.inf)
    table = jnp.asarray(spacing.tables[axis][: n + 2 * k + 1], jnp.float32)  # (step d)^2

    def body(carry):
        c, g = carry
        first = c * k + 1
        tab = lax.dynamic_slice(table, (first,), (k,))
        for t in range(k):
            left = lax.dynamic_slice_in_dim(fp, n + k - (first + t), n, axis)
            right = lax.dynamic_slice_in_dim(fp, n + k + (first + t), n, axis)
            g = jnp.minimum(g, jnp.minimum(left, right) + tab[t])
        return c + 1, g

    return lax.while_loop(lambda carry: carry[0] < chunks, body, (jnp.int32(0), f))[1]


#: Positions along an axis that :func:`_sparse_min_plus` takes by brute force.
_SPARSE_POSITIONS = 8


def _holding_positions(f: jax.Array, axis: int) -> jax.Array:
    """``[n]``: whether the slice at each position along ``axis`` holds a finite value."""
    return jnp.any(jnp.isfinite(f), axis=tuple(a for a in range(f.ndim) if a != axis))


def _sparse_min_plus(f: jax.Array, axis: int, spacing: Grid) -> jax.Array:
    """``g[i] = min_r f[r] + (step (i - r))^2`` over the first :data:`_SPARSE_POSITIONS`
    positions ``r`` along ``axis`` whose slice holds a finite value.

    Exact when no more positions hold one (the other positions add only ``inf``);
    otherwise never below the true value. Sparse seeds far apart (one seed per
    image) are the windowed pass's worst case, ``O(N n)``; here they cost ``O(N k)``.
    """
    n, k = f.shape[axis], _SPARSE_POSITIONS
    holds = _holding_positions(f, axis)
    (pos,) = jnp.nonzero(holds, size=k, fill_value=0)
    used = jnp.arange(k) < jnp.sum(holds)
    rows = jnp.moveaxis(jnp.take(f, pos, axis=axis), axis, -1)  # [..., k]
    lead = (1,) * (rows.ndim - 1)
    rows = jnp.where(used.reshape((*lead, k)), rows, jnp.float32(jnp.inf))
    table = jnp.asarray(spacing.tables[axis][:n], jnp.float32)  # (step d)^2, as windowed
    sq = table[jnp.abs(jnp.arange(n)[:, None] - pos[None, :])]  # [n, k]
    g = jnp.min(rows[..., None, :] + sq.reshape((*lead, n, k)), axis=-1)  # [..., n]
    return jnp.moveaxis(g, -1, axis)


def _squared_edt_windowed(mask: jax.Array, spacing: tuple[float, ...] | Grid) -> jax.Array:
    """Every axis by :func:`_windowed_min_plus`, the window set by :func:`_distance_bound`.

    The last (contiguous) axis goes first, by the linear :func:`_nearest_along`;
    the windowed passes then shift whole rows. Exact: a value ``<= R^2`` after a
    pass has its minimiser within ``R`` and is exact; a larger one is never below
    the true value, and never the minimum of a later pass, since every final
    distance is ``<= R``. A pass where at most :data:`_SPARSE_POSITIONS` positions
    hold a finite value takes :func:`_sparse_min_plus` (exact) instead of the loop.
    """
    grid_ = _as_grid(spacing, mask.shape)
    bound = _distance_bound(mask, grid_)
    last = mask.ndim - 1
    sq = _nearest_along(mask, last, grid_.steps[last])
    for axis in range(last):
        sparse = jnp.sum(_holding_positions(sq, axis)) <= _SPARSE_POSITIONS
        # Under vmap the cond runs both branches (the brute force costs O(N k) per
        # pass); the windowed loop still stops once every image is done.
        brute = lax.cond(
            sparse,
            lambda f, a=axis: _sparse_min_plus(f, a, grid_),
            lambda f: jnp.full_like(f, jnp.inf),
            sq,
        )
        sq = jnp.minimum(brute, _windowed_min_plus(sq, axis, grid_, bound, skip=sparse))
    return sq


def _squared_edt(mask: jax.Array, spacing: tuple[float, ...] | Grid) -> jax.Array:
    """Squared EDT; the algorithm is picked per shape and backend when tracing.

    ``spacing`` is a static tuple or a :class:`Grid` (traced spacing, tables
    at least as long as the mask's axes need).

    Axes shorter than :data:`_WINDOWED_MIN_LENGTH`, and backends other than CPU,
    keep the brute-force min-plus (one fused reduction per axis, cheapest to
    compile; the windowed loop has not been measured on accelerators). Longer
    axes on CPU take the windowed passes, fastest measured on dense and on sparse
    seeds (``docs/benchmarks.md``, D1).
    """
    if max(mask.shape) < _WINDOWED_MIN_LENGTH:
        return _squared_edt_min_plus(mask, spacing)
    return lax.platform_dependent(
        mask,
        cpu=functools.partial(_squared_edt_windowed, spacing=spacing),
        default=functools.partial(_squared_edt_min_plus, spacing=spacing),
    )


def distance_transform(mask: ArrayLike, *, spacing: Any = None) -> jax.Array:
    """Exact Euclidean distance from every element to the nearest ``True`` element.

    ``D(p) = min_{q : mask[q]} sqrt(sum_k (s_k (p_k - q_k))^2)``, with ``s`` the
    ``spacing``; ``D = 0`` on ``True`` elements and ``+inf`` everywhere when
    ``mask`` has no ``True`` element. Equal to
    ``scipy.ndimage.distance_transform_edt(~mask, sampling=spacing)`` up to
    float32 rounding. ``vmap`` it for a batch.

    Args:
      mask: boolean array of rank 1, 2 or 3.
      spacing: grid step per axis (a number or one per axis, each in
        ``[1e-12, 1e12]``); default 1.

    Returns:
      float32 distances of ``mask.shape``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> jaxseg.distance_transform(jnp.array([False, True, False, False]))
      Array([1., 0., 1., 2.], dtype=float32)
      >>> m = jnp.zeros((3, 3), bool).at[0, 0].set(True)
      >>> jaxseg.distance_transform(m, spacing=(2.0, 1.0))[2, 2]
      Array(4.472136, dtype=float32)

    References:
      Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions",
      Theory of Computing 8 (2012) — the separable exact decomposition.
    """
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(f"`mask` must be a boolean array; got dtype {mask.dtype}.")
    if not 1 <= mask.ndim <= 3:
        raise ValueError(f"`mask` must have rank 1, 2 or 3; got shape {tuple(mask.shape)}.")
    return _edt(mask, spacing=_check_spacing(spacing, mask.ndim))


@functools.partial(jax.jit, static_argnames="spacing")
def _edt(mask: jax.Array, *, spacing: tuple[float, ...]) -> jax.Array:
    return jnp.sqrt(_squared_edt(mask, spacing))


# -- surfaces --------------------------------------------------------------------


def _shift(x: jax.Array, axis: int, offset: int, fill: Any) -> jax.Array:
    """``y[i] = x[i + offset]`` along ``axis``, ``fill`` outside."""
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (max(0, -offset), max(0, offset))
    xp = jnp.pad(x, pad, constant_values=fill)
    start = max(0, offset)
    return lax.slice_in_dim(xp, start, start + n, axis=axis)


def edge_voxels(mask: jax.Array) -> jax.Array:
    """MONAI's edges: ``mask XOR erosion(mask)``, face-connected structuring element.

    Outside the grid counts as background, so a voxel on the border is an edge.
    """
    interior = mask
    for axis in range(mask.ndim):
        for offset in (-1, 1):
            interior = interior & _shift(mask, axis, offset, False)
    return mask & ~interior


def _contour_length_table(spacing: tuple[float, float]) -> np.ndarray:
    """Contour length of the marching-squares segments of each 2x2 neighbourhood code.

    Bits: 8 = (0, 0), 4 = (0, 1), 2 = (1, 0), 1 = (1, 1) of the 2x2 window.
    Segments join midpoints of cell edges: one corner in (or out) cuts a corner,
    ``|(s0/2, s1/2)|``; two corners on one side give a straight segment of the
    other axis' step; two diagonal corners give two corner cuts.
    """
    s0, s1 = spacing
    corner = 0.5 * math.hypot(s0, s1)
    table = np.zeros(16)
    for code in range(16):
        bits = [(code >> k) & 1 for k in (3, 2, 1, 0)]  # (0,0), (0,1), (1,0), (1,1)
        inside = sum(bits)
        if inside in (1, 3):
            table[code] = corner
        elif inside == 2:
            if bits[0] == bits[1]:  # rows differ: the segment runs along axis 1
                table[code] = s1
            elif bits[0] == bits[2]:  # columns differ: the segment runs along axis 0
                table[code] = s0
            else:  # diagonal pair
                table[code] = 2 * corner
    return table


def _neighbour_codes(mask: jax.Array) -> jax.Array:
    """int32 code of every ``2^r`` neighbourhood on the dual grid (``mask.shape + 1``)."""
    r = mask.ndim
    padded = jnp.pad(mask, [(1, 1)] * r).astype(jnp.int32)
    code = jnp.zeros(tuple(n + 1 for n in mask.shape), jnp.int32)
    for bit, corner in enumerate(itertools.product((1, 0), repeat=r)):
        window = tuple(slice(c, c + n + 1) for c, n in zip(corner, mask.shape, strict=True))
        code = code + (padded[window] << bit)
    return code


def _surfels(mask: jax.Array, spacing: tuple[float, ...]) -> tuple[jax.Array, jax.Array]:
    """Surface elements on the dual grid (one point per 2^r neighbourhood).

    Returns ``(border, area)`` of shape ``mask.shape + 1`` per axis: the point
    ``q`` covers voxels ``q - 1`` and ``q`` on every axis (outside is background).
    """
    r = mask.ndim
    code = _neighbour_codes(mask)
    full = (1 << (1 << r)) - 1
    border = (code != 0) & (code != full)
    table = _contour_length_table(spacing) if r == 2 else _surface_area_table(spacing)
    area = jnp.asarray(table, jnp.float32)[code]
    return border, jnp.where(border, area, jnp.float32(0))


def _surface_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    from jaxseg._surfel_table import surface_area_table

    return surface_area_table(spacing)


@functools.cache
def _area_basis(spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Surfel areas as integer combinations of a few basis areas: ``(counts, areas)``.

    ``counts`` is int ``[2^(2^r), K]`` and ``areas`` float64 ``[K]``, with
    ``counts @ areas`` the area table of :func:`_surfels`. In 2-D the basis is a
    segment along axis 0 or 1 and a corner cut (a diagonal pair is two cuts); in
    3-D a marching-cubes triangle is ``k`` times one of seven unit triangles,
    one per set of axes its normal spans. Equal basis areas (isotropic spacing)
    are merged, so a cumulative area is exact integer counts times ``K`` areas.
    """
    if len(spacing) == 2:
        s0, s1 = spacing
        counts = np.zeros((16, 3), np.int64)  # segments along axis 0, along axis 1, corner cuts
        for code in range(16):
            bits = [(code >> k) & 1 for k in (3, 2, 1, 0)]
            inside = sum(bits)
            if inside in (1, 3):
                counts[code, 2] = 1
            elif inside == 2:
                if bits[0] == bits[1]:
                    counts[code, 1] = 1
                elif bits[0] == bits[2]:
                    counts[code, 0] = 1
                else:
                    counts[code, 2] = 2
        areas = np.array([s0, s1, 0.5 * math.hypot(s0, s1)])
    else:
        from jaxseg._surfel_table import _NORMALS_X8

        s0, s1, s2 = spacing
        scale = np.array([s1 * s2, s0 * s2, s0 * s1]) / 8.0
        patterns = [p for p in itertools.product((0, 1), repeat=3) if any(p)]
        counts = np.zeros((256, len(patterns)), np.int64)
        for code, normals in enumerate(_NORMALS_X8):
            for n in normals:
                if any(n):
                    counts[code, patterns.index(tuple(int(x != 0) for x in n))] += max(map(abs, n))
        areas = np.array([float(np.linalg.norm(np.array(p) * scale)) for p in patterns])
    unique, column = np.unique(areas, return_inverse=True)
    merged = np.zeros((counts.shape[0], len(unique)), np.int64)
    np.add.at(merged.T, column, counts.T)
    return merged, unique


# -- exact weighted selection ------------------------------------------------------


def _select(d: jax.Array, w: jax.Array, target: jax.Array) -> jax.Array:
    """Smallest value ``t`` of ``d`` with ``sum(w[d <= t]) >= target`` (``d >= 0``).

    A bisection over the float32 bit patterns, which order non-negative floats
    (``+inf`` included) like their values: 31 counting passes, exact.
    """
    bits = lax.bitcast_convert_type(d, jnp.int32)

    def body(_, bounds):
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        ok = jnp.sum(jnp.where(bits <= mid, w, jnp.float32(0))) >= target
        return jnp.where(ok, lo, mid + 1), jnp.where(ok, mid, hi)

    # bounds derived from the data, so they carry its sharding type under shard_map
    zero = jnp.zeros_like(target, dtype=jnp.int32)
    _, hi = lax.fori_loop(0, 31, body, (zero, zero + _INF_BITS))
    return lax.bitcast_convert_type(hi, jnp.float32)


#: A cumulative area fraction within this relative distance of ``q / 100`` reaches it.
_TIE = 2.0**-19


def _fraction(q: float, bound: int) -> tuple[int, int] | None:
    """``q / 100`` as ``num / den`` with ``den * bound < 2^31``, or None (not a short fraction)."""
    f = fractions.Fraction(q).limit_denominator(1000) / 100
    if abs(float(f) * 100 - q) > 1e-9 * max(1.0, q) or f.denominator * bound >= 2**31:
        return None
    return f.numerator, f.denominator


def _select_area(
    d: jax.Array, counts: jax.Array, areas: np.ndarray, q: float, *, bound: int
) -> jax.Array:
    """DeepMind's percentile: the smallest ``t`` of ``d`` whose cumulative surfel area reaches q.

    ``counts`` int ``[..., K]`` are the surfel areas in basis units (see
    :func:`_area_basis`), so the cumulative area below ``t`` is exact integer
    counts ``n`` against totals ``N``; ``t`` is reached where
    ``D = sum_k areas_k (n_k - q/100 N_k) >= 0``. ``D`` is formed from exact
    integers ``den n - num N`` for ``q / 100 = num / den``, so an exact tie is
    ``D = 0``; float32 rounding of the ``K`` products is absorbed by a relative
    tolerance ``_TIE`` of ``sum_k areas_k |den n_k - num N_k|``. At ``q = 0``
    the first surfel is the answer (the smallest distance), at ``q = 100`` the
    last (the maximum).
    """
    k = counts.shape[-1]
    counts = counts.reshape((-1, k))
    bits = lax.bitcast_convert_type(d, jnp.int32).reshape(-1)  # d >= 0: ordered like d
    total = jnp.sum(counts, axis=0)
    a = jnp.asarray(areas, jnp.float32)
    frac = _fraction(q, bound)  # bound >= every total, so den * n - num * N fits int32

    def reached(mid):
        n = jnp.sum(jnp.where((bits <= mid)[:, None], counts, 0), axis=0)
        if frac is None:
            p = jnp.float32(q / 100.0)
            c = n.astype(jnp.float32) - p * total.astype(jnp.float32)
            scale = jnp.sum(a * (n.astype(jnp.float32) + p * total.astype(jnp.float32)))
        else:
            num, den = frac
            c = (den * n - num * total).astype(jnp.float32)
            scale = jnp.sum(a * jnp.abs(c))
        return (jnp.sum(a * c) >= -_TIE * scale) & (jnp.sum(n) > 0)

    def body(_, bounds):
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        ok = reached(mid)
        return jnp.where(ok, lo, mid + 1), jnp.where(ok, mid, hi)

    zero = jnp.zeros_like(total[0])
    _, hi = lax.fori_loop(0, 31, body, (zero, zero + _INF_BITS))
    return lax.bitcast_convert_type(hi, jnp.float32)


def _percentile(d: jax.Array, w: jax.Array, q: float, definition: str) -> jax.Array:
    """Percentile ``q`` in [0, 100] of ``d`` over edge voxels ``w`` (MONAI's rule).

    ``torch.quantile``'s linear interpolation over the ``w > 0`` samples, except
    that ``q = 0`` gives the maximum, as MONAI's ``compute_hausdorff_distance``
    does (it reads a percentile of 0 as "none").
    """
    if definition != "monai":
        raise ValueError(f"`definition` {definition!r} has its own percentile rule.")
    if q == 0:
        return jnp.max(jnp.where(w > 0, d, jnp.float32(0)))
    n = jnp.sum(w)  # a count: weights are 0 / 1
    pos = jnp.float32(q / 100.0) * jnp.maximum(n - 1, 0)
    k = jnp.floor(pos)
    frac = pos - k
    below = _select(d, w, k + 1)
    above = _select(d, w, jnp.minimum(k + 2, n))
    return below + frac * (above - below)


# -- per class, per image ------------------------------------------------------------


def _directed(src_mask, dst_mask, spacing, definition):
    """Weights of ``src``'s surface points and their distance to ``dst``'s surface."""
    if definition in ("monai", "medpy"):
        src_w = edge_voxels(src_mask).astype(jnp.float32)
        dst_surface = edge_voxels(dst_mask)
    else:
        _, src_w = _surfels(src_mask, spacing)
        dst_surface, _ = _surfels(dst_mask, spacing)
    d = jnp.sqrt(_squared_edt(dst_surface, spacing))
    d = jnp.where(src_w > 0, d, jnp.float32(0))
    return d, src_w


def _surfel_counts(mask: jax.Array, spacing: tuple[float, ...]) -> jax.Array:
    """int32 ``[*dual grid, K]``: each surfel's area in the units of :func:`_area_basis`."""
    table, _ = _area_basis(spacing)
    return jnp.asarray(table, jnp.int32)[_neighbour_codes(mask)]  # codes 0 and full: 0


def _deepmind_percentile(src_mask, dst_mask, spacing, q):
    """Percentile ``q`` of the distances from ``src``'s surfels to ``dst``'s surface."""
    d, _ = _directed(src_mask, dst_mask, spacing, "deepmind")
    table, areas = _area_basis(spacing)
    counts = _surfel_counts(src_mask, spacing)
    return _select_area(d, counts, areas, q, bound=counts.size // len(areas) * int(table.max()))


def _empty_rule(n_pred, n_label, value, one_empty):
    both = (n_pred == 0) & (n_label == 0)
    one = (n_pred == 0) != (n_label == 0)
    return jnp.where(both, jnp.nan, jnp.where(one, jnp.float32(one_empty), value))


def _hd_one(pm, lm, *, spacing, definition, percentile, directed):
    n_p, n_l = jnp.sum(pm), jnp.sum(lm)

    def one_way(src, dst):
        if percentile is not None and definition == "deepmind":
            return _deepmind_percentile(src, dst, spacing, percentile)
        d, w = _directed(src, dst, spacing, definition)
        if percentile is None:
            return jnp.max(jnp.where(w > 0, d, jnp.float32(0)))
        return _percentile(d, w, percentile, definition)

    if definition == "medpy" and percentile is not None and not directed:
        value = medpy_hd_assd(pm, lm, spacing, percentile)[0]  # both directions pooled
    else:
        value = one_way(pm, lm)
        if not directed:
            value = jnp.maximum(value, one_way(lm, pm))
    return _empty_rule(n_p, n_l, value, jnp.inf)


def medpy_hd_assd(pm, lm, spacing, percentile=95.0):
    """medpy's (and panoptica's) pooled HD percentile and ASSD of two non-empty masks.

    Edge voxels as MONAI's; ``d_pl`` the distances from the prediction's edges to the
    label's, ``d_lp`` the other way. ``HD_q = percentile(concat(d_pl, d_lp), q)``
    (linear interpolation) and ``ASSD = (mean(d_pl) + mean(d_lp)) / 2``: two distance
    transforms for both.
    """
    d_pl, w_p = _directed(pm, lm, spacing, "medpy")
    d_lp, w_l = _directed(lm, pm, spacing, "medpy")
    d, w = (
        jnp.concatenate([d_pl.ravel(), d_lp.ravel()]),
        jnp.concatenate([w_p.ravel(), w_l.ravel()]),
    )
    if percentile == 0:  # NumPy's 0th percentile is the minimum (MONAI reads 0 as the maximum)
        hd = jnp.min(jnp.where(w > 0, d, jnp.inf))
    else:
        hd = _percentile(d, w, percentile, "monai")
    mean_pl = jnp.sum(d_pl * w_p) / jnp.maximum(jnp.sum(w_p), 1)
    mean_lp = jnp.sum(d_lp * w_l) / jnp.maximum(jnp.sum(w_l), 1)
    return hd, 0.5 * (mean_pl + mean_lp)


def _asd_one(pm, lm, *, spacing, definition, symmetric):
    if definition == "medpy" and symmetric:  # the mean of the two directed means
        value = medpy_hd_assd(pm, lm, spacing)[1]
        return _empty_rule(jnp.sum(pm), jnp.sum(lm), value, jnp.inf)
    d_pl, w_p = _directed(pm, lm, spacing, definition)
    num, den = jnp.sum(d_pl * w_p), jnp.sum(w_p)
    if symmetric:
        d_lp, w_l = _directed(lm, pm, spacing, definition)
        num, den = num + jnp.sum(d_lp * w_l), den + jnp.sum(w_l)
    value = num / jnp.where(den > 0, den, 1)
    return _empty_rule(jnp.sum(pm), jnp.sum(lm), value, jnp.inf)


def _nsd_one(pm, lm, tol, *, spacing, definition):
    d_pl, w_p = _directed(pm, lm, spacing, definition)
    d_lp, w_l = _directed(lm, pm, spacing, definition)
    good = jnp.sum(jnp.where(d_pl <= tol, w_p, 0)) + jnp.sum(jnp.where(d_lp <= tol, w_l, 0))
    total = jnp.sum(w_p) + jnp.sum(w_l)
    value = good / jnp.where(total > 0, total, 1)
    return _empty_rule(jnp.sum(pm), jnp.sum(lm), value, 0.0)


# -- public metrics --------------------------------------------------------------


def _prepare(predictions, labels, num_classes, spacing, definition, ignore_index):
    """Check the arguments; returns ``(C, spacing, ignored ids, predictions, labels)``."""
    c = v.check_num_classes(num_classes)
    predictions = v.check_int_labels(v.as_int_array(predictions, "predictions"), "predictions")
    labels = v.check_int_labels(v.as_int_array(labels, "labels"), "labels")
    v.check_same_shape("predictions", predictions, "labels", labels)
    # class ids in one dtype (uint8 PNG maps included); wide host arrays are saturated
    predictions, labels = predictions.astype(jnp.int32), labels.astype(jnp.int32)
    if predictions.ndim not in (3, 4):
        raise ValueError(
            "`predictions` and `labels` must have shape [batch, *spatial] with 2 or 3 "
            f"spatial axes; got shape {tuple(predictions.shape)}."
        )
    v.check_choice("definition", definition, DEFINITIONS)
    s = _check_spacing(spacing, predictions.ndim - 1)
    return c, s, v.normalize_ignore_index(ignore_index), predictions, labels


def _masks(predictions, labels, c, ignored):
    """Class masks ``[B, C, *spatial]``; predictions at ignored pixels are left out."""
    valid = jnp.ones(labels.shape, jnp.bool_)
    for i in ignored:
        valid = valid & (labels != i)
    classes = jnp.arange(c, dtype=jnp.int32)
    shape = (1,) * (labels.ndim - 1)

    def masks(pred, label, ok):
        pm = (pred[None] == classes.reshape((c, *shape))) & ok[None]
        lm = label[None] == classes.reshape((c, *shape))
        return pm, lm

    return jax.vmap(masks)(predictions, labels, valid)


def _finish(values, c, ignored, include_background):
    drop = np.zeros(c, bool)
    drop[[i for i in ignored if 0 <= i < c]] = True
    if not include_background:
        drop[0] = True
    return jnp.where(jnp.asarray(drop), jnp.nan, values.astype(jnp.float32))


_ONE = {"hd": _hd_one, "asd": _asd_one, "nsd": _nsd_one}


@functools.partial(
    jax.jit,
    static_argnames=("metric", "options", "num_classes", "ignored", "include_background"),
)
def _evaluate(
    predictions, labels, tol, *, metric, options, num_classes, ignored, include_background
):
    """One compiled program per metric, option set and shape (also when called eagerly)."""
    pm, lm = _masks(predictions, labels, num_classes, ignored)
    fn = functools.partial(_ONE[metric], **dict(options))
    extra = () if tol is None else (jnp.broadcast_to(tol, (pm.shape[0], num_classes)),)
    values = jax.vmap(jax.vmap(fn))(pm, lm, *extra)
    return _finish(values, num_classes, ignored, include_background)


def _surface_metric(metric, prepared, definition, include_background, tol=None, **options):
    """:func:`_evaluate` of ``metric`` on :func:`_prepare`'s result.

    The options are the static keywords of the metric, with ``definition`` and
    the checked spacing, as a tuple sorted by name (one compiled program each).
    """
    c, s, ignored, p, g = prepared
    options = tuple(sorted({**options, "definition": definition, "spacing": s}.items()))
    return _evaluate(
        p,
        g,
        tol,
        metric=metric,
        options=options,
        num_classes=c,
        ignored=ignored,
        include_background=v.check_bool("include_background", include_background),
    )


_SHARED_ARGS = """predictions: predicted class ids, int ``[batch, *spatial]`` (2 or 3 spatial axes).
      labels: true class ids, same shape.
      num_classes: ``C``; the class masks are ``predictions == c`` and ``labels == c``.
      spacing: voxel size per spatial axis (a number or one per axis, each in
        ``[1e-12, 1e12]``); default 1.
      definition: ``"monai"`` (edge voxels, equal to MONAI's ``compute_*``),
        ``"deepmind"`` (surfels weighted by area, Nikolov et al. 2021) or
        ``"medpy"`` (MONAI's edge voxels; a symmetric HD percentile pools both
        directed distance sets, a symmetric ASD is the mean of the two directed
        means: medpy's ``hd95`` / ``assd``, panoptica's HD95 / ASSD).
      ignore_index: label id(s) whose pixels are left out (predictions there are
        not counted); an ignored id inside ``[0, C)`` gives NaN for that class.
      include_background: ``False`` reports class 0 as NaN."""


def hausdorff_distance(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int,
    percentile: float | None = None,
    directed: bool = False,
    spacing: Any = None,
    definition: str = "monai",
    ignore_index: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Hausdorff distance per image and class; ``percentile=95`` gives HD95.

    With ``P``, ``G`` the surfaces of the predicted and true masks of a class and
    ``d(x, S) = min_{y in S} |x - y|`` (in spacing units)::

        HD = max( max_{x in P} d(x, G), max_{y in G} d(y, P) )

    ``directed=True`` keeps only the first term (prediction to label). With a
    ``percentile`` q the maxima become q-th percentiles: linearly interpolated
    over edge voxels for ``"monai"`` (``torch.quantile``; ``q = 0`` gives the
    maximum, as MONAI reads 0 as no percentile), the distance of the first
    surfel, in order of distance, at which the cumulative surfel area reaches
    q % of the total for ``"deepmind"`` (``compute_robust_hausdorff``; ``q = 0``
    is the smallest distance; a fraction equal to q % up to float32 rounding
    reaches it, where the package's float64 summation decides such ties
    either way). Empty rule: both masks empty gives NaN, exactly one empty
    gives ``+inf``.

    Args:
      {args}
      percentile: ``None`` (maximum) or a number in ``[0, 100]`` (a Python,
        NumPy or concrete JAX scalar).
      directed: only the prediction-to-label distances.

    Returns:
      float32 ``[batch, C]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> label = jnp.zeros((1, 5, 5), jnp.int32).at[0, 1:4, 1:4].set(1)
      >>> pred = jnp.zeros((1, 5, 5), jnp.int32).at[0, 1:4, 1:3].set(1)
      >>> jaxseg.hausdorff_distance(pred, label, num_classes=2)
      Array([[1., 1.]], dtype=float32)

    References:
      Huttenlocher, Klanderman & Rucklidge, "Comparing images using the
      Hausdorff distance", IEEE TPAMI 1993.
    """
    percentile = _check_percentile(percentile)
    prepared = _prepare(predictions, labels, num_classes, spacing, definition, ignore_index)
    directed = v.check_bool("directed", directed)
    return _surface_metric(
        "hd", prepared, definition, include_background, directed=directed, percentile=percentile
    )


def average_surface_distance(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int,
    symmetric: bool = False,
    spacing: Any = None,
    definition: str = "monai",
    ignore_index: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Average surface distance per image and class (ASD; ``symmetric=True``: ASSD).

    ``ASD = sum_{x in P} w_x d(x, G) / sum_{x in P} w_x`` from the predicted
    surface to the label surface, with ``w = 1`` on edge voxels (``"monai"``) or
    the surfel area (``"deepmind"``). ``symmetric=True`` pools both directions,
    ``(sum_P w d(x, G) + sum_G w d(y, P)) / (sum_P w + sum_G w)`` (MONAI's
    ``symmetric=True``). Empty rule: both empty NaN, exactly one empty ``+inf``.

    Args:
      {args}
      symmetric: pool the label-to-prediction distances too.

    Returns:
      float32 ``[batch, C]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> label = jnp.zeros((1, 5, 5), jnp.int32).at[0, 1:4, 1:4].set(1)
      >>> pred = jnp.zeros((1, 5, 5), jnp.int32).at[0, 1:4, 1:3].set(1)
      >>> jaxseg.average_surface_distance(pred, label, num_classes=2, symmetric=True)
      Array([[0.08571429, 0.2857143 ]], dtype=float32)

    References:
      Yeghiazaryan & Voiculescu, "Family of boundary overlap metrics for the
      evaluation of medical image segmentation", J. Med. Imaging 2018.
    """
    prepared = _prepare(predictions, labels, num_classes, spacing, definition, ignore_index)
    symmetric = v.check_bool("symmetric", symmetric)
    return _surface_metric("asd", prepared, definition, include_background, symmetric=symmetric)


def surface_dice(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int,
    tolerance: Any,
    spacing: Any = None,
    definition: str = "monai",
    ignore_index: Any = None,
    include_background: bool = True,
) -> jax.Array:
    """Normalised surface Dice (NSD) at a tolerance, per image and class.

    The fraction of both surfaces lying within ``tolerance`` of the other::

        NSD = (sum_{x in P, d(x,G) <= tau} w_x + sum_{y in G, d(y,P) <= tau} w_y)
              / (sum_P w + sum_G w)

    with ``w = 1`` on edge voxels (``"monai"``, as MONAI's ``compute_surface_dice``)
    or the surfel area (``"deepmind"``). Empty rule: both empty NaN, exactly one
    empty 0.

    Args:
      {args}
      tolerance: ``tau`` in spacing units, one number or one per class ``[C]``.

    Returns:
      float32 ``[batch, C]``.

    Examples:
      >>> import jax.numpy as jnp, jaxseg
      >>> label = jnp.zeros((1, 6, 6), jnp.int32).at[0, 1:5, 1:5].set(1)
      >>> pred = jnp.zeros((1, 6, 6), jnp.int32).at[0, 1:5, 1:4].set(1)
      >>> jaxseg.surface_dice(pred, label, num_classes=2, tolerance=0.0)
      Array([[0.90909094, 0.72727275]], dtype=float32)

    References:
      Nikolov et al., "Clinically applicable segmentation of head and neck
      anatomy for radiotherapy: deep learning algorithm development and
      validation study", J. Med. Internet Res. 23(7), 2021.
    """
    prepared = _prepare(predictions, labels, num_classes, spacing, definition, ignore_index)
    c = prepared[0]
    tol = np.asarray(tolerance, np.float64) if not isinstance(tolerance, jax.Array) else tolerance
    if tol.ndim not in (0, 1) or (tol.ndim == 1 and tol.shape[0] != c):
        raise ValueError(
            f"`tolerance` must be a number or have shape ({c},); got shape {tuple(tol.shape)}."
        )
    if isinstance(tol, np.ndarray) and not np.all(tol >= 0):
        raise ValueError(f"`tolerance` must be >= 0; got {tolerance!r}.")
    tol = jnp.asarray(tol, jnp.float32)
    return _surface_metric("nsd", prepared, definition, include_background, tol=tol)


for _f in (hausdorff_distance, average_surface_distance, surface_dice):
    _f.__doc__ = _f.__doc__.replace("{args}", _SHARED_ARGS)
