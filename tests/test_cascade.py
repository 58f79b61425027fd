"""The shared Motter–Lai tripping rule (harness.twin.cascade), as plain data."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.twin.cascade import DEFAULT_ALPHA, CascadeRule


def test_tolerance_is_motter_lai_capped_by_capacity():
    rule = CascadeRule(alpha=0.5)
    # (1 + alpha) x baseline below capacity: Motter-Lai decides
    assert rule.tolerance(40.0, 100.0) == pytest.approx(60.0)
    # above capacity: the physical capacity decides (a degraded link)
    assert rule.tolerance(40.0, 50.0) == pytest.approx(50.0)
    # never below the baseline load: an element overloaded before any event does not trip
    assert rule.tolerance(120.0, 100.0) == pytest.approx(120.0)
    assert rule.tripped({"x": 120.0}, {"x": 120.0}, {"x": 100.0}) == []
    # idle in the baseline (a backup path): its capacity
    assert rule.tolerance(0.0, 100.0) == pytest.approx(100.0)


def test_alpha_changes_what_trips():
    base, load, cap = {"a": 40.0, "b": 10.0}, {"a": 70.0, "b": 25.0}, {"a": 100.0, "b": 100.0}
    assert CascadeRule(alpha=0.5).tripped(base, load, cap) == ["a", "b"]
    assert CascadeRule(alpha=1.0).tripped(base, load, cap) == ["b"]
    assert CascadeRule(alpha=2.0).tripped(base, load, cap) == []


def test_an_element_at_or_below_its_tolerance_never_trips():
    rng = np.random.default_rng(0)
    for alpha in (0.0, 0.25, DEFAULT_ALPHA, 3.0):
        rule = CascadeRule(alpha=alpha)
        base = rng.uniform(0, 100, 2000)
        cap = rng.uniform(1, 200, 2000)
        tol = rule.tolerance(base, cap)
        load = tol * rng.uniform(0, 1, 2000)
        assert not rule.over(base, load, cap).any()
        assert not rule.over(base, tol, cap).any()          # exactly at it: no trip
        assert rule.over(base, tol * 1.001 + 1e-6, cap).all()


def test_measurement_floor():
    rule = CascadeRule(alpha=1.0, min_mbps=0.05)
    # a load at or below the floor never trips; a baseline at or below it is idle (capacity)
    assert rule.tripped({"x": 0.01}, {"x": 0.05}, {"x": 100.0}) == []
    assert rule.tripped({"x": 0.01}, {"x": 50.0}, {"x": 100.0}) == []
    assert rule.tripped({"x": 0.01}, {"x": 101.0}, {"x": 100.0}) == ["x"]
    assert rule.tripped({"x": 1.0}, {"x": 2.5}, {"x": 100.0}) == ["x"]
    # elements missing from the baseline are idle, missing from the capacities unbounded
    assert rule.tripped({}, {"y": 1e9}, {}) == []


@pytest.mark.parametrize("kw", [{"alpha": -0.1}, {"alpha": float("nan")}, {"min_mbps": -1},
                                {"max_rounds": -1}, {"max_rounds": 1.5}])
def test_bad_parameters_are_refused(kw):
    with pytest.raises(ConfigError):
        CascadeRule(**kw)
