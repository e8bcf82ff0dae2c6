"""Benchmarks: each prints its measurements and ratios against a baseline measured in the same run."""
