"""ConfusionMatrix inside a ``clu.metrics.Collection``: update, merge, gather, compute."""

import numpy as np
import pytest

clu_metrics = pytest.importorskip("clu.metrics")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jaxseg  # noqa: E402

C = 4
IGNORE = 255


def _batches(n_batches=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        logits = rng.normal(size=(2, 5, 6, C)).astype(np.float32)
        labels = rng.integers(0, C, size=(2, 5, 6)).astype(np.int32)
        labels[rng.random(labels.shape) < 0.2] = IGNORE
        labels[0, 0, :2] = C  # out of range, not ignored: counted as invalid
        mask = rng.random(labels.shape) < 0.8
        out.append((logits, labels, mask))
    return out


def _reference(batches):
    """Slow loop: int64 confusion matrix (rows labels) and invalid count."""
    m = np.zeros((C, C), np.int64)
    invalid = 0
    for logits, labels, mask in batches:
        preds = logits.argmax(-1)
        for p, y, w in zip(preds.ravel(), labels.ravel(), mask.ravel(), strict=True):
            if not w or y == IGNORE:
                continue
            if 0 <= y < C:
                m[y, p] += 1
            else:
                invalid += 1
    return m, invalid


Metric = jaxseg.ConfusionMatrix.configure(C, ignore_index=IGNORE)
# (CLU's own Average promotes int32 / float32 implicitly, which the strict test config rejects.)
Metrics = clu_metrics.Collection.create(confusion=Metric)


def test_configure_is_cached_and_a_pytree():
    assert Metric is jaxseg.ConfusionMatrix.configure(C, ignore_index=(IGNORE,))
    assert Metric is not jaxseg.ConfusionMatrix.configure(C)
    assert issubclass(Metric, jaxseg.ConfusionMatrix)
    leaves, tree = jax.tree_util.tree_flatten(Metric.empty())
    assert len(leaves) == 3  # counts, invalid, void
    assert type(jax.tree_util.tree_unflatten(tree, leaves)) is Metric


def _accumulate(collection, batches):
    """The usual CLU loop: a jitted update merged into ``collection.empty()``."""

    @jax.jit
    def update(metrics, logits, labels, mask):
        new = collection.single_from_model_output(logits=logits, labels=labels, mask=mask)
        return metrics.merge(new)

    metrics = collection.empty()
    for logits, labels, mask in batches:
        metrics = update(metrics, logits, labels, mask)
    assert update._cache_size() == 1  # the empty state has the dtypes of an update
    return metrics


def test_collection_loop_matches_reference():
    batches = _batches()
    metrics = _accumulate(Metrics, batches)
    ref, invalid = _reference(batches)
    np.testing.assert_array_equal(metrics.confusion.to_numpy(), ref)
    assert int(jaxseg._counts.to_int64_numpy(metrics.confusion.invalid)) == invalid
    out = metrics.compute()
    np.testing.assert_allclose(out["confusion"], jaxseg.iou(metrics.confusion), rtol=0)
    tp = np.diag(ref)
    want = np.nanmean(tp / (ref.sum(0) + ref.sum(1) - tp))
    np.testing.assert_allclose(out["confusion"], want, rtol=1e-6)


def test_gather_from_model_output_in_pmap():
    """CLU's distributed path: all_gather the per-device update, then reduce."""
    batches = _batches(2, seed=1)
    n = jax.local_device_count()
    stack = [np.stack([b[k]] * n) for b in batches for k in range(3)]

    def step(metrics, logits, labels, mask):
        update = Metrics.gather_from_model_output(
            axis_name="batch", logits=logits, labels=labels, mask=mask
        )
        return metrics.merge(update)

    p_step = jax.pmap(step, axis_name="batch")
    metrics = jax.tree.map(lambda x: jnp.stack([x] * n), Metrics.empty())
    for i in range(len(batches)):
        metrics = p_step(metrics, *stack[3 * i : 3 * i + 3])
    metrics = metrics.unreplicate()
    ref, _ = _reference(batches)
    np.testing.assert_array_equal(metrics.confusion.to_numpy(), n * ref)


def test_configured_rejects_wrong_class_count():
    logits = jnp.zeros((3, C + 1))
    with pytest.raises(ValueError, match=r"`logits` must have 4 classes.*\(3, 5\)"):
        Metric.from_model_output(logits=logits, labels=jnp.zeros(3, jnp.int32))


def test_merge_with_other_configuration_raises():
    other = jaxseg.ConfusionMatrix.configure(C + 1).empty()
    with pytest.raises(TypeError, match="ConfusionMatrix_4 with ConfusionMatrix_4; got Conf"):
        Metric.empty().merge(other)


# -- BinaryStats (multilabel) ----------------------------------------------------

THRESHOLD = (0.5, 0.3, 0.7, 0.9)
Binary = jaxseg.BinaryStats.configure(C, threshold=THRESHOLD, ignore_index=IGNORE)
BinaryMetrics = clu_metrics.Collection.create(channels=Binary)


def _binary_batches(n_batches=3, seed=2):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        logits = rng.normal(size=(2, 5, 6, C)).astype(np.float32)
        labels = (rng.random(logits.shape) < 0.4).astype(np.int32)
        labels[rng.random(labels.shape) < 0.1] = IGNORE
        labels[0, 0, 0, :] = 2  # neither 0/1 nor ignored: invalid
        mask = rng.random(labels.shape[:-1]) < 0.8
        out.append((logits, labels, mask))
    return out


def _binary_reference(batches):
    """Slow loop: int64 [4, C] rows tp, fp, fn, tn, and the invalid count."""
    counts = np.zeros((4, C), np.int64)
    invalid = 0
    for logits, labels, mask in batches:
        pred = 1.0 / (1.0 + np.exp(-logits.astype(np.float64))) > np.asarray(THRESHOLD)
        for idx in np.ndindex(labels.shape):
            y, ch = labels[idx], idx[-1]
            if not mask[idx[:-1]] or y == IGNORE:
                continue
            if y not in (0, 1):
                invalid += 1
                continue
            p = pred[idx]
            row = 0 if (p and y) else 1 if p else 2 if y else 3
            counts[row, ch] += 1
    return counts, invalid


def test_binary_configure_is_cached_and_validated():
    assert Binary is jaxseg.BinaryStats.configure(
        C, threshold=list(THRESHOLD), ignore_index=[IGNORE]
    )
    assert Binary is not jaxseg.BinaryStats.configure(C, ignore_index=IGNORE)
    assert issubclass(Binary, jaxseg.BinaryStats)
    with pytest.raises(ValueError, match="threshold"):
        jaxseg.BinaryStats.configure(C, threshold=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"`logits` must have 4 classes"):
        Binary.from_model_output(logits=jnp.zeros((3, C + 1)), labels=jnp.zeros((3, C + 1)))


def test_binary_collection_loop_matches_reference():
    batches = _binary_batches()
    metrics = _accumulate(BinaryMetrics, batches)
    ref, invalid = _binary_reference(batches)
    np.testing.assert_array_equal(metrics.channels.to_numpy(), ref)
    assert int(jaxseg._counts.to_int64_numpy(metrics.channels.invalid)) == invalid
    out = metrics.compute()
    tp, fp, fn = ref[0], ref[1], ref[2]
    np.testing.assert_allclose(out["channels"], np.mean(tp / (tp + fp + fn)), rtol=1e-6)
