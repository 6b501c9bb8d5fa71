"""Benchmarks. Speed goals live here (JSON output, baselines measured in the same run), never in
timed tests."""
