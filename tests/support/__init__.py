"""Shared test code: fixtures live in tests/conftest.py, helpers here (no test module imports another)."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
