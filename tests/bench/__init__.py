"""Benchmarks run by `make bench-*`: real processes on a fresh instance, wall-clock figures printed."""
