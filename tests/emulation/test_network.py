"""Real emulation tests (root, Open vSwitch): bring-up, failover, partitions, shaping, teardown."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from harness.errors import ControllerError, EmulationError
from harness.twin.emulation.cleanup import cleanup, leftovers
from harness.twin.emulation.network import EmulatedNetwork
from harness.twin.emulation.probes import Probes, iperf_udp, start_udp_traffic


pytestmark = [pytest.mark.root, pytest.mark.usefixtures("need_emulation")]

RING = [("R0", "R1"), ("R1", "R2"), ("R2", "R3"), ("R3", "R0")]


@pytest.fixture(scope="module")
def ring(tmp_path_factory, graph):
    """One 4-router ring for the module (bring-up ~1.5 s); each test restores what it broke."""
    if __import__("os").geteuid() != 0:
        pytest.skip("needs root")
    net = EmulatedNetwork(graph(RING), tmp_path_factory.mktemp("ring"))
    with net:
        yield net


def test_ring_all_pairs_reachable(ring):
    ring.check_healthy()
    h = ring.client.health()
    assert h["ready"] and h["switches_connected"] == 4 and h["paths"] == 12
    assert all(v == "ok" for v in h["verified"].values())
    assert ring.fidelity["datapath"] in ("userspace", "kernel")
    assert ring.fidelity["shaping"] == "htb"
    assert json.loads((ring.run_dir / "fidelity.json").read_text()) == ring.fidelity


def test_ring_failover(ring):
    pairs = [("R0", "R1"), ("R1", "R0"), ("R0", "R2")]
    with Probes(ring, pairs) as probes:
        time.sleep(0.7)
        t_fail = time.time()
        ring.set_link("R0", "R1", up=False)
        time.sleep(1.5)
    try:
        stats = probes.results
        for pair in pairs:
            s = stats[pair]
            assert s.rate_hz >= 18, s.summary()
            assert s.received > 0.8 * s.sent, s.summary()
            gap = s.longest_gap(after=t_fail)
            assert 0 < gap < 3.0, s.summary(after=t_fail)
            # replies resumed: the last reply is recent
            assert s.replies[-1][0] > t_fail + 0.5
        h = ring.client.health()
        assert h["down_links"] == ["R0-R1"]
        assert any("R0-R1 down" in f["reason"] for f in h["failovers"])
        assert ring.client.paths()["R0>R1"] == ["R0", "R3", "R2", "R1"]
        ring.check_healthy()
    finally:
        ring.set_link("R0", "R1", up=True)
    time.sleep(0.2)
    assert ring.client.paths()["R0>R1"] == ["R0", "R1"]


def test_router_down_and_up(ring):
    ring.set_router("R2", up=False)
    try:
        time.sleep(0.3)
        reach = ring.reachability(timeout=0.5, attempts=2)
        for (s, d), ok in reach.items():
            assert ok == ("R2" not in (s, d)), (s, d, ok)
        assert ring.client.paths()["R1>R3"] == ["R1", "R0", "R3"]
    finally:
        ring.set_router("R2", up=True)
    time.sleep(0.3)
    ring.check_healthy()


def test_misconfig_and_rollback(ring):
    mid = ring.client.blackhole("R1", "R2")
    time.sleep(0.1)
    reach = ring.reachability([("R0", "R2"), ("R1", "R2"), ("R0", "R3")], timeout=0.5)
    assert reach[("R1", "R2")] is False and reach[("R0", "R3")] is True
    ring.client.rollback(mid)
    time.sleep(0.1)
    assert all(ring.reachability([("R1", "R2"), ("R0", "R2")]).values())
    with pytest.raises(ControllerError, match="unknown router"):
        ring.client.blackhole("Nowhere", "R2")


def test_shaping_limits_udp(ring):
    rate = ring.link("R0", "R1")["rate_mbps"]  # 10 Mbit/s: 10 Gbit/s × the default scale
    assert rate == pytest.approx(10.0)
    r = iperf_udp(ring, "R0", "R1", mbps=3 * rate, duration_s=2.0)
    assert 0.75 * rate <= r["received_mbps"] <= 1.1 * rate, r
    ring.shape_link("R0", "R1", 4.0)
    try:
        r = iperf_udp(ring, "R0", "R1", mbps=12, duration_s=2.0)
        assert 0.75 * 4 <= r["received_mbps"] <= 1.1 * 4, r
    finally:
        ring.restore_link("R0", "R1")


def test_port_stats_show_utilisation(ring):
    _server, client = start_udp_traffic(ring, "R0", "R1", mbps=20, duration_s=3.0, port=5202)
    time.sleep(2.6)
    ports = ring.client.ports()
    client.wait(10)
    assert ports["max_link_util"] >= 0.8, ports["max_link_util"]
    busy = [p for p in ports["ports"] if p["link"] == "R0-R1" and p["router"] == "R0"]
    assert busy and busy[0]["tx_mbps"] == pytest.approx(10, rel=0.25)


def test_mitigations_rate_limit_and_reroute(ring):
    ring.client.rate_limit("R0", 3)
    try:
        r = iperf_udp(ring, "R0", "R2", mbps=8, duration_s=1.5)
        assert r["received_mbps"] <= 3.6, r
    finally:
        ring.client.undo_mitigation("rate_limit")
    ring.client.reroute(["R0-R1"])
    assert ring.client.paths()["R0>R1"] == ["R0", "R3", "R2", "R1"]
    ring.check_healthy()
    ring.client.undo_mitigation("all")
    assert ring.client.paths()["R0>R1"] == ["R0", "R1"]
    with pytest.raises(ControllerError, match="unknown links"):
        ring.client.reroute(["R0-R9"])


def test_loss_injection_and_restore_all(ring):
    ring.add_loss("R0", "R1", 50)
    with Probes(ring, [("R0", "R1")], interval_s=0.02) as p:
        time.sleep(1.5)
    loss = p.results[("R0", "R1")].loss_pct
    assert 50 <= loss <= 95  # two crossings at 50 %: ~75 %
    ring.set_link("R2", "R3", up=False)
    ring.restore_all()
    assert ring.injected == {"down_links": [], "down_routers": [], "shaped": {}, "loss": {}, "processes": 0}
    time.sleep(0.2)
    ring.check_healthy()


def test_bridge_cut_partitions_exactly_the_far_side(tmp_path, graph):
    # A - B - C = D - E : B-C is a bridge.
    g = graph([("A", "B"), ("B", "C"), ("C", "D"), ("D", "E")])
    with EmulatedNetwork(g, tmp_path) as net:
        net.check_healthy()
        net.set_link("B", "C", up=False)
        time.sleep(0.3)
        reach = net.reachability(timeout=0.5, attempts=2)
        left, right = {"A", "B"}, {"C", "D", "E"}
        for (s, d), ok in reach.items():
            assert ok == ((s in left) == (d in left)), (s, d, ok)
        with pytest.raises(EmulationError, match="cannot reach"):
            net.check_healthy(timeout=0.3)
        net.set_link("B", "C", up=True)
        time.sleep(0.3)
        net.check_healthy()
        assert right


def test_teardown_leaves_nothing_and_cleanup_is_idempotent(tmp_path, graph):
    g = graph([("A", "B"), ("B", "C")])
    net = EmulatedNetwork(g, tmp_path)
    with net:
        prefix = net.prefix
        net.spawn("A", ["sleep", "30"])
        assert any(b.startswith(prefix) for b in leftovers()["bridges"])
    time.sleep(0.2)
    left = leftovers()
    assert not any(prefix in str(v) for v in left.values()), left
    assert prefix not in subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True).stdout
    assert prefix not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert net.controller.proc.poll() is not None
    # cleanup() removes a deliberately orphaned network, then finds nothing.
    orphan = EmulatedNetwork(g, tmp_path / "orphan", controller=False)
    orphan.start()
    orphan.add_loss("A", "B", 10)  # an nft table
    orphan.spawn("B", ["sleep", "30"])
    orphan._procs, orphan._up = [], False  # pretend the owning process died
    removed = cleanup()
    assert any(orphan.prefix in line for line in removed)
    assert any("nftables" in line for line in removed) and any("killed process" in line for line in removed)
    assert cleanup() == []
    assert not any(leftovers().values())


def test_error_during_bringup_tears_down(tmp_path, graph):
    g = graph([("A", "B")])
    net = EmulatedNetwork(g, tmp_path, ready_timeout=0.01)
    with pytest.raises(ControllerError, match="not ready|did not open its OpenFlow port"):
        net.start()
    assert not any(leftovers().values())


def test_bad_arguments_are_plain_errors(tmp_path, graph):
    g = graph([("A", "B")])
    with pytest.raises(EmulationError, match="prefix"):
        EmulatedNetwork(g, tmp_path, prefix="xyz")
    net = EmulatedNetwork(g, tmp_path, controller=False)
    with pytest.raises(EmulationError, match="no link"):
        net.link("A", "Z")
    with pytest.raises(EmulationError, match="not running"):
        net.set_link("A", "B", up=False)


def test_controller_death_is_reported(tmp_path, graph):
    with EmulatedNetwork(graph([("A", "B")]), tmp_path) as net:
        net.controller.proc.kill()
        net.controller.proc.wait()
        with pytest.raises(ControllerError, match="died"):
            net.client.health()
        with pytest.raises(ControllerError, match="died"):
            net.check_healthy()
    assert not any(leftovers().values())


SCRIPT = """
import sys, time
# A job a shell starts in the background (`make test &`) has SIGINT ignored, which this
# child would inherit (Python then never raises KeyboardInterrupt): the test sends SIGINT.
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
from conftest import contract_graph
from harness.twin.emulation.network import EmulatedNetwork
with EmulatedNetwork(contract_graph([("A", "B"), ("B", "C")]), {run_dir!r}):
    print("up", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("when", ["during bring-up", "while running"])
def test_ctrl_c_tears_down(tmp_path, when):
    import signal
    import sys
    from pathlib import Path

    code = SCRIPT.format(tests=str(Path(__file__).parent), run_dir=str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if when == "while running":
        assert p.stdout.readline().strip() == "up"
    else:
        deadline = time.time() + 10
        while not (tmp_path / "topology.json").exists() and time.time() < deadline:
            time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    assert p.returncode != 0
    assert not any(leftovers().values()), leftovers()


@pytest.mark.root
def test_a_traffic_sender_sends_its_burst_only_inside_the_event_window(tmp_path):
    """A sender's injected burst waits for its event (start file), sends inside the window
    only, and the sender still stops on SIGINT (a burst due within the sender's 1 ms send
    horizon once spun it forever, starving the datapath)."""
    import os
    import signal
    import sys

    from harness.twin.emulation import background

    if os.geteuid() != 0:
        pytest.skip("needs root (a packet socket)")
    start_file = tmp_path / "start-0"
    spec = {"iface": "lo", "src_mac": "00:00:00:00:00:02", "src_ip": "127.0.0.1", "frame": 200, "port": 19999,
            # many background flows, so packets fall due within a burst's last millisecond of waiting
            "flows": [{"dst": f"Y{k}", "dst_ip": f"127.0.1.{k}", "dst_mac": "00:00:00:00:00:03", "pps": 300}
                      for k in range(10)],
            "bursts": [{"event": 0, "dst": "X", "dst_ip": "127.0.0.2", "dst_mac": "00:00:00:00:00:01",
                        "pps": 400, "start_file": str(start_file)}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    p = subprocess.Popen([sys.executable, "-I", background.__file__, "--spec", str(tmp_path / "spec.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert b'"ready"' in p.stdout.readline()
        t0 = time.time()
        start_file.write_text(f"{t0 + 0.4:.6f} {t0 + 0.9:.6f}\n")
        time.sleep(1.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=3)
    finally:
        if p.poll() is None:     # stuck: it would hold its port and a CPU for ever
            p.kill()
            p.wait()
    res = json.loads(out.decode().strip().splitlines()[-1])
    (burst,) = res["bursts"]
    assert burst["window_s"] == pytest.approx(0.5, abs=1e-3)
    assert 0.8 * 200 <= burst["sent_packets"] <= 1.05 * 200      # 400 pps for 0.5 s, not before or after
    assert min(res["per_dst"].values()) >= 0.8 * 300 * 1.3         # the background kept going
