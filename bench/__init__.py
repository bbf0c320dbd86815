"""Seabox benchmarks: each figure is printed against a peer measured in the same run."""
