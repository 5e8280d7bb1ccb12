"""The M1 benchmark (many classes) runs end to end at tiny shapes, so that it cannot rot."""

import json

from benchmarks import many_classes


def test_tiny_run_checks_and_writes_results(tmp_path, capsys):
    assert many_classes.main(["--tiny", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "many_classes.json").read_text())
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["jaxseg ClassCounts"]["check"] == "ok vs ConfusionMatrix"
    assert rows["numpy 4x bincount"]["check"] == "ok"
    c = result["rows"][0]["num_classes"]
    assert rows["jaxseg ClassCounts"]["state_bytes"] == (4 * c + 1) * 3 * 4
    assert rows["jaxseg ConfusionMatrix"]["state_bytes"] == (c * c + c + 1) * 3 * 4
    assert {t["target"] for t in result["targets"]} == {
        "ClassCounts >= 20x faster than ConfusionMatrix",
        "ClassCounts state <= 1 MB",
    }
    assert "| M1 |" in (tmp_path / "many_classes.md").read_text()
