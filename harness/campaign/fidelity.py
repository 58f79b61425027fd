"""Twin fidelity: how well the flow twin agrees with the emulation, scenario by scenario.

For every scenario run on both twins (same mitigation), in the failure phase: whether the
impacted-node sets agree exactly (and their Jaccard similarity), and the relative error of
loss, maximum link utilisation and reroute time, ``|flow - emulation| / max(|emulation|, eps)``.
:func:`calibrate` fits the flow twin's reroute-time constants to the emulation's measurements.
"""

from __future__ import annotations

import json
import statistics
import time
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


def fit_reroute(results, provenance: dict | None = None) -> dict:
    """The flow twin's reroute constants fitted to emulation results (plain data).

    From each emulation result's ``meta``: the controller's recomputes during the injection
    (``control_plane``: ``detect_ms`` from the injection to the port status, ``compute_ms``
    for the recompute and flow-mods) and the rerouted pairs timed by fast probes
    (``reroute_samples``: ``gap_ms`` and the ``switches`` on the new path).
    ``detection_ms`` and ``computation_ms`` are the medians of the controller's figures;
    ``install_per_switch_ms`` is the least-squares slope (through the origin, >= 0) of what
    the measured gap adds beyond them against the switch count. The record carries the
    samples' sizes, the model's median absolute error and ``provenance``.
    """
    detect, compute, pairs = [], [], []
    for res in results:
        if res.twin != "emulation":
            continue
        for c in res.meta.get("control_plane") or []:
            detect.append(float(c["detect_ms"]))
            compute.append(float(c["compute_ms"]))
        for p in (res.meta.get("reroute_samples") or {}).values():
            if p.get("fast") and p.get("switches"):
                pairs.append((float(p["gap_ms"]), int(p["switches"])))
    if not detect or not pairs:
        raise CampaignError("no emulation result has both the controller's recompute timings and fast-probe reroute "
                            "samples; run fiber cuts on the emulation (benchmarks/reroute_calibration.py)")
    d, c = statistics.median(detect), statistics.median(compute)
    slope = max(0.0, sum(s * (g - d - c) for g, s in pairs) / sum(s * s for _, s in pairs))
    err = statistics.median(abs(d + c + slope * s - g) for g, s in pairs)
    gaps = sorted(g for g, _ in pairs)
    return {"detection_ms": round(d, 3), "computation_ms": round(c, 3), "install_per_switch_ms": round(slope, 3),
            "fit": {"recomputes": len(detect), "pairs": len(pairs), "median_abs_error_ms": round(err, 3),
                    "gap_ms_median": round(statistics.median(gaps), 3), "gap_ms_max": round(gaps[-1], 3)},
            "provenance": dict(provenance or {})}


def calibrate(store: CampaignStore) -> RerouteModel:
    """Fit the reroute constants to a campaign's emulation runs (:func:`fit_reroute`), write
    ``calibration.json`` in the campaign directory and return the model."""
    rec = fit_reroute((res for _meta, res in store.results()),
                      {"campaign": str(store.root), "date": time.strftime("%Y-%m-%d", time.gmtime())})
    path = store.root / "calibration.json"
    atomic_write(path, json.dumps(rec, indent=2))
    return RerouteModel.from_file(path)


def load_calibration(path: str | Path) -> RerouteModel:
    """A calibration file's reroute model (:meth:`RerouteModel.from_file`)."""
    return RerouteModel.from_file(path)
