"""Benchmark stage: run records on disk and the comparison tables regenerated from them."""
