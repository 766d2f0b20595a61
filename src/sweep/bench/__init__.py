"""Benchmarks (not tests): ``python -m sweep.bench.speed`` times the seed shot against Deepwave."""
