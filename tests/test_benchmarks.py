"""The benchmark suite runs end to end at tiny shapes, so that it cannot rot."""

import json

import numpy as np

from benchmarks import run


def test_tiny_run_writes_checked_table_and_json(tmp_path):
    """``--tiny`` (every workload and peer row at toy shapes) runs end to end and checks out."""
    code = run.main(["--tiny", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["machine"]["backend"]
    assert result["machine"]["cpu_count"] >= 1
    rows = {(r["workload"], r["name"]): r for r in result["rows"]}
    for w in ("W1", "W3"):
        assert rows[w, "jaxseg"]["check"] == "ok"
        assert rows[w, "jaxseg"]["compile_s"] > 0
        assert rows[w, "jaxseg"]["memory_bytes"] is not None
        assert rows[w, "numpy argmax+bincount"]["check"] == "ok"
        for r in result["rows"]:
            if r["workload"] == w and "skipped" not in r and r["name"] != "read roof":
                assert r["check"] == "ok", r
    for r in result["rows"]:
        assert "MISMATCH" not in r["check"], r
    for w in ("L1", "L2", "W4"):
        assert rows[w, "jaxseg dice"]["check"].startswith("ok vs optax"), rows[w, "jaxseg dice"]
        assert rows[w, "jaxseg CE"]["check"].startswith("ok vs optax"), rows[w, "jaxseg CE"]
    # the fair-peer rows: each peer's fastest documented configuration next to its default
    for w, name in [
        ("W1", "keras MeanIoU sparse"),
        ("L1", "optax dice outside one-hot"),
        ("L1", "optax CE masked"),
        ("L1", "optax CE plain"),
    ]:
        assert (w, name) in rows, name
    # W4 (C = 1000): counts checked exactly, compile times reported, targets evaluated
    assert result["config"]["workloads"]["W4"]["num_classes"] == 1000
    assert rows["W4", "jaxseg"]["check"] == "ok"
    assert rows["W4", "jnp.argmax + from_predictions"]["check"] == "ok"
    assert rows["W4", "jaxseg dice+CE"]["compile_s"] > 0
    assert not any(name.startswith("path argmax=tree") for w, name in rows if w == "W4")
    targets = {t["target"] for t in result["targets"]}
    assert "W4: compile(jaxseg) <= 5.0 s" in targets
    assert result["config"]["mode"] == "tiny" and result["config"]["reps"] == 1
    table = (tmp_path / "results.md").read_text()
    assert "| W1 | jaxseg |" in table and "| W2 | jaxseg |" in table and "| L2 |" in table


def test_workload_data_is_cityscapes_like():
    data = run.make_data("logits", (2, 64, 64), 19)
    labels = data["labels"]
    assert data["logits"].shape == (2, 64, 64, 19) and data["logits"].dtype == np.float32
    assert 0.03 < np.mean(labels == run.IGNORE) < 0.07
    valid = labels != run.IGNORE
    agree = np.argmax(data["logits"], -1)[valid] == labels[valid]
    assert 0.6 < agree.mean() < 0.9  # a plausible trained model, not random logits


def test_targets_are_evaluated_from_medians():
    from benchmarks.timing import Timing

    rows = [
        run.Row("W1", "read roof", Timing([1.0, 1.0, 9.0])),
        run.Row("W1", "jaxseg", Timing([2.0, 3.0, 4.0], memory_bytes=2**20)),
        run.Row("W1", "keras MeanIoU", Timing([30.0])),
        run.Row("W1", "torchmetrics", skipped="not installed"),
        run.Row("W1", "keras MeanIoU sparse", Timing([12.0])),
        run.Row("L2", "jaxseg CE", Timing([1.0])),
        run.Row("L2", "optax CE masked", Timing([2.0])),
        run.Row("L2", "optax CE plain", Timing([1.0])),
        run.Row("W4", "jaxseg", Timing([1.0], compile_s=6.0)),
    ]
    targets = {t["target"]: t for t in run.evaluate_targets(rows)}
    roof = targets["W1: time(jaxseg) / time(read roof) <= 3.5"]
    assert roof["measured"] == 3.0 and roof["met"]
    assert targets["W1: time(keras MeanIoU) / time(jaxseg) >= 4.5"]["measured"] == 10.0
    # against a peer's best configuration: the fastest of its rows
    keras = targets["W1: time(best of keras MeanIoU | keras MeanIoU sparse) / time(jaxseg) >= 2.5"]
    assert keras["measured"] == 4.0 and keras["rows"] == ["keras MeanIoU sparse", "jaxseg"]
    assert keras["best"] == ["keras MeanIoU sparse"]
    compile_target = targets["W4: compile(jaxseg) <= 5.0 s"]
    assert compile_target["measured"] == 6.0 and not compile_target["met"]
    assert not any("torchmetrics" in t for t in targets)
    assert targets["W1: memory(jaxseg) <= 64 MiB"]["met"]
    assert not roof["informational"]
    l2 = targets["L2: time(jaxseg CE) / time(best of optax CE masked | optax CE plain) <= 0.8"]
    assert l2["informational"] and not l2["met"] and l2["rows"] == ["jaxseg CE", "optax CE plain"]
    table = run.markdown(rows, _info(), list(targets.values()))
    assert "no (informational)" in table
    assert ">= 2.5 (best: keras MeanIoU sparse) | 4.00 | yes |" in table


def _info():
    return {
        "backend": "cpu",
        "device_kind": "cpu",
        "cpu_count": 2,
        "jax_version": "0",
        "date": "today",
        "load_average_start": None,
    }


def test_interleaver_times_rows_round_robin():
    from benchmarks.timing import Interleaver, Timing

    order: list[str] = []
    session = Interleaver()
    timings = {}
    for name in ("a", "b", "c"):
        timings[name] = session.add(
            Timing([]),
            call=lambda name=name: order.append(name),
            sync=lambda x: x,
            reset=(lambda: order.append("reset")) if name == "b" else None,
        )
    session.run(4)  # rounds of 1 untimed + BLOCK (3) timed calls, then 1 + 1
    block = ["a"] * 4 + ["reset", "b"] * 4 + ["c"] * 4
    assert order == block + ["a"] * 2 + ["reset", "b"] * 2 + ["c"] * 2
    assert all(len(t.times) == 4 for t in timings.values())
