"""Mitigation: strategies that turn a failure view into plain action lists a twin applies."""

from harness.mitigate.strategies import STRATEGIES, Action, FailureView, plan

__all__ = ["STRATEGIES", "Action", "FailureView", "plan"]
