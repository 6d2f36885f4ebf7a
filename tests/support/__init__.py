"""Shared test code: fixtures live in tests/conftest.py, helpers here (no test module imports another)."""
