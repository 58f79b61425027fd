"""``ani generate``: propose scenarios with a generator, validate them, write JSONL."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from harness.cli.output import json_option, print_json
from harness.kg import kg_from_ref
from harness.errors import ConfigError, ScenarioError
from harness.fileio import atomic_write
from harness.scenario import check_scenario, write_scenarios
from harness.scenario.io import check_output
from harness.scenario.model import Scenario


class GeneratorChoice(click.Choice):
    """``click.Choice`` over the generator registry, read when first needed (the registry
    imports every generator, which the rest of the CLI does not need)."""

    def __init__(self):
        self.case_sensitive = True

    @property
    def choices(self):
        from harness.generate import generator_names

        return generator_names()


@click.command("generate")
@click.option("--topology", required=True, help="Topology NAME|FILE.")
@click.option("--generator", "name", default="llm", show_default=True,
              type=GeneratorChoice())
@click.option("--count", default=10, show_default=True, type=click.IntRange(min=1), help="Scenarios to propose.")
@click.option("--max-events", default=3, show_default=True, type=click.IntRange(min=1),
              help="Events per scenario at most.")
@click.option("--unconstrained", is_flag=True, help="LLM ablation: same prompt, no schema while decoding.")
@click.option("--no-kg", is_flag=True, help="LLM ablation: no graph context, targets by name only.")
@click.option("--feedback-from", "feedback_dir", type=click.Path(file_okay=False, exists=True),
              help="LLM: feedback from a campaign directory's results (what hurt most, what mitigation "
                   "fixed, what was rejected), in the prompt and the shortlist.")
@click.option("--screen", default=1, show_default=True, type=click.IntRange(1, 16),
              help="LLM best-of-n: N candidates per scenario, keep the most damaging valid one (flow twin).")
@click.option("--llm-url", help="OpenAI-compatible server (e.g. vLLM) http://HOST:PORT/v1; "
                                 "default: start the embedded model.")
@click.option("--model", help="Model name on that server.")
@click.option("--temperature", default=0.7, show_default=True)
@click.option("--incidents", type=click.Path(dir_okay=False), help="Incident log (JSONL) for replay and novelty.")
@click.option("--from", "parents", type=click.Path(dir_okay=False), help="Scenarios to mutate (mutate).")
@click.option("--seed", default=0, show_default=True)
@click.option("--min-valid", default=1, show_default=True, type=click.IntRange(min=0),
              help="Exit 1 when fewer valid scenarios came out (0: an ablation that may produce none).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Write scenarios (.jsonl, .json, .yaml; - is standard output, as JSONL).")
@json_option("Print the summary (validity, duplicates, diversity, novelty, files) as one JSON document.")
def generate_cmd(topology, name, count, max_events, unconstrained, no_kg, feedback_dir, screen, llm_url, model,
                 temperature, incidents, parents, seed, min_valid, output, as_json) -> None:
    """Propose COUNT scenarios, validate each, and print validity and diversity.

    Rejections (proposals the validator refused, and model outputs that could not be read
    as an event at all) are written with their reasons beside the output
    (``*.rejected.jsonl``). Exits 1 when fewer than --min-valid scenarios are valid."""
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from harness.cli.progress import progress_bar

    from harness.generate import GenState
    from harness.generate.registry import make_arm
    from harness.generate.metrics import diversity, novelty, validity_rate
    from harness.generate.replay import DEFAULT_LOG, read_incidents
    from harness.scenario import read_scenarios

    if name != "llm" and (unconstrained or no_kg or feedback_dir or screen > 1 or llm_url or model):
        raise ConfigError("--unconstrained, --no-kg, --feedback-from, --screen, --llm-url and --model apply to "
                          "--generator llm")
    if name == "mutate" and not parents:
        raise ConfigError("--generator mutate needs --from FILE (the scenarios to mutate)")
    check_output(output)
    if as_json and output == "-":
        raise ConfigError("--json prints the summary on stdout; -o - would mix the scenarios into it (give a file)")
    say = functools.partial(click.echo, err=output == "-" or as_json)   # stdout holds the data only
    kg = kg_from_ref(topology)
    state = GenState(topology=topology, max_events=max_events)
    if parents:
        state.history = [Scenario.model_validate(r) for r in read_scenarios(parents)]
    llm = dict(llm_url=llm_url, model=model, temperature=temperature) if name == "llm" else {}
    gen = make_arm(name, unconstrained=unconstrained, no_kg=no_kg, screen=screen,
                   incidents=incidents if name == "replay" else None, **llm)   # also the novelty reference
    feedback = None
    if feedback_dir:
        from harness.campaign import CampaignStore
        from harness.campaign.feedback import build_feedback

        store = CampaignStore(feedback_dir)
        feedback = build_feedback({r["scenario"]["id"]: r for r in store.scenarios()}, store.results(),
                                  store.rejected(), None)
        say(f"feedback from {feedback_dir}: {len(feedback.worst)} most damaging scenarios, "
            f"{len(feedback.fixed)} mitigations, {len(feedback.rejected)} rejections")
    proposed = 0
    valid, rejected = [], []
    try:
        with progress_bar(TextColumn(f"generate ({name})"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TimeRemainingColumn()) as bar:
            task = bar.add_task("gen", total=count)
            for i in range(count):
                for s in gen.propose(kg, state, feedback, 1, seed + i):
                    proposed += 1
                    verdict = check_scenario(kg, s)     # once per proposal
                    (valid if isinstance(verdict, Scenario) else rejected).append((s, verdict))
                    if isinstance(verdict, Scenario):
                        state.history.append(s)
                bar.update(task, completed=i + 1)
    finally:
        if hasattr(gen, "close"):
            gen.close()
    write_scenarios([s for s, _ in valid], output)
    # model outputs that never became a scenario are rejections too, with the generator's reason
    # (not the candidates a best-of-n screening set aside for a better one)
    unread = [r for r in getattr(gen, "records", [])
              if r.get("id") is None and r.get("reason") and not r.get("screened_out")]
    attempted = proposed + len(unread)
    rejected_lines = [{"scenario": s.model_dump(mode="json"), "reasons": [r.to_dict() for r in v]} for s, v in rejected]
    rejected_lines += [{"scenario": None, "record": r, "reasons": [{"index": None, "rule": "unreadable",
                                                                    "message": r["reason"]}]} for r in unread]
    rej_path = None
    if rejected_lines and output == "-":
        say(f"{len(rejected_lines)} rejected proposals (write to a file with -o to keep their reasons)")
    elif rejected_lines:
        rej_path = Path(output).with_suffix(".rejected.jsonl")
        atomic_write(rej_path, "".join(json.dumps(x) + "\n" for x in rejected_lines))
        say(f"{len(rejected_lines)} rejected proposals with reasons in {rej_path}"
            + (f" ({len(unread)} model outputs that could not be read as an event)" if unread else ""))
    d = diversity([s for s, _ in valid])
    log = read_incidents(incidents or DEFAULT_LOG)
    distinct = len({json.dumps([e.model_dump(mode="json") for e in s.events], sort_keys=True) for s, _ in valid})
    dups = f" ({distinct} distinct, {len(valid) - distinct} duplicates of earlier ones)" if distinct < len(valid) else ""
    nov = novelty([s for s, _ in valid], log)
    say(f"{len(valid)} valid of {attempted} attempted: validity {validity_rate(len(valid), attempted):.0%}{dups}")
    say(f"diversity: {d['distinct_pairs']} distinct (type, target) pairs, mean Jaccard distance "
               f"{d['mean_jaccard_distance']:.2f}, type entropy {d['type_entropy_bits']:.2f} bits; "
               f"novelty vs the incident log {nov:.0%}")
    say(f"wrote {'standard output' if output == '-' else output}")
    if as_json:
        print_json({"generator": name, "topology": topology, "valid": len(valid), "attempted": attempted,
                    "validity": validity_rate(len(valid), attempted), "distinct": distinct,
                    "duplicates": len(valid) - distinct, "rejected": len(rejected_lines),
                    "unreadable": len(unread), "diversity": d, "novelty": nov, "output": output,
                    "rejected_file": str(rej_path) if rej_path else None})
    if len(valid) < min_valid:
        raise ScenarioError(f"{len(valid)} valid scenarios, fewer than --min-valid {min_valid} "
                            f"(the reasons are in the rejections)")
