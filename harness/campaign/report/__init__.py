"""Campaign reports an engineer reads: static HTML under ``DIR/report``.

``report.html`` (the index, figures inline): the worst scenarios ranked with why (events,
failed and congested elements, services hit, cascade), the most damaging one on the map,
generators and ablations, impact distribution, mitigation effectiveness, best impact vs
evaluations, Table 2, twin fidelity, rejected proposals per arm, and every scenario linked to
its own page. ``scenarios/<id>.html``: events, maps per twin, KPIs per phase on each twin,
per-event timeline, mitigation and its effect or why no action can help, and a warning
wherever the twins disagree. CSVs beside them hold the same tables for machines.

:mod:`.data` holds the content as plain data, :mod:`.figures` the plots, :mod:`.html` the
page shell and tables, :mod:`.pages` the scenario pages, :mod:`.build` the index.
"""

from harness.campaign.report.build import SECTIONS, TABLE2_KPIS, build_report, scenario_type

__all__ = ["SECTIONS", "TABLE2_KPIS", "build_report", "scenario_type"]
