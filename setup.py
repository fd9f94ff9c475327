"""Install tapediff. Metadata lives in pyproject.toml; this file is for older tools."""
from setuptools import setup

setup()
