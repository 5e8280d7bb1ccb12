"""The T1 benchmark runs end to end at toy shapes, so that it cannot rot."""

import pytest

pytest.importorskip("monai")


def test_tiny_topology_benchmark_runs_and_checks(capsys):
    from benchmarks import topology

    assert topology.main(["--tiny"]) == 0
    out = capsys.readouterr().out
    assert out.count("| soft_cldice_loss") == 2 and "| hausdorff_dt_loss" in out
