"""Benchmarks behind the provider's performance claims (see BENCHMARKS.md; run: scripts/bench.sh).

Each benchmark runs the provider and a reference side by side in one run and prints the ratio,
because the absolute speed of a shared machine drifts. Run one from the repository root::

    .venv/bin/python -m benchmarks.download [--smoke]
"""
