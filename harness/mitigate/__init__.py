"""Mitigation: strategies that turn what monitoring saw into plain action lists a twin applies."""

from harness.mitigate.strategies import STRATEGIES, Action, cannot_help, outlook, plan
from harness.monitoring import FailureView

__all__ = ["STRATEGIES", "Action", "FailureView", "cannot_help", "outlook", "plan"]
