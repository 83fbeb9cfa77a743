"""Performance-regression testing for Python projects that live in Jenkins."""

__version__ = "0.1.0"
