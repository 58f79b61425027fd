"""Digital twins: the protocol, the KPI record, and the registry (``flow``, ``emulation``)."""

from harness.twin.base import Twin, make_twin, register_twin, twin_names
from harness.twin.kpi import KPIS, PHASES, KPIRow, ScenarioResult

__all__ = ["KPIS", "PHASES", "KPIRow", "ScenarioResult", "Twin", "make_twin", "register_twin", "twin_names"]
