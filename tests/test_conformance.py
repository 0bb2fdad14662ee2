"""The conformance suite (``convkit.testing.conformance``) on every available backend."""

from convkit.testing.conformance import BackendConformance


class TestConformance(BackendConformance):
    """Runs with the ``backend`` fixture of ``conftest.py``: every available backend."""
