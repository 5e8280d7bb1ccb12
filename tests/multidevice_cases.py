"""Multi-device accumulation cases, run in one process with 8 simulated CPU devices.

``tests/test_distributed.py`` runs this file as a script with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` and checks the JSON it
prints: one entry per case, ``"ok"`` or the failure text. Every case compares
exact integer counts with a slow single-device NumPy ``int64`` reference, for
1, 2, 4 and 8 devices.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxseg
from jaxseg import _counts

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

C = 5
IGNORE = 255
N = 16  # examples; divisible by every device count below
H = W = 6
DEVICE_COUNTS = (1, 2, 4, 8)


def make_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, H, W, C)).astype(np.float32)
    labels = rng.integers(0, C, size=(n, H, W)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.1] = IGNORE
    labels[rng.random(labels.shape) < 0.03] = C  # out of range: invalid
    labels[rng.random(labels.shape) < 0.03] = -1  # out of range: invalid
    return logits, labels


def reference(logits, labels, where=None):
    """Slow loop over pixels: int64 ``[C, C]`` (rows labels) and the invalid count."""
    preds = np.argmax(logits, -1)
    if where is None:
        where = np.ones(labels.shape, bool)
    where = np.broadcast_to(where, labels.shape)
    m = np.zeros((C, C), np.int64)
    invalid = 0
    for p, y, w in zip(preds.ravel(), labels.ravel(), where.ravel(), strict=True):
        if not w or y == IGNORE:
            continue
        if 0 <= y < C:
            m[y, p] += 1
        else:
            invalid += 1
    return m, invalid


def check(state, want):
    m, invalid = want
    got = state.to_numpy()
    if got.shape != m.shape or not np.array_equal(got, m):
        raise AssertionError(f"counts differ:\n{got}\n!=\n{m}")
    got_invalid = int(_counts.to_int64_numpy(state.invalid))
    if got_invalid != invalid:
        raise AssertionError(f"invalid count {got_invalid} != {invalid}")


def update(logits, labels, where=None):
    return jaxseg.ConfusionMatrix.from_logits(logits, labels, ignore_index=IGNORE, where=where)


def mesh_of(n, axis_type=AxisType.Auto):
    return Mesh(np.array(jax.devices()[:n]), ("d",), axis_types=(axis_type,))


def per_device(x, n):
    return x.reshape(n, -1, *x.shape[1:])


# -- cases ------------------------------------------------------------------


def case_loop_merge():
    logits, labels = make_data()
    state = jaxseg.ConfusionMatrix.empty(C, ignore_index=IGNORE)
    step = jax.jit(lambda s, lg, lb: s + update(lg, lb))
    for i in range(0, N, 3):  # uneven batches: 3, 3, 3, 3, 3, 1
        state = step(state, logits[i : i + 3], labels[i : i + 3])
    check(state, reference(logits, labels))


def case_vmap_reduce():
    logits, labels = make_data()
    per_image = jax.jit(jax.vmap(update))(logits, labels)
    assert per_image.counts.shape == (N, C, C, 3), per_image.counts.shape
    check(per_image.reduce(), reference(logits, labels))


def case_pmap_psum(n):
    logits, labels = make_data()
    f = jax.pmap(lambda lg, lb: update(lg, lb).psum("d"), axis_name="d", devices=jax.devices()[:n])
    out = f(per_device(logits, n), per_device(labels, n))
    assert out.counts.shape == (n, C, C, 3), out.counts.shape
    want = reference(logits, labels)
    for k in range(n):  # every device holds the total
        check(jax.tree.map(lambda x, k=k: x[k], out), want)


def case_pmap_reduce(n):
    """Without psum, pmap returns per-device states: reduce them on the host side."""
    logits, labels = make_data()
    f = jax.pmap(update, devices=jax.devices()[:n])
    out = f(per_device(logits, n), per_device(labels, n))
    want = reference(logits, labels)
    check(jax.jit(lambda s: s.reduce())(out), want)
    if n > 1:  # the pitfall: out[0] is one device's share only
        assert not np.array_equal(out.to_numpy()[0], want[0])


def case_shard_map_psum(n):
    logits, labels = make_data()
    f = jax.jit(
        jax.shard_map(
            lambda lg, lb: update(lg, lb).psum("d"),
            mesh=mesh_of(n),
            in_specs=(P("d"), P("d")),
            out_specs=P(),
        )
    )
    check(f(logits, labels), reference(logits, labels))


def case_shard_map_scan(n):
    """Scan over local batches inside shard_map; the carry starts device-varying."""
    logits, labels = make_data()

    def body(lg, lb):
        init = lax.pcast(jaxseg.ConfusionMatrix.empty(C, ignore_index=IGNORE), "d", to="varying")

        def step(state, batch):
            return state + update(*batch), None

        steps = 2
        xs = (lg.reshape(steps, -1, *lg.shape[1:]), lb.reshape(steps, -1, *lb.shape[1:]))
        state, _ = lax.scan(step, init, xs)
        return state.psum("d")

    f = jax.jit(jax.shard_map(body, mesh=mesh_of(n), in_specs=(P("d"), P("d")), out_specs=P()))
    check(f(logits, labels), reference(logits, labels))


def _sharded_jit(n, axis_type):
    logits, labels = make_data()
    mesh = mesh_of(n, axis_type)
    sharding = NamedSharding(mesh, P("d"))
    lg, lb = jax.device_put(logits, sharding), jax.device_put(labels, sharding)
    with jax.set_mesh(mesh):
        state = jax.jit(lambda s, x, y: s + update(x, y))(
            jaxseg.ConfusionMatrix.empty(C, ignore_index=IGNORE), lg, lb
        )
    assert state.counts.sharding.is_fully_replicated, state.counts.sharding
    check(state, reference(logits, labels))


def case_jit_sharded_auto(n):
    _sharded_jit(n, AxisType.Auto)


def case_jit_sharded_explicit(n):
    _sharded_jit(n, AxisType.Explicit)


def case_jit_scan_epoch(n):
    """An epoch of sharded batches accumulated with lax.scan inside one jit."""
    logits, labels = make_data()
    mesh = mesh_of(n)
    steps = 2
    lg = logits.reshape(steps, -1, H, W, C)  # [steps, batch, ...], batch sharded
    lb = labels.reshape(steps, -1, H, W)
    lg = jax.device_put(lg, NamedSharding(mesh, P(None, "d")))
    lb = jax.device_put(lb, NamedSharding(mesh, P(None, "d")))

    @jax.jit
    def epoch(lg, lb):
        def step(state, batch):
            return state + update(*batch), None

        init = jaxseg.ConfusionMatrix.empty(C, ignore_index=IGNORE)
        return lax.scan(step, init, (lg, lb))[0]

    check(epoch(lg, lb), reference(logits, labels))


def case_padded_last_batch(n):
    """13 examples on n devices: pad with duplicates, mask whole examples out."""
    size = 13
    logits, labels = make_data(size, seed=3)
    per_step = 2 * n
    steps = -(-size // per_step)
    total = steps * per_step
    # a distributed sampler pads by repeating examples from the start
    index = np.arange(total) % size
    valid = np.arange(total) < size
    mesh = mesh_of(n)
    sharding = NamedSharding(mesh, P("d"))

    @jax.jit
    def step(state, lg, lb, ok):
        return state + update(lg, lb, where=ok[:, None, None])

    state = jaxseg.ConfusionMatrix.empty(C, ignore_index=IGNORE)
    naive = state
    for s in range(steps):
        rows = index[s * per_step : (s + 1) * per_step]
        ok = valid[s * per_step : (s + 1) * per_step]
        args = [jax.device_put(a, sharding) for a in (logits[rows], labels[rows], ok)]
        state = step(state, *args)
        naive = step(naive, *args[:2], jax.device_put(np.ones_like(ok), sharding))
    want = reference(logits, labels)
    check(state, want)
    if total > size:  # without the mask the duplicates are counted twice
        assert naive.to_numpy().sum() > want[0].sum()


def _big_states(n, per_cell):
    """n per-device states, state k holding ``per_cell + k`` in every cell."""
    values = np.array([[per_cell + k] * (C * C) for k in range(n)], dtype=np.uint64)
    counts = _counts.from_python_int(values, (n, C, C))
    invalid = _counts.from_python_int(values[:, 0], (n,))
    return jaxseg.ConfusionMatrix(counts=counts, invalid=invalid, num_classes=C)


def _check_big(state, n, per_cell):
    want = sum(per_cell + k for k in range(n))
    got = state.to_numpy()
    assert np.all(got == want), (got, want)
    assert int(_counts.to_int64_numpy(state.invalid)) == want


def case_overflow_psum(n):
    """Cells beyond 2**32 (and 2**48 at 8 devices) through pmap, shard_map and jit."""
    per_cell = (1 << 45) + (1 << 31) + 12345
    states = _big_states(n, per_cell)
    out = jax.pmap(lambda s: s.psum("d"), axis_name="d", devices=jax.devices()[:n])(states)
    _check_big(jax.tree.map(lambda x: x[0], out), n, per_cell)
    mesh = mesh_of(n)
    f = jax.jit(
        jax.shard_map(lambda s: s.reduce().psum("d"), mesh=mesh, in_specs=P("d"), out_specs=P())
    )
    _check_big(f(states), n, per_cell)
    # compiler-inserted all-reduce: reduce a state stacked over a sharded axis
    sharded = jax.device_put(states, NamedSharding(mesh, P("d")))
    _check_big(jax.jit(lambda s: s.reduce())(sharded), n, per_cell)


def case_overflow_scan():
    """A scan over many steps whose running totals pass 2**32 per cell."""
    per_step = (1 << 31) - 1
    step_state = _big_states(1, per_step)
    step_state = jax.tree.map(lambda x: x[0], step_state)
    steps = 300

    @jax.jit
    def run(s0):
        return lax.scan(lambda s, _: (s + step_state, None), s0, None, length=steps)[0]

    out = run(jaxseg.ConfusionMatrix.empty(C))
    assert np.all(out.to_numpy() == steps * per_step)


def case_binary_stats_shard_map(n):
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(N, H, W, 3)).astype(np.float32)
    labels = rng.integers(0, 2, size=(N, H, W, 3)).astype(np.int32)
    f = jax.jit(
        jax.shard_map(
            lambda lg, lb: jaxseg.BinaryStats.from_logits(lg, lb).psum("d"),
            mesh=mesh_of(n),
            in_specs=(P("d"), P("d")),
            out_specs=P(),
        )
    )
    got = f(logits, labels).to_numpy()
    pred = logits > 0
    pos = labels == 1
    want = np.stack([(pred & pos), (pred & ~pos), (~pred & pos), (~pred & ~pos)]).sum((1, 2, 3))
    assert np.array_equal(got, want), (got, want)


def case_soft_stats_psum(n):
    """SoftStats sums are floats: psum equals the single-device sum to rounding."""
    logits, labels = make_data()
    pooled = tuple(range(labels.ndim))  # every pixel axis, the batch included

    f = jax.jit(
        jax.shard_map(
            lambda lg, lb: jaxseg.SoftStats.from_logits(
                lg, lb, ignore_index=IGNORE, axis=pooled
            ).psum("d"),
            mesh=mesh_of(n),
            in_specs=(P("d"), P("d")),
            out_specs=P(),
        )
    )
    got = f(logits, labels)
    want = jax.jit(
        lambda lg, lb: jaxseg.SoftStats.from_logits(lg, lb, ignore_index=IGNORE, axis=pooled)
    )(logits, labels)
    np.testing.assert_allclose(got.tp, want.tp, rtol=1e-5)
    np.testing.assert_allclose(got.fn, want.fn, rtol=1e-5)


def case_boundary_distance_psum(n):
    """BoundaryStats counts and DistanceStats counts psum exactly; distance sums to rounding."""
    rng = np.random.default_rng(7)
    preds = rng.integers(0, C, size=(N, H, W)).astype(np.int32)
    labels = np.repeat(np.repeat(rng.integers(0, C, size=(N, 3, 3)), 2, 1), 2, 2).astype(np.int32)
    labels[:, 0, 0] = IGNORE

    def update(p, g):
        b = jaxseg.BoundaryStats.from_predictions(p, g, num_classes=C, ignore_index=IGNORE)
        hd = jaxseg.hausdorff_distance(p, g, num_classes=C, percentile=95, ignore_index=IGNORE)
        return b, jaxseg.DistanceStats.from_values(hd)

    f = jax.jit(
        jax.shard_map(
            lambda p, g: jax.tree.map(lambda s: s.psum("d"), update(p, g), is_leaf=_is_state),
            mesh=mesh_of(n),
            in_specs=(P("d"), P("d")),
            out_specs=P(),
        )
    )
    got_b, got_d = f(preds, labels)
    want_b, want_d = jax.jit(update)(preds, labels)
    assert np.array_equal(got_b.to_numpy(), want_b.to_numpy()), (
        got_b.to_numpy(),
        want_b.to_numpy(),
    )
    assert np.array_equal(got_d.to_numpy(), want_d.to_numpy())
    np.testing.assert_allclose(got_d.sums, want_d.sums, rtol=1e-5)
    # wide sums: values near the float32 maximum psum to a finite, correct mean
    huge = rng.uniform(1e38, 3.4e38, (N * 4, C)).astype(np.float32)
    psummed = jax.jit(
        jax.shard_map(
            lambda x: jaxseg.DistanceStats.from_values(x).psum("d"),
            mesh=mesh_of(n),
            in_specs=P("d"),
            out_specs=P(),
        )
    )(huge)
    np.testing.assert_allclose(psummed.compute(), huge.astype(np.float64).mean(0), rtol=1e-5)


def _is_state(x):
    return isinstance(x, jaxseg.BoundaryStats | jaxseg.DistanceStats)


def case_clu_gather(n):
    from clu import metrics as clu_metrics

    metrics_cls = clu_metrics.Collection.create(
        confusion=jaxseg.ConfusionMatrix.configure(C, ignore_index=IGNORE)
    )
    logits, labels = make_data()

    def step(metrics, lg, lb):
        return metrics.merge(metrics_cls.gather_from_model_output(logits=lg, labels=lb))

    f = jax.pmap(step, axis_name="batch", devices=jax.devices()[:n])
    metrics = jax.tree.map(lambda x: jnp.stack([x] * n), metrics_cls.empty())
    metrics = f(metrics, per_device(logits, n), per_device(labels, n))
    # (flax's `unreplicate` keeps the axis of a pmap over a one-device subset)
    metrics = jax.tree.map(lambda x: x[0], metrics)
    check(metrics.confusion, reference(logits, labels))


def case_panoptic_psum(n):
    """PanopticStats: per-device states psummed over the mesh equal one call on the batch
    (exact tp / fp / fn and overflow; pair sums to rounding)."""
    from scipy import ndimage

    rng = np.random.default_rng(9)
    ref = np.stack([ndimage.label(rng.random((H, W)) < 0.4)[0] for _ in range(N)])
    pred = np.where(rng.random(ref.shape) < 0.2, 0, ref).astype(np.int32)
    ref = ref.astype(np.int32)

    def update(p, g):
        return jaxseg.PanopticStats.from_instances(p, g, max_segments=4).reduce()

    f = jax.jit(
        jax.shard_map(
            lambda p, g: update(p, g).psum("d"),
            mesh=mesh_of(n),
            in_specs=(P("d"), P("d")),
            out_specs=P(),
        )
    )
    got, want = f(pred, ref), jax.jit(update)(pred, ref)
    assert np.array_equal(got.to_numpy(), want.to_numpy()), (got.to_numpy(), want.to_numpy())
    assert np.array_equal(
        _counts.to_int64_numpy(got.overflow), _counts.to_int64_numpy(want.overflow)
    )
    assert want.to_numpy()[0].sum() > 0
    np.testing.assert_allclose(got.sums, want.sums, rtol=1e-6)


CASES = {
    "loop_merge": case_loop_merge,
    "vmap_reduce": case_vmap_reduce,
    "overflow_scan": case_overflow_scan,
}
# the main APIs at every device count; the rest at the largest (and 2 for overflow)
_SWEEPS = [
    (DEVICE_COUNTS, case_pmap_psum),
    (DEVICE_COUNTS, case_shard_map_psum),
    (DEVICE_COUNTS, case_shard_map_scan),
    (DEVICE_COUNTS, case_jit_sharded_auto),
    (DEVICE_COUNTS, case_jit_sharded_explicit),
    (DEVICE_COUNTS, case_jit_scan_epoch),
    (DEVICE_COUNTS, case_padded_last_batch),
    ((2, 8), case_overflow_psum),
    ((8,), case_pmap_reduce),
    ((8,), case_binary_stats_shard_map),
    ((8,), case_soft_stats_psum),
    ((8,), case_clu_gather),
    ((8,), case_boundary_distance_psum),
    ((8,), case_panoptic_psum),
]
for _counts_list, _fn in _SWEEPS:
    for _n in _counts_list:
        CASES[f"{_fn.__name__.removeprefix('case_')}[{_n}]"] = lambda f=_fn, n=_n: f(n)


#: Case groups, each run in its own process so that each stays well below a minute.
GROUPS = {
    "sweep": [k for k in CASES if k.endswith(("[1]", "[2]", "[4]"))],
    "other": [k for k in CASES if not k.endswith(("[1]", "[2]", "[4]"))],
}


def main(group: str) -> None:
    results = {"device_count": jax.device_count()}
    seconds = {}
    for name in GROUPS[group]:
        start = time.perf_counter()
        try:
            CASES[name]()
            results[name] = "ok"
        except Exception:
            results[name] = traceback.format_exc(limit=6)
        seconds[name] = round(time.perf_counter() - start, 2)
    results["seconds"] = seconds
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
