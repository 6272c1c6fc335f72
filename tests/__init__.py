"""Test package (so that test modules can share `tests.helpers`)."""
