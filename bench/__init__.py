"""Benchmarks and the jobs that measure: the demo, the click loop, SIMULATED shoppers, the
catalogue. Speed goals live here (JSON output, baselines measured in the same run), never in
timed tests. Nothing on the serving path imports this package."""
