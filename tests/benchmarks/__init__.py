"""Benchmarks, run by hand or by ``make bench``; pytest does not collect them."""
