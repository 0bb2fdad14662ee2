"""convkit's conformance suite and gradient checker, run on the JAX backend."""

import pytest

from convkit.testing import check_grads
from convkit.testing.conformance import BackendConformance


class TestJax(BackendConformance):
    @pytest.fixture
    def backend(self) -> str:
        return "jax"


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_gradients(mode: str) -> None:
    check_grads(
        "jax", (2, 4, 7, 6), (6, 2, 3, 2), groups=2, stride=(2, 1), padding=2, padding_mode=mode
    )
    check_grads("jax", (1, 2, 4, 3, 4, 5), (2, 2, 2, 1, 2, 2), padding=1)
