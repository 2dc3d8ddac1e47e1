"""Workloads with their own loop (infer and train are the protocol's timed steps, in runner/cell.py)."""
