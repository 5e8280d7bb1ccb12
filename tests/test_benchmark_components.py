"""The O1 benchmark (connected components) runs end to end at tiny shapes and checks out."""

import json

import pytest

pytest.importorskip("scipy.ndimage")


def test_tiny_components_benchmark_writes_checked_rows(tmp_path):
    from benchmarks import components

    assert components.main(["--tiny", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "components.json").read_text())
    ours = [r for r in result["rows"] if r["name"] == "jaxseg"]
    assert len(ours) == 4  # 2-D batch and 3-D volume, connectivity 1 and full
    assert all(r["check"] == "ok: equal to SciPy" and r["compile_s"] > 0 for r in ours)
    assert {t["target"].split(" [")[0] for t in result["targets"]} >= {"O1 blobs c=1"}
    assert "| O1 blobs c=3 | [8, 8, 8] | jaxseg |" in (tmp_path / "components.md").read_text()
