"""Prepared calls (convkit.plans): a repeated signature skips selection and planning,
and every input the signature covers still takes effect at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import convkit as ck
from convkit import dispatch, plans, plugins, selection
from convkit.testing import reference_conv

X = np.arange(2 * 3 * 10, dtype=np.float64).reshape(2, 3, 10)
W = np.linspace(-1.0, 1.0, 4 * 3 * 3).reshape(4, 3, 3)


def _signature(**kwargs: object) -> object:
    args = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros"}
    args.update(method="auto", backend=None, precision="highest")
    args.update(kwargs)
    return plans.key(plugins.host(), "conv", (X, W, None), tuple(args.values()))


def _no_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the full path ran")

    monkeypatch.setattr(selection, "resolve", refuse)


def test_a_repeated_call_runs_its_plan_without_selection_or_planning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = ck.conv(X, W, backend="numpy")  # the owner of the array type is known after it
    ck.conv(X, W, backend="numpy")
    assert plans.get(_signature(backend="numpy")) is not None
    _no_full_path(monkeypatch)
    again = ck.conv(X, W, backend="numpy")
    np.testing.assert_allclose(again, reference_conv(X, W), atol=1e-12)
    np.testing.assert_array_equal(again, first)


def test_each_operation_replays_its_own_results(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = np.linspace(0, 1, 16), np.array([1.0, -2.0, 0.5])
    gy = np.ones((2, 4, 8))
    calls = {
        "conv": lambda: ck.conv(X, W, np.ones(4), padding=1),
        "conv_vjp": lambda: ck.conv_vjp(X, W, gy),
        "conv_transpose": lambda: ck.conv_transpose(gy, W),
        "convolve": lambda: ck.convolve(a, b, "same"),
        "correlate": lambda: ck.correlate(a, b),
    }
    expected = {name: call() for name, call in calls.items()}
    for call in calls.values():
        call()  # leaves the plans
    _no_full_path(monkeypatch)
    for name, call in calls.items():
        got, want = call(), expected[name]
        pairs = zip(got, want, strict=True) if name == "conv_vjp" else [(got, want)]
        for g, e in pairs:
            np.testing.assert_array_equal(g, e)
    np.testing.assert_allclose(ck.convolve(a, b, "same"), np.convolve(a, b, "same"))
    np.testing.assert_allclose(ck.correlate(a, b), np.correlate(a, b, "full"))


def test_environment_and_contexts_take_effect_at_the_next_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[str] = []
    for name in ("numpy", "scipy"):
        backend = ck.checks.registered_backend(name)
        real = type(backend).conv

        def spy(self, *args, _real=real, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            ran.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(type(backend), "conv", spy)
    for _ in range(2):
        ck.conv(X, W, backend="numpy")
    monkeypatch.setenv("CONVKIT_BACKEND", "scipy")
    ck.conv(X, W)
    with ck.use_backend("numpy"):
        ck.conv(X, W)
    ck.set_backend("numpy")
    ck.conv(X, W)
    ck.set_backend(None)
    ck.conv(X, W)
    assert ran == ["numpy", "numpy", "scipy", "numpy", "numpy", "scipy"]


def test_a_threads_setting_reaches_a_planned_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from convkit import threads

    seen: list[int | None] = []
    backend = type(ck.checks.registered_backend("numpy"))
    real = backend.conv

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(threads.current())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(backend, "conv", spy)
    for _ in range(2):
        ck.conv(X, W, backend="numpy")
    ck.set_threads(1)
    ck.conv(X, W, backend="numpy")
    monkeypatch.setenv("CONVKIT_NUM_THREADS", "2")
    ck.set_threads(None)
    ck.conv(X, W, backend="numpy")
    assert seen == [None, None, 1, 2]


def test_bad_input_after_a_plan_gets_the_full_paths_errors() -> None:
    for _ in range(2):
        ck.conv(X, W, padding=1)
    with pytest.raises(ValueError, match=r"bias must have shape \(C_out,\) = \(4,\)"):
        ck.conv(X, W, np.ones(3), padding=1)
    with pytest.raises(ValueError, match=r"bogus"):
        ck.conv(X, W, padding=1, padding_mode="bogus")
    with pytest.raises(ValueError, match=r"method='fast' is not a method"):
        ck.conv(X, W, padding=1, method="fast")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=1.0),
        dict(stride=True),
        dict(groups=True),
        dict(dilation=True),
        dict(padding=1.0),
        dict(padding=(1.0,)),
        dict(padding=((True, 1),)),
    ],
    ids=str,
)
def test_arguments_equal_to_a_planned_calls_but_of_another_type_are_checked(kwargs) -> None:
    """``1.0`` and ``True`` compare equal to ``1``: a plan made with ``1`` must not
    answer for them."""
    good = {"stride": 1, "groups": 1, "dilation": 1, "padding": 1}
    for _ in range(2):
        ck.conv(X, W, **good)
    assert plans.get(_signature(**good)) is not None
    with pytest.raises((TypeError, ValueError)):
        ck.conv(X, W, **{**good, **kwargs})


@pytest.mark.parametrize("axes", [(False,), 0.0])
def test_signal_axes_of_another_type_are_checked(axes) -> None:
    a, b = np.ones(16), np.ones(3)
    for _ in range(2):
        ck.convolve(a, b, axes=(0,))
        ck.convolve(a, b, axes=0)
    with pytest.raises((TypeError, ValueError)):
        ck.convolve(a, b, axes=axes)


def test_a_call_that_raises_leaves_no_plan() -> None:
    bad = np.ones((2, 3, 2))  # shorter than the kernel
    for _ in range(2):
        with pytest.raises(ValueError):
            ck.conv(bad, W)
    signature = plans.key(
        plugins.host(), "conv", (bad, W, None), (1, 0, 1, 1, "zeros", "auto", None, "highest")
    )
    assert signature is not None and plans.get(signature) is None


def test_arrays_the_owner_cannot_describe_take_the_full_path() -> None:
    swapped = X.astype(X.dtype.newbyteorder(">"))
    as_list = X.tolist()
    for _ in range(2):
        np.testing.assert_allclose(ck.conv(swapped, W), reference_conv(X, W), atol=1e-12)
        np.testing.assert_allclose(ck.conv(as_list, W), reference_conv(X, W), atol=1e-12)
    host = plugins.host()
    args = (1, 0, 1, 1, "zeros", "auto", None, "highest")
    assert plans.key(host, "conv", (swapped, W, None), args) is None
    assert plans.key(host, "conv", (as_list, W, None), args) is None
    assert (
        plans.key(host, "conv", (X, W, None), (1, [0], 1, 1, "zeros", "auto", None, "highest"))
        is None
    )


def test_value_dependent_signal_calls_keep_the_full_path() -> None:
    a, b = np.arange(16), np.array([1, -2, 1])
    for _ in range(2):
        np.testing.assert_array_equal(ck.convolve(a, b), np.convolve(a, b))
    assert (
        plans.get(
            plans.key(plugins.host(), "convolve", (a, b), ("full", None, "auto", None, "highest"))
        )
        is None
    )


def test_a_changed_config_file_is_seen_within_the_recheck_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "convkit.toml"
    config.write_text('backend = "numpy"\n')
    for _ in range(2):
        ck.conv(X, W)
    plan = plans.get(_signature())
    assert isinstance(plan, dispatch.Plan) and plan.target.name == "numpy"
    config.write_text('backend = "scipy"   # edited\n')
    monkeypatch.setattr(plans, "FILES_RECHECK_SECONDS", 0.0)
    ck.conv(X, W)
    plan = plans.get(_signature())
    assert isinstance(plan, dispatch.Plan) and plan.target.name == "scipy"


def test_a_new_working_directory_is_a_new_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        ck.conv(X, W)
    first = plans.get(_signature())
    assert isinstance(first, dispatch.Plan) and first.target.name != "scipy"
    (tmp_path / "convkit.toml").write_text('backend = "scipy"\n')
    monkeypatch.chdir(tmp_path)  # no recheck interval: the directory is in the signature
    for _ in range(2):
        ck.conv(X, W)
    plan = plans.get(_signature())
    assert isinstance(plan, dispatch.Plan) and plan.target.name == "scipy"


def test_rates_stored_by_this_process_replan_at_once() -> None:
    from convkit import calibration
    from convkit.costs import CostModel

    for _ in range(2):
        ck.conv(X, W)
    before = _signature()
    calibration.save({"numpy:cpu": CostModel()}, {"numpy:cpu": "test"})
    assert _signature() != before and plans.get(_signature()) is None


def test_plans_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plans, "PLAN_LIMIT", 3)
    plans.clear()
    for n in range(1, 8):
        for _ in range(2):
            ck.conv(np.ones((1, 1, n + 2)), np.ones((1, 1, 3)))
    assert len(plans._plans) == 3


def test_tensors_that_need_autograd_are_a_different_signature() -> None:
    torch = pytest.importorskip("torch", reason="the tensor's autograd flag is part of its key")
    x = torch.ones(1, 1, 8, dtype=torch.float64)
    w = torch.ones(1, 1, 3, dtype=torch.float64, requires_grad=True)
    for _ in range(2):
        y = ck.conv(x, w)
    y.sum().backward()
    assert w.grad is not None and float(w.grad.sum()) == 18.0
    with torch.no_grad():
        plain = ck.conv(x, w)
    assert not plain.requires_grad
