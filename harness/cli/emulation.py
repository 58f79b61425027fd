"""``ani controller``, ``ani cleanup``, ``ani doctor``: the emulation twin's commands."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from harness.cli.output import json_option, print_json
from harness.errors import ControllerError


@click.command("controller")
@click.option("--topology", "topology_ref", required=True, help="Topology reference (e.g. topozoo/Abilene).")
@click.option("--ofp-port", type=int, default=6653, show_default=True, help="OpenFlow listen port.")
@click.option("--api-port", type=int, default=8080, show_default=True, help="JSON API port (loopback).")
@click.option("--bw-scale", type=float, default=None, help="Link rate = capacity × scale (default: the network's).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None, help="Where to write topology.json.")
def controller(topology_ref: str, ofp_port: int, api_port: int, bw_scale: float | None, run_dir: str | None) -> None:
    """Run the ani os-ken controller for a topology in the foreground (Ctrl-C stops it)."""
    from harness.topology import load_topology
    from harness.twin.emulation.controller import PROCESS_TAG, PROJECT_ROOT
    from harness.twin.emulation.network import DEFAULT_BW_SCALE, scaled_rate
    from harness.twin.emulation.plan import NetworkPlan

    graph = load_topology(topology_ref)
    made = run_dir is None                    # a directory made here is removed on the way out
    rd = Path(run_dir or tempfile.mkdtemp(prefix="ani-controller-"))
    rd.mkdir(parents=True, exist_ok=True)
    scale = bw_scale or DEFAULT_BW_SCALE
    plan = NetworkPlan.of(graph, lambda capacity: scaled_rate(capacity, scale), prefix="ani000")
    topo_file = rd / "topology.json"
    topo_file.write_text(json.dumps(plan.topology_record(), indent=1))
    click.echo(f"topology {topology_ref}: {len(plan.routers)} routers; file {topo_file}; "
               f"OpenFlow 127.0.0.1:{ofp_port}, API http://127.0.0.1:{api_port}")
    argv = [sys.executable, "-m", "controllers.run", "--topology-file", str(topo_file),
            "--ofp-port", str(ofp_port), "--api-port", str(api_port), "--tag", PROCESS_TAG]
    proc = subprocess.Popen(argv, cwd=PROJECT_ROOT)
    old = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        rc = 0
    finally:
        signal.signal(signal.SIGTERM, old)
        if proc.poll() is None:  # never leave the controller behind
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if made:
            shutil.rmtree(rd, ignore_errors=True)
    if rc not in (0, -2, -15, 130):
        raise ControllerError(f"the controller exited with code {rc}")


@click.command("cleanup")
@click.option("--vms", is_flag=True, help="Also stop every VM `ani vm up` started (they are kept otherwise).")
@json_option("Print what was removed as one JSON document.")
def cleanup(vms: bool, as_json: bool) -> None:
    """Remove every bridge, namespace, interface, nft table and process ani's emulation left, and
    what stopped or untracked VMs left (qemu processes, overlays)."""
    from harness.twin.emulation.cleanup import cleanup as do_cleanup
    from harness.vm.machine import cleanup_vms

    done = do_cleanup() + cleanup_vms(running=vms)
    if as_json:
        print_json({"removed": done})
        return
    for line in done:
        click.echo(line)
    click.echo(f"removed {len(done)} leftover(s)" if done else "nothing to clean up")


@click.command("doctor")
@json_option("Print the checks as one JSON document.")
def doctor(as_json: bool) -> None:
    """Check what the emulation twin needs; exit 1 if a required piece is missing."""
    from harness.twin.emulation.doctor import doctor as run_checks

    checks = run_checks()
    if as_json:
        print_json({"checks": [c.__dict__ for c in checks],
                    "missing": [c.name for c in checks if c.required and not c.ok]})
        raise SystemExit(1 if any(c.required and not c.ok for c in checks) else 0)
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        line = f"{mark}  {c.name:<{width}}  {c.detail}"
        if not c.ok:
            line += f"\n      {'':<{width}}  -> {c.impact}"
        click.echo(line)
    missing = [c.name for c in checks if c.required and not c.ok]
    if missing:
        click.echo(f"missing: {', '.join(missing)}", err=True)
        raise SystemExit(1)
