"""jaxseg.flax.SegmentationMetrics and the Flax NNX example of docs/flax.md."""

import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

nnx = pytest.importorskip("flax.nnx")

import jaxseg  # noqa: E402
from jaxseg.flax import SegmentationMetrics  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "flax.md"
C = 3
IGNORE = 255


def _reference(batches):
    m = np.zeros((C, C), np.int64)
    for logits, labels, where in batches:
        preds = np.asarray(logits).argmax(-1)
        keep = np.broadcast_to(where, labels.shape) & (labels != IGNORE)
        np.add.at(m, (labels[keep], preds[keep]), 1)
    return m


def _batches(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        logits = rng.normal(size=(2, 4, 5, C)).astype(np.float32)
        labels = rng.integers(0, C, size=(2, 4, 5)).astype(np.int32)
        labels[rng.random(labels.shape) < 0.2] = IGNORE
        out.append((logits, labels, rng.random(labels.shape) < 0.7))
    return out


def test_update_compute_reset_match_reference():
    batches = _batches()
    metric = SegmentationMetrics(C, ignore_index=IGNORE)

    @nnx.jit
    def step(metric, logits, labels, where):
        metric.update(logits=logits, labels=labels, where=where)

    for b in batches:
        step(metric, *b)
    ref = _reference(batches)
    np.testing.assert_array_equal(metric.state.to_numpy(), ref)
    out = metric.compute()
    tp = np.diag(ref).astype(np.float64)
    ious = tp / (ref.sum(0) + ref.sum(1) - tp)
    np.testing.assert_allclose(out["iou"], ious, rtol=1e-6)
    np.testing.assert_allclose(out["mean_iou"], ious.mean(), rtol=1e-6)
    np.testing.assert_allclose(out["pixel_accuracy"], tp.sum() / ref.sum(), rtol=1e-6)
    np.testing.assert_allclose(out["mean_accuracy"], (tp / ref.sum(1)).mean(), rtol=1e-6)
    metric.reset()
    assert metric.state.to_numpy().sum() == 0
    step(metric, *batches[0])  # same shapes after reset: no retrace needed
    np.testing.assert_array_equal(metric.state.to_numpy(), _reference(batches[:1]))


def test_multimetric_with_mask_and_extra_keywords():
    batches = _batches(2, seed=1)
    metrics = nnx.MultiMetric(seg=SegmentationMetrics(C, ignore_index=IGNORE))
    for logits, labels, where in batches:
        metrics.update(logits=logits, labels=labels, mask=where, loss=jnp.float32(1.0))
    np.testing.assert_array_equal(metrics.seg.state.to_numpy(), _reference(batches))
    assert set(metrics.compute()["seg"]) == {"mean_iou", "pixel_accuracy", "mean_accuracy", "iou"}


def test_where_and_mask_combine():
    logits, labels, where = _batches(1, seed=2)[0]
    other = np.random.default_rng(3).random(labels.shape) < 0.5
    metric = SegmentationMetrics(C, ignore_index=IGNORE)
    metric.update(logits=logits, labels=labels, where=where, mask=other)
    np.testing.assert_array_equal(
        metric.state.to_numpy(), _reference([(logits, labels, where & other)])
    )


def test_merge_state_and_bad_input():
    logits, labels, where = _batches(1, seed=4)[0]
    metric = SegmentationMetrics(C, ignore_index=IGNORE)
    state = jaxseg.ConfusionMatrix.from_logits(logits, labels, ignore_index=IGNORE, where=where)
    metric.merge_state(state)
    metric.merge_state(state)
    np.testing.assert_array_equal(
        metric.state.to_numpy(), 2 * _reference([(logits, labels, where)])
    )
    with pytest.raises(ValueError, match=r"`logits` must have 3 classes.*\(2, 4\)"):
        metric.update(logits=jnp.zeros((2, 4)), labels=jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="different `num_classes`: 3 and 4"):
        metric.merge_state(jaxseg.ConfusionMatrix.empty(4, ignore_index=IGNORE))
    with pytest.raises(TypeError, match=r"`where` must be a boolean mask; got dtype int32"):
        metric.update(logits=logits, labels=labels, where=np.ones(labels.shape, np.int32))
    with pytest.raises(TypeError, match="`num_classes` must be a positive int"):
        SegmentationMetrics(2.5)


def test_flax_not_imported_by_jaxseg():
    code = "import sys, jaxseg; print('flax' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _doc_blocks():
    text = DOC.read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_docs_example_trains_and_evaluates(capsys):
    blocks = _doc_blocks()
    assert len(blocks) == 3
    ns = {"TRAIN_EPOCHS": 20}
    # user code runs with JAX's default promotion (optax's Adam mixes int and float)
    with jax.numpy_dtype_promotion("standard"):
        exec(compile(blocks[0], str(DOC), "exec"), ns)
    metric, model = ns["metric"], ns["model"]
    scores = metric.compute()
    assert float(scores["mean_iou"]) > 0.9, scores
    # the padded copies were masked out: the counts are those of the 13 images
    images, labels = ns["eval_images"], ns["eval_labels"]
    ref = _reference([(np.asarray(model(images)), labels, np.ones(labels.shape, bool))])
    np.testing.assert_array_equal(metric.state.to_numpy(), ref)
    assert ref.sum() == 13 * 15 * 16  # every labelled pixel once (row 0 is ignored)
    with jax.numpy_dtype_promotion("standard"):
        exec(compile(blocks[1], str(DOC), "exec"), ns)
    images, labels = ns["images"], ns["labels"]
    ref = _reference([(np.asarray(model(images)), labels, np.ones(labels.shape, bool))])
    np.testing.assert_array_equal(ns["metric"].state.to_numpy(), ref)
    assert "mIoU" in capsys.readouterr().out


def test_docs_clu_example_counts_every_pixel(capsys):
    pytest.importorskip("clu.metrics")
    ns: dict = {}
    exec(compile(_doc_blocks()[2], str(DOC), "exec"), ns)
    state, channel_state = ns["state"], ns["channel_state"]
    assert state.confusion.to_numpy().sum() == 3 * 4 * 8 * 8
    assert channel_state.channels.to_numpy().sum() == 3 * 4 * 8 * 8 * 2  # pixels x channels
    assert "768 1536" in capsys.readouterr().out
