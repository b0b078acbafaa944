"""Benchmarks: `make bench` runs them and prints figures; they never pass or fail on a timing."""
