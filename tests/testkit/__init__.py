"""Helpers the tests import by name: `from testkit.flows import write_shot`. `tests/` is on
sys.path (pyproject: pytest pythonpath), and Ray workers get it through PYTHONPATH."""
