# Shim for the pip/setuptools on Python 3.6 (editable installs); metadata is in setup.cfg.
from setuptools import setup

setup()
