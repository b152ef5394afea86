"""Code shared by several test modules; importable as ``helpers`` (tests/conftest.py puts tests/ on the path)."""
