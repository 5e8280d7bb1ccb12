"""Connected components against SciPy's ``ndimage.label`` (numbering included) and cc3d."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg
from jaxseg import _components

ndimage = pytest.importorskip("scipy.ndimage")

# One compiled call per (shape, connectivity): every mask of a shape is stacked and vmapped.
SHAPES = [(41,), (20, 24), (7, 8, 9)]


# -- structured masks ----------------------------------------------------------------


def snake(shape, gap=2):
    """A serpentine: rows (of the last two axes) joined at alternating ends; one component."""
    m = np.zeros(shape, bool)
    if len(shape) == 1:
        m[::2] = True
        m[: len(m) // 2] = True  # a run, then isolated dots
        return m
    rows, cols = shape[-2], shape[-1]
    plane = np.zeros((rows, cols), bool)
    for k, r in enumerate(range(0, rows, gap)):
        plane[r] = True
        if r + gap < rows:
            plane[r : r + gap + 1, cols - 1 if k % 2 == 0 else 0] = True
    if len(shape) == 2:
        return plane
    flipped = plane[::-1, ::-1]
    joint = tuple(np.argwhere(plane & flipped)[0])
    for z in range(0, shape[0], 2):  # planes of snakes, joined through one element
        m[z] = plane if (z // 2) % 2 == 0 else flipped
        if z + 2 < shape[0]:
            m[z : z + 3, joint[0], joint[1]] = True
    return m


def spiral(shape):
    """A square spiral walked inward, one empty row or column between its turns."""
    rows, cols = shape[-2], shape[-1]
    plane = np.zeros((rows, cols), bool)
    inside = lambda r, c: 0 <= r < rows and 0 <= c < cols  # noqa: E731
    r = c = k = stuck = 0
    plane[0, 0] = True
    while stuck < 2:
        dr, dc = ((0, 1), (1, 0), (0, -1), (-1, 0))[k]
        nr, nc, ar, ac = r + dr, c + dc, r + 2 * dr, c + 2 * dc
        if inside(nr, nc) and not plane[nr, nc] and not (inside(ar, ac) and plane[ar, ac]):
            r, c, stuck = nr, nc, 0
            plane[r, c] = True
        else:
            k, stuck = (k + 1) % 4, stuck + 1
    return np.broadcast_to(plane, shape).copy()


def checkerboard(shape, period=1):
    idx = np.indices(shape).sum(0) // period
    return idx % 2 == 0


def diagonal_chains(shape, step):
    """Thin lines along ``step`` (entries in {-1, 0, 1}) from several starts."""
    m = np.zeros(shape, bool)
    for start in range(0, max(shape), 3):
        p = np.array([start % n if k == 0 else 0 for k, n in enumerate(shape)])
        if len(shape) > 1:
            p[-1] = (start * 2) % shape[-1]
        while all(0 <= p[k] < shape[k] for k in range(len(shape))):
            m[tuple(p)] = True
            p = p + np.array(step)
    return m


def blobs(shape, rng, frac):
    z = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    return z > np.quantile(z, 1 - frac)


def masks_for(shape, seed=0):
    """Structured and random masks of one shape, stacked: ``[k, *shape]``."""
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    out = [np.zeros(shape, bool), np.ones(shape, bool)]
    for corner in (0, -1):  # single voxels: first and last element, and one inside
        one = np.zeros(shape, bool)
        one[(corner,) * ndim] = True
        out.append(one)
    one = np.zeros(shape, bool)
    one[tuple(n // 2 for n in shape)] = True
    out.append(one)
    out += [snake(shape), spiral(shape) if ndim > 1 else snake(shape)]
    out += [checkerboard(shape, p) for p in (1, 2, 3)]
    out += [~checkerboard(shape)]
    steps = {1: [(1,)], 2: [(1, 1), (1, -1)], 3: [(1, 1, 1), (1, 1, -1), (1, 1, 0), (0, 1, -1)]}
    out += [diagonal_chains(shape, step) for step in steps[ndim]]
    for frac in (0.02, 0.1, 0.3, 0.45, 0.55, 0.7, 0.9):
        out.append(rng.random(shape) < frac)
    for frac in (0.1, 0.3, 0.5, 0.7):
        out.append(blobs(shape, rng, frac))
    # random masks around the percolation thresholds, where components are long and thin
    for _ in range(80 - len(out)):
        out.append(rng.random(shape) < rng.uniform(0.25, 0.75))
    return np.stack(out)


def scipy_label(mask, connectivity):
    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    return ndimage.label(mask, structure)


CASES = [(shape, c) for shape in SHAPES for c in range(1, len(shape) + 1)]
#: One-row, one-column and flat shapes: 40 random masks each.
MORE = [((1, 33), 2), ((3, 5, 1), 3)]
WORST = (128, 128)
ONE_BY_ONE = [0, 5, 10, 40, 79]


def _vmapped(connectivity):
    return jax.vmap(functools.partial(jaxseg.connected_components, connectivity=connectivity))


def _label_and_rounds(m):
    roots, rounds = _components.component_roots(m, 1)
    labels, counts = _components.labels_from_roots(roots, (1, *m.shape))
    return labels[0], counts[0], rounds


def _program(by_shape, more, worst):
    """Every labelling this file checks, traced into ONE jitted program: one
    compilation for all (about half the compile time of one per shape,
    connectivity and transform)."""
    out = {}
    for shape, c in CASES:  # every mask of a shape stacked and vmapped
        out[f"case {shape} {c}"] = _vmapped(c)(by_shape[str(shape)])
    for (shape, c), masks in zip(MORE, more, strict=True):
        out[f"more {shape} {c}"] = _vmapped(c)(masks)
    out["rounds"] = jax.vmap(_label_and_rounds)(worst)
    # the unbatched function, called mask by mask (a loop, not vmap)
    picked = by_shape[str((20, 24))][np.array(ONE_BY_ONE)]
    out["one by one"] = jax.lax.map(
        functools.partial(jaxseg.connected_components, connectivity=2), picked
    )
    # vmap of vmap, the inner one over axis 1 of [3, 20, 4, 24]
    nested = by_shape[str((20, 24))][:12].reshape(3, 4, 20, 24).transpose(0, 2, 1, 3)
    out["nested"] = jax.vmap(jax.vmap(jaxseg.connected_components, in_axes=1))(nested)
    out["stack"] = _components._label_stack(by_shape[str((7, 8, 9))][:20], 3)
    # a stack of 5 x 41 made "too big" for int32 indices: labelled one mask at a time
    saved = _components._MAX_ELEMENTS
    _components._MAX_ELEMENTS = 100  # read while tracing
    try:
        out["past int32"] = _components._label_stack(by_shape[str((41,))][:5], 1)
    finally:
        _components._MAX_ELEMENTS = saved
    return out


def _more_masks():
    rng = np.random.default_rng(3)
    return [
        rng.random((40, *shape)) < rng.uniform(0.2, 0.8, (40,) + (1,) * len(shape))
        for shape, _ in MORE
    ]


def _worst_masks():
    return np.stack([snake(WORST), snake(WORST, gap=4), spiral(WORST), checkerboard(WORST, 2)])


@functools.cache
def _all():
    """``(inputs, outputs)``: the masks and every result, from one compiled call."""
    by_shape = {str(shape): masks_for(shape) for shape in SHAPES}
    more, worst = _more_masks(), _worst_masks()
    out = jax.device_get(jax.jit(_program)(by_shape, more, worst))
    return (by_shape, more, worst), out


def _results(shape, connectivity):
    (by_shape, _, _), out = _all()
    labels, counts = out[f"case {shape} {connectivity}"]
    return by_shape[str(shape)], np.asarray(labels), np.asarray(counts)


@pytest.mark.parametrize(("shape", "connectivity"), CASES)
def test_equal_to_scipy_numbering_included(shape, connectivity):
    """Labels and counts equal ``scipy.ndimage.label`` exactly on 80 masks per case (480 in all)."""
    masks, labels, counts = _results(shape, connectivity)
    assert labels.dtype == np.int32 and counts.dtype == np.int32
    for k, m in enumerate(masks):
        ref, n = scipy_label(m, connectivity)
        np.testing.assert_array_equal(labels[k], ref, err_msg=f"mask {k}")
        assert counts[k] == n, k


def test_structured_masks_are_what_they_claim():
    """The generators make the shapes the tests rely on (so a bug cannot hide in them)."""
    assert scipy_label(snake((20, 24)), 1)[1] == 1
    assert scipy_label(snake((7, 8, 9)), 1)[1] == 1
    assert scipy_label(spiral((20, 24)), 1)[1] == 1
    assert scipy_label(checkerboard((20, 24)), 1)[1] == 240  # all isolated at 4-connectivity
    assert scipy_label(checkerboard((20, 24)), 2)[1] == 1
    diag = diagonal_chains((7, 8, 9), (1, 1, 1))
    assert scipy_label(diag, 2)[1] == diag.sum() and scipy_label(diag, 3)[1] < diag.sum()


def test_more_shapes_in_one_call():
    """One-row, one-column and flat shapes: 80 more random masks."""
    (_, more, _), out = _all()
    for (shape, c), masks in zip(MORE, more, strict=True):
        labels, counts = out[f"more {shape} {c}"]
        assert labels.shape == masks.shape
        for k, m in enumerate(masks):
            ref, n = scipy_label(m, c)
            np.testing.assert_array_equal(np.asarray(labels[k]), ref)
            assert counts[k] == n


def test_equal_to_cc3d():
    """cc3d gives the same components (4/8 in 2-D, 6/18/26 in 3-D; numbering up to relabelling)."""
    cc3d = pytest.importorskip("cc3d", reason="connected-components-3d is not installed")
    for shape in SHAPES[1:]:
        for connectivity in range(1, len(shape) + 1):
            masks, labels, counts = _results(shape, connectivity)
            neighbours = {2: (4, 8), 3: (6, 18, 26)}[len(shape)][connectivity - 1]
            for k, m in enumerate(masks):
                ref, n = cc3d.connected_components(m, connectivity=neighbours, return_N=True)
                assert counts[k] == n
                # the same partition: a bijection between label values
                pairs = np.unique(np.stack([labels[k].ravel(), ref.ravel()]), axis=1)
                assert pairs.shape[1] == n + int((~m).any()), k


def test_rounds_on_worst_case_shapes():
    """Snakes and spirals of 128 x 128 (one component of 8,000+ pixels) converge in few rounds."""
    (_, _, masks), out = _all()
    labels, counts, rounds = out["rounds"]
    for k, m in enumerate(masks):
        ref, n = scipy_label(m, 1)
        np.testing.assert_array_equal(np.asarray(labels[k]), ref)
        assert counts[k] == n
    # measured: 2 hooking rounds each (1 for the 2 x 2 checkerboard); see docs/objects.md
    assert np.asarray(rounds).max() <= 3, rounds


def test_jit_and_vmap_equal_one_by_one():
    _, labels, counts = _results((20, 24), 2)
    lab, n = _all()[1]["one by one"]
    for i, k in enumerate(ONE_BY_ONE):
        np.testing.assert_array_equal(lab[i], labels[k], err_msg=f"mask {k}")
        assert n[i] == counts[k], k


def test_nested_vmap_and_other_in_axes():
    """vmap of vmap and ``in_axes=1`` give the per-mask labels (the batching rule).

    One call (one compilation) covers both: the inner vmap maps axis 1 of
    ``[3, 20, 4, 24]``, the outer one axis 0."""
    _, labels, counts = _results((20, 24), 1)
    lab, cnt = _all()[1]["nested"]
    np.testing.assert_array_equal(lab, labels[:12].reshape(3, 4, 20, 24))
    np.testing.assert_array_equal(cnt, counts[:12].reshape(3, 4))


def test_stacked_masks_are_not_connected():
    """The stack used for batches on accelerators: no neighbours across masks."""
    _, labels, counts = _results((7, 8, 9), 3)
    lab, cnt = _all()[1]["stack"]
    np.testing.assert_array_equal(lab, labels[:20])
    np.testing.assert_array_equal(cnt, counts[:20])


def test_stack_past_int32_indices_is_labelled_one_mask_at_a_time():
    """A stack of 5 x 41 made "too big" (``_MAX_ELEMENTS = 100`` while tracing)."""
    _, labels, counts = _results((41,), 1)
    lab, cnt = _all()[1]["past int32"]
    np.testing.assert_array_equal(lab, labels[:5])
    np.testing.assert_array_equal(cnt, counts[:5])


def test_empty_shape():
    labels, count = jaxseg.connected_components(np.zeros((0, 4), bool))
    assert labels.shape == (0, 4) and labels.dtype == jnp.int32 and count == 0


@pytest.mark.parametrize(
    ("mask", "kwargs", "error", "match"),
    [
        (np.array(True), {}, ValueError, r"`mask` must have rank 1, 2 or 3.*shape \(\)"),
        (np.zeros((2, 2, 2, 2), bool), {}, ValueError, r"`mask` must have rank 1, 2 or 3"),
        (np.zeros((4, 4), np.float32), {}, TypeError, r"`mask` must be a boolean.*float32"),
        (np.zeros((4, 4), np.int32), {}, TypeError, r"`mask` must be a boolean.*int32"),
        (
            np.zeros((4, 4), bool),
            {"connectivity": 0},
            ValueError,
            r"`connectivity` must be in 1..2",
        ),
        (np.zeros((4, 4), bool), {"connectivity": 3}, ValueError, r"`connectivity`.*got 3"),
        (np.zeros((4,), bool), {"connectivity": 2}, ValueError, r"`connectivity` must be in 1..1"),
        (
            np.zeros((4, 4), bool),
            {"connectivity": 1.0},
            TypeError,
            r"`connectivity` must be an int",
        ),
        (np.zeros((4, 4), bool), {"connectivity": True}, TypeError, r"`connectivity`"),
    ],
)
def test_named_errors(mask, kwargs, error, match):
    with pytest.raises(error, match=match):
        jaxseg.connected_components(mask, **kwargs)


def test_too_many_elements_is_a_named_error():
    too_big = jax.ShapeDtypeStruct((2048, 1024, 1024), jnp.bool_)  # 2^31 elements, never made
    with pytest.raises(ValueError, match=r"`mask` has 2147483648 elements"):
        jax.eval_shape(jaxseg.connected_components, too_big)


def test_traced_connectivity_is_a_named_error():
    with pytest.raises(TypeError, match=r"`connectivity` must be static"):
        jax.jit(jaxseg.connected_components)(np.zeros((4, 4), bool), connectivity=1)
