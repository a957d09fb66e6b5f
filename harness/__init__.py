"""Conformance harness for the Docker Engine.

Deliberately empty of imports: refd lives in ``harness.daemon`` and every import made
here would be paid by refd's boot time, which is a benchmark.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
