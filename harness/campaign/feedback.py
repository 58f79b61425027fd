"""The compact feedback summary that goes back to a generator after each iteration."""

from __future__ import annotations

from harness.generate.base import Feedback


def build_feedback(scenarios: dict[str, dict], results: list[tuple[dict, object]], rejected: list[dict],
                   label: str | None, limit: int = 5) -> Feedback:
    """What hurt most, what mitigation fixed, and what was rejected and why, for one arm
    (``label``; None: every arm).

    ``scenarios`` maps scenario id to its stored unit, ``results`` are ``(meta, result)`` of
    the flow twin, ``rejected`` the stored rejections.
    """
    rows = [(meta, res) for meta, res in results if (label is None or meta["label"] == label) and res.twin == "flow"]
    rows.sort(key=lambda mr: (-(mr[1].row("failure").loss_pct or 0), -(mr[1].row("failure").impacted_nodes or 0),
                              mr[1].scenario_id))
    worst, fixed, seen = [], [], set()
    for meta, res in rows:
        if res.scenario_id in seen:
            continue
        seen.add(res.scenario_id)
        f = res.row("failure")
        events = scenarios[res.scenario_id]["scenario"]["events"]
        why = []
        if f.unreachable_pairs:
            why.append(f"{f.unreachable_pairs} flows cut off")
        if f.cascade_depth:
            why.append(f"cascade depth {f.cascade_depth}")
        if f.congested_links:
            why.append(f"{f.congested_links} congested links")
        worst.append({"id": res.scenario_id, "events": ", ".join(f"{e['event_type']}@{e['target']}" for e in events),
                      "targets": [e["target"] for e in events],
                      "loss_pct": f.loss_pct or 0.0, "impacted_nodes": f.impacted_nodes or 0,
                      "cascade_depth": f.cascade_depth or 0, "why": "; ".join(why)})
        if "mitigated" in res.rows and (res.row("mitigated").loss_pct or 0) < (f.loss_pct or 0):
            fixed.append({"id": res.scenario_id, "strategy": res.mitigation.get("strategy", "?"),
                          "loss_before": f.loss_pct or 0.0, "loss_after": res.row("mitigated").loss_pct or 0.0})
    rej = [{"id": r["scenario"].get("id", "?"), "reason": r["reasons"][0]["message"] if r["reasons"] else "?"}
           for r in rejected if label is None or r["label"] == label][-limit:]
    return Feedback(worst=worst[:limit], fixed=fixed[:limit], rejected=rej)
