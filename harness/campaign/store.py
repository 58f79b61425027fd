"""The campaign directory: the unit of truth, written atomically, checked when read.

Layout::

    DIR/spec.yaml                       the spec the campaign runs (canonical dump)
    DIR/proposals/<label>/<iter>.json   what a generator proposed in an iteration (+ its records)
    DIR/scenarios/<id>.json             accepted scenarios (with generator label and iteration)
    DIR/rejected/<id>.json              rejected scenarios with the validator's reasons
    DIR/results/<id>__<twin>__<mitigation>.json   one ScenarioResult per run
    DIR/scenarios.jsonl, DIR/rejected.jsonl       derived views, rebuilt from the files above
    DIR/results.parquet                 derived long table: scenario × twin × phase × KPI
    DIR/manifest.json                   sha256 of results.parquet and the unit count
    DIR/logs/llm.jsonl                  the model's log: every LLM attempt (prompt hash, tokens, verdict)
    DIR/logs/emulation-*/               controller logs and probe output of each emulation session

Every unit file is written to a temporary file, fsynced and renamed into place, so a campaign
killed at any moment (SIGKILL included) leaves either the whole unit or none of it; resuming
skips what exists. Each unit carries the sha256 of its body: a hand-edited or corrupt unit is
refused with a clear error, as is a ``results.parquet`` that no longer matches the manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import yaml

from harness.errors import CampaignError
from harness.fileio import atomic_write  # noqa: F401  (re-exported for report and fidelity)
from harness.scenario.model import Scenario
from harness.twin.kpi import ScenarioResult


def _digest(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class CampaignStore:
    """The campaign directory, with an in-memory index: every unit is read and checked from
    disk once (or kept as it is written), results are parsed once; the files stay the truth
    (a new store — a resume — reads them again)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._bodies: dict[str, dict] = {}
        self._results: dict[str, ScenarioResult] = {}

    # ------------------------------------------------------------------ units
    def write_unit(self, rel: str, body: dict) -> None:
        atomic_write(self.root / rel, json.dumps({"sha256": _digest(body), "body": body}, sort_keys=True))
        key = str(Path(rel))
        self._bodies[key] = json.loads(json.dumps(body, sort_keys=True))   # exactly what a read returns
        self._results.pop(key, None)

    def read_unit(self, rel: str | Path) -> dict:
        key = str(Path(rel))
        if key not in self._bodies:
            self._bodies[key] = self._read(key)
        return self._bodies[key]

    def _read(self, rel: str) -> dict:
        path = self.root / rel
        try:
            data = json.loads(path.read_text())
            body, digest = data["body"], data["sha256"]
        except (ValueError, KeyError, TypeError):
            raise CampaignError(f"{path} is corrupt (not a campaign unit); delete it and resume to redo it") from None
        if _digest(body) != digest:
            raise CampaignError(f"{path} was modified or corrupted (checksum mismatch); "
                                "delete it and resume to redo it")
        return body

    def units_under(self, folder: str) -> Iterator[dict]:
        """Every unit below ``folder``, recursively, in path order."""
        for p in sorted((self.root / folder).rglob("*.json")):
            yield self.read_unit(p.relative_to(self.root))

    def has(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def units(self, folder: str) -> Iterator[dict]:
        for p in sorted((self.root / folder).glob("*.json")):
            yield self.read_unit(p.relative_to(self.root))

    # ------------------------------------------------------------------ spec
    def write_spec(self, spec) -> None:
        atomic_write(self.root / "spec.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))

    def spec_path(self) -> Path:
        return self.root / "spec.yaml"

    # ------------------------------------------------------------------ typed helpers
    @staticmethod
    def proposal_rel(label: str, iteration: int) -> str:
        return f"proposals/{label}/{iteration:04d}.json"

    @staticmethod
    def result_rel(sid: str, twin: str, mitigation: str) -> str:
        return f"results/{sid}__{twin}__{mitigation}.json"

    def scenarios(self) -> list[dict]:
        """Accepted scenarios: ``{"label", "iteration", "scenario"}``, sorted by (iteration, label, id)."""
        rows = list(self.units("scenarios"))
        return sorted(rows, key=lambda r: (r["iteration"], r["label"], r["scenario"]["id"]))

    def rejected(self) -> list[dict]:
        return sorted(self.units("rejected"), key=lambda r: (r["iteration"], r["label"], r["scenario"].get("id", "")))

    def results(self) -> list[tuple[dict, ScenarioResult]]:
        """``(meta, result)`` per run; meta has label, iteration, mitigation."""
        out = []
        for p in sorted((self.root / "results").glob("*.json")):
            key = str(p.relative_to(self.root))
            body = self.read_unit(key)
            if key not in self._results:
                self._results[key] = ScenarioResult.model_validate(body["result"])
            out.append(({k: v for k, v in body.items() if k != "result"}, self._results[key]))
        return out

    # ------------------------------------------------------------------ derived views
    def rebuild_views(self) -> None:
        """Rewrite scenarios.jsonl, rejected.jsonl, results.parquet and the manifest from the units."""
        import pandas as pd

        scen = self.scenarios()
        atomic_write(self.root / "scenarios.jsonl", "".join(
            json.dumps({"label": r["label"], "iteration": r["iteration"], **r["scenario"]}) + "\n" for r in scen))
        atomic_write(self.root / "rejected.jsonl", "".join(json.dumps(r) + "\n" for r in self.rejected()))
        # The model's log: one line per LLM scenario attempt (prompt hash, model, seed, tokens, verdict).
        # with each scenario's verdict from the loop's own validation (the generator does not validate)
        verdicts = {r["scenario"]["id"]: (True, None) for r in scen}
        verdicts.update({r["scenario"].get("id"): (False, r["reasons"][0]["message"]) for r in self.rejected()})
        llm = []
        for body in self.units_under("proposals"):
            for rec in body.get("records", []):
                ok, why = verdicts.get(rec.get("id"), (False, rec.get("reason")))
                llm.append({"label": body["label"], "iteration": body["iteration"], **rec,
                            "accepted": ok, "reason": rec.get("reason") or why})
        if llm:
            atomic_write(self.root / "logs" / "llm.jsonl", "".join(json.dumps(r) + "\n" for r in llm))
        rows = []
        for meta, res in self.results():
            for row in res.long_rows():
                rows.append({**row, "label": meta["label"], "iteration": meta["iteration"],
                             "mitigation": meta["mitigation"]})
        cols = ["scenario_id", "label", "iteration", "twin", "mitigation", "phase", "kpi", "value"]
        df = pd.DataFrame(rows, columns=cols)
        df["value"] = df["value"].astype("float64")
        tmp = self.root / ".results.parquet.tmp"
        df.to_parquet(tmp, index=False)
        data = tmp.read_bytes()
        tmp.unlink()
        atomic_write(self.root / "results.parquet", data)
        self.write_unit("manifest.json", {"results_sha256": hashlib.sha256(data).hexdigest(), "rows": len(df),
                                          "units": len(list((self.root / 'results').glob('*.json')))})

    def results_frame(self):
        """``results.parquet``, checked against the manifest."""
        import pandas as pd

        path = self.root / "results.parquet"
        if not path.is_file():
            raise CampaignError(f"{self.root} has no results.parquet yet; run the campaign first")
        manifest = self.read_unit("manifest.json")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest["results_sha256"]:
            raise CampaignError(f"{path} does not match the campaign manifest (hand-edited or corrupt); "
                                f"rebuild it with `ani campaign run {self.root} --resume`")
        return pd.read_parquet(path)

    def verify(self) -> int:
        """Check every unit's checksum, the result count against the manifest and
        ``results.parquet`` against it (a copied campaign, say); returns the units checked."""
        units = [p for folder in UNIT_FOLDERS if (self.root / folder).is_dir()
                 for p in sorted((self.root / folder).rglob("*.json"))]
        for p in units:
            self._read(str(p.relative_to(self.root)))
        manifest = self.read_unit("manifest.json")
        found = len(list((self.root / "results").glob("*.json")))
        if manifest.get("units") is not None and manifest["units"] != found:
            raise CampaignError(f"{self.root} has {found} results where its manifest counts {manifest['units']}")
        self.results_frame()
        return len(units) + 1


#: The folders of checksummed units.
UNIT_FOLDERS = ("proposals", "scenarios", "rejected", "results")


def load_scenario(body: dict) -> Scenario:
    return Scenario.model_validate(body["scenario"])
