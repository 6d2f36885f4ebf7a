"""Collecting and reading INT8 calibration sets."""
