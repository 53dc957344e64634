"""Benchmarks: ``python -m bench`` (``make bench``) runs them all against the seed baseline."""
