"""Benchmarks of the engine itself (``make bench``): results go to benchmarks/<machine>/<date>.md."""
