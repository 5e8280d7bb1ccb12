"""Benchmark suite for jaxseg (run with ``python -m benchmarks.run``).

Times the confusion-matrix update and the Dice + cross-entropy training losses
against the read roof and the established peers, in one process, and writes a
Markdown table and a JSON file. See ``docs/benchmarks.md``.
"""
