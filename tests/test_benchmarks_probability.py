"""The probability benchmark (P1) runs end to end at tiny shapes and checks its counts."""

import json

from benchmarks import probability


def test_tiny_probability_benchmark_checks_counts_and_reports_targets(tmp_path):
    assert probability.main(["--tiny", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "probability.json").read_text())
    assert result["check"] == "ok" and result["mode"] == "tiny"
    assert set(result["rows"]) == {
        "histogram update",
        "confusion update",
        "softmax alone (floor)",
        "curves + ECE readout",
    }
    assert result["floor_ratio"] > 0
    assert all(r["median_s"] > 0 for r in result["rows"].values())
    assert [t["target"] for t in result["targets"]] == [
        "P1: time(histogram) / time(confusion) <= 2.0",
        "P1: readout <= 10 ms",
    ]
