"""A campaign's steady-state SLA check (the spec's ``fail_on: [sla]``).

Over every result in the campaign directory (what earlier runs of a resumed campaign wrote
included), the results whose steady phase — mitigated, or failure when the run had no
mitigation (:func:`harness.twin.sla.steady_phase`) — violates a service's SLA. Plain data.
"""

from __future__ import annotations

from harness.campaign.store import CampaignStore
from harness.twin import sla


def steady_state_check(store: CampaignStore) -> dict:
    """``{"results", "unjudged", "violations"}``: how many results there are, how many carry no
    SLA verdicts (written before verdicts existed: they cannot be judged), and one record per
    result with a steady-state violation — ``label``, ``scenario_id``, ``twin``,
    ``mitigation``, ``phase`` and ``violated`` (``"service metric"`` per violated bound)."""
    results = store.results()
    out = {"results": len(results), "unjudged": sum(1 for _, r in results if not r.sla), "violations": []}
    for meta, r in results:
        bad = sla.violations(r)
        if bad:
            out["violations"].append({"label": meta.get("label"), "scenario_id": r.scenario_id, "twin": r.twin,
                                      "mitigation": meta.get("mitigation"), "phase": sla.steady_phase(r),
                                      "violated": [f"{v.service} {v.metric}" for v in bad]})
    return out
