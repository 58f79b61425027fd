"""``ani topo``: list and show topologies."""

from __future__ import annotations

import json
import textwrap

import click

from harness.cli.output import json_option, print_json_lines
from harness.topology import link_id, list_topologies, load_topology

#: Routers and links ``ani topo show`` lists before "… and N more".
SHOW = 60


@click.group()
def topo() -> None:
    """List and inspect topologies."""


@topo.command("list")
@click.option("--source", type=click.Choice(["topozoo", "caida", "sndlib", "backbone", "gabriel", "shipped"]),
              help="Only this source.")
@json_option("Print one JSON object per topology, one per line.")
def list_cmd(source: str | None, as_json: bool) -> None:
    """Names with node and link counts."""
    rows = list_topologies(source)
    if as_json:
        print_json_lines(rows)
        return
    for row in rows:
        click.echo(f"{row['name']:<40} {row['nodes']:>6} nodes {row['links']:>6} links")


@topo.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the whole topology as JSON.")
@click.option("--seed", default=0, show_default=True, help="Seed for synthetic as:N graphs.")
def show_cmd(ref: str, as_json: bool, seed: int) -> None:
    """Routers, links, delay and capacity summary, and SRLGs of NAME|FILE."""
    from harness.kg.srlg import find_srlgs
    from harness.topology.summary import summarise

    g = load_topology(ref, seed=seed)
    srlgs = find_srlgs(g)
    if as_json:
        data = {
            "name": g.graph["name"], "source": g.graph["source"], "dropped": g.graph["dropped"],
            "routers": [{"id": n, **d} for n, d in g.nodes(data=True)],
            # u, v in the id's (sorted) order, so the record never suggests the other orientation
            "links": [{"id": link_id(u, v), **d, "u": min(u, v), "v": max(u, v)} for u, v, d in g.edges(data=True)],
            "srlgs": srlgs,
        }
        click.echo(json.dumps(data, indent=2))
        return
    s = summarise(g)
    click.echo(f"{s['name']} ({s['source']}): {s['routers']} routers, {s['links']} links, diameter {s['diameter_hops']} hops")
    click.echo(f"  delay    ms   min {s['delay_min']:.3f}  mean {s['delay_mean']:.3f}  max {s['delay_max']:.3f}"
               f"   ({s['delay_from_distance']} of {s['links']} from great-circle distance)")
    click.echo(f"  capacity Mb/s min {s['cap_min']:.0f}  mean {s['cap_mean']:.0f}  max {s['cap_max']:.0f}"
               f"   ({s['cap_from_data']} of {s['links']} from the data, the rest default)")
    if g.graph["dropped"]:
        click.echo(f"  dropped (outside the largest component): {', '.join(g.graph['dropped'])}")
    routers = sorted(g.nodes)
    shown = [r if g.nodes[r].get("label", r) in (r, None) else f"{r} ({g.nodes[r]['label']})" for r in routers[:SHOW]]
    click.echo(f"  routers: {len(routers)}")
    click.echo(textwrap.fill(", ".join(shown), width=100, initial_indent="    ", subsequent_indent="    "))
    if len(routers) > SHOW:
        click.echo(f"    … and {len(routers) - SHOW} more (--json for all)")
    links = sorted(g.edges(data=True), key=lambda e: link_id(e[0], e[1]))
    click.echo(f"  links: {len(links)}   {'delay ms':>10} {'capacity Mb/s':>14}")
    for u, v, d in links[:SHOW]:
        click.echo(f"    {link_id(u, v):<40} {d['delay_ms']:>10.3f} {d['capacity_mbps']:>14.0f}")
    if len(links) > SHOW:
        click.echo(f"    … and {len(links) - SHOW} more (--json for all)")
    click.echo(f"  SRLGs: {len(srlgs)}")
    for group in srlgs[:20]:
        click.echo(textwrap.fill(f"{group['name']:<8} {group['reason']:<9} {', '.join(group['links'])}", width=100,
                                 initial_indent="    ", subsequent_indent=" " * 23))
    if len(srlgs) > 20:
        click.echo(f"    … and {len(srlgs) - 20} more (--json for all)")
