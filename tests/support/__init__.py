"""Helpers shared by the test suite: CLI runners, references, generated files."""
