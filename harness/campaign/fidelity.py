"""Twin fidelity: how well the flow twin agrees with the emulation, scenario by scenario.

For every scenario run on both twins (same mitigation), in the failure phase: whether the
impacted-node sets agree exactly (and their Jaccard similarity), and the relative error of
loss, maximum link utilisation and reroute time, ``|flow - emulation| / max(|emulation|, eps)``.
:func:`calibrate` fits the flow twin's reroute-time constants to the emulation's measurements.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from harness.campaign.store import CampaignStore, atomic_write
from harness.errors import CampaignError
from harness.twin.flow.twin import RerouteModel

COMPARED = ("loss_pct", "max_link_util", "reroute_time_ms_max")
EPS = {"loss_pct": 1.0, "max_link_util": 0.05, "reroute_time_ms_max": 10.0}


def _rel(a, b, eps) -> float | None:
    if a is None or b is None:
        return None
    return abs(a - b) / max(abs(b), eps)


def fidelity_rows(store: CampaignStore) -> list[dict]:
    """One row per scenario run on both twins."""
    by_key: dict[tuple[str, str], dict] = {}
    for meta, res in store.results():
        by_key.setdefault((res.scenario_id, meta["mitigation"]), {})[res.twin] = (meta, res)
    rows = []
    for (sid, mitigation), twins in sorted(by_key.items()):
        if "flow" not in twins or "emulation" not in twins:
            continue
        f, e = twins["flow"][1].row("failure"), twins["emulation"][1].row("failure")
        fs, es = set(f.impacted_node_names), set(e.impacted_node_names)
        row = {"scenario_id": sid, "label": twins["flow"][0]["label"], "mitigation": mitigation,
               "impacted_flow": sorted(fs), "impacted_emulation": sorted(es), "impacted_agree": fs == es,
               "impacted_jaccard": len(fs & es) / len(fs | es) if fs | es else 1.0}
        for k in COMPARED:
            fv, ev = getattr(f, k), getattr(e, k)
            row[f"{k}_flow"], row[f"{k}_emulation"], row[f"{k}_relerr"] = fv, ev, _rel(fv, ev, EPS[k])
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {"scenarios": 0}
    out = {"scenarios": len(rows), "impacted_agree_pct": 100 * sum(r["impacted_agree"] for r in rows) / len(rows),
           "impacted_jaccard_mean": statistics.fmean(r["impacted_jaccard"] for r in rows)}
    for k in COMPARED:
        errs = [r[f"{k}_relerr"] for r in rows if r[f"{k}_relerr"] is not None]
        out[f"{k}_relerr_median"] = statistics.median(errs) if errs else None
    return out


def calibrate(store: CampaignStore, base: RerouteModel | None = None) -> RerouteModel:
    """Shift the detection constant so the flow twin's median reroute time matches the emulation's.

    Only scenarios where both twins measured a positive reroute time count. Writes
    ``calibration.json`` in the campaign directory and returns the new model.
    """
    base = base or RerouteModel()
    gaps = [r["reroute_time_ms_max_emulation"] - r["reroute_time_ms_max_flow"] for r in fidelity_rows(store)
            if (r["reroute_time_ms_max_emulation"] or 0) > 0 and (r["reroute_time_ms_max_flow"] or 0) > 0]
    if not gaps:
        raise CampaignError(f"{store.root}: no scenario has a reroute time on both twins; nothing to calibrate from")
    model = RerouteModel(detection_ms=max(0.0, base.detection_ms + statistics.median(gaps)),
                         computation_ms=base.computation_ms, install_per_switch_ms=base.install_per_switch_ms)
    atomic_write(store.root / "calibration.json", json.dumps({**asdict(model), "from_scenarios": len(gaps)}, indent=2))
    return model


def load_calibration(path: str | Path) -> RerouteModel:
    try:
        data = json.loads(Path(path).read_text())
        return RerouteModel(detection_ms=float(data["detection_ms"]), computation_ms=float(data["computation_ms"]),
                            install_per_switch_ms=float(data["install_per_switch_ms"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CampaignError(f"cannot read calibration {path}: {exc}") from None
