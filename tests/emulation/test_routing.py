"""Pure tests of the controller's routing and flow modules (no switch, no root)."""

from controllers import flows, routing
from harness.topology import link_id


def ring_topo(n=4):
    routers = [{"name": f"R{i}", "dpid": i + 1, "host_ip": f"10.0.0.{i + 1}", "host_mac": f"02:a0:00:00:00:0{i + 1}",
                "host_port": 1} for i in range(n)]
    ports = {f"R{i}": 2 for i in range(n)}
    links = []
    for i in range(n):
        u, v = f"R{i}", f"R{(i + 1) % n}"
        links.append({"id": link_id(u, v), "u": u, "v": v, "u_port": ports[u], "v_port": ports[v],
                      "delay_ms": 1.0, "capacity_mbps": 10000.0, "rate_mbps": 10.0})
        ports[u] += 1
        ports[v] += 1
    return {"routers": routers, "links": links}


def test_route_table_covers_all_pairs_and_delivers_to_host_port():
    t = routing.route_table(ring_topo())
    assert len(t) == 16
    assert all(t[(r, r)] == 1 for r in ("R0", "R1", "R2", "R3"))


def test_shortest_by_delay():
    topo = ring_topo()
    # Make R0-R1 expensive: R0 reaches R1 the long way round via R3.
    for l in topo["links"]:
        if l["id"] == "R0-R1":
            l["delay_ms"] = 10.0
    p = routing.paths(topo)
    assert p[("R0", "R1")] == ["R0", "R3", "R2", "R1"]
    assert routing.route_table(topo)[("R0", "R1")] == routing.neighbour_port(topo, "R0", "R3")


def test_failover_diff_only_changes_affected_routes():
    topo = ring_topo()
    before = routing.route_table(topo)
    after = routing.route_table(topo, down={"R0-R1"})
    changed, removed = routing.diff(before, after)
    assert not removed
    assert changed[("R0", "R1")] == routing.neighbour_port(topo, "R0", "R3")
    assert ("R2", "R3") not in changed
    assert routing.paths(topo, down={"R0-R1"})[("R0", "R1")] == ["R0", "R3", "R2", "R1"]


def test_bridge_cut_removes_unreachable_pairs():
    topo = ring_topo()
    t = routing.route_table(topo, down={"R0-R1", "R2-R3"})
    assert ("R0", "R1") not in t and ("R0", "R3") in t and ("R1", "R2") in t
    _changed, removed = routing.diff(routing.route_table(topo), t)
    assert ("R0", "R1") in removed


def test_avoid_is_a_penalty_not_a_cut():
    topo = ring_topo()
    assert routing.paths(topo, avoid={"R0-R1"})[("R0", "R1")] == ["R0", "R3", "R2", "R1"]
    # avoided but the only way left: still used
    assert routing.paths(topo, down={"R0-R3"}, avoid={"R0-R1"})[("R0", "R1")] == ["R0", "R1"]


def test_down_router_takes_its_links():
    t = routing.route_table(ring_topo(), down_routers={"R1"})
    assert not any("R1" in k for k in t)
    assert t[("R0", "R2")] == routing.neighbour_port(ring_topo(), "R0", "R3")


def test_port_to_link_and_neighbour_errors():
    topo = ring_topo()
    m = routing.port_to_link(topo)
    assert m[("R0", 2)] == "R0-R1"
    try:
        routing.neighbour_port(topo, "R0", "R2")
    except KeyError as exc:
        assert "not adjacent" in str(exc)
    else:
        raise AssertionError("expected KeyError")


def test_flow_specs_are_plain_data():
    f = flows.route_flow("10.0.0.2", 3)
    assert f == {"table": flows.TABLE_ROUTE, "priority": flows.PRIO_ROUTE, "cookie": flows.COOKIE_ROUTE,
                 "match": {"eth_type": 0x0800, "ipv4_dst": "10.0.0.2"}, "actions": [("output", 3)],
                 "meter": None, "goto": None}
    bh = flows.blackhole_flow("10.0.0.2", 7)
    assert bh["actions"] == [] and bh["priority"] > f["priority"] and bh["cookie"] & 0xFFFF == 7
    wn = flows.wrong_next_hop_flow("10.0.0.2", 4, 8)
    assert wn["actions"] == [("output", 4)] and wn["match"] == f["match"]
    # table 0: host policing, 1: the router's capacity meter (only when it has one), 2: routes
    assert [b["table"] for b in flows.base_flows()] == [0, 1, 2]
    assert [b["goto"] for b in flows.base_flows()] == [flows.TABLE_CAPACITY, flows.TABLE_ROUTE, None]
    assert flows.base_flows()[1]["meter"] is None
    assert flows.base_flows(capacity=True)[1]["meter"] == flows.ROUTER_METER_ID != flows.METER_ID
    assert flows.base_flows()[2]["actions"] == []          # table-miss drops, nothing to the controller
    m = flows.meter_flow(1)
    assert m["meter"] == flows.METER_ID and m["match"] == {"in_port": 1} and m["goto"] == flows.TABLE_CAPACITY
    assert flows.meter_band(5)["rate_kbps"] == 5000
    assert flows.meter_band(2.5, flows.ROUTER_METER_ID) == {"meter_id": flows.ROUTER_METER_ID,
                                                            "rate_kbps": 2500, "burst_kb": 250}


def test_route_flows_for_one_router():
    topo = ring_topo()
    t = routing.route_table(topo)
    ips = {r["name"]: r["host_ip"] for r in topo["routers"]}
    routes = routing.by_router(t)
    assert set(routes) == {r["name"] for r in topo["routers"]}
    assert routes["R0"] == {d: p for (r, d), p in t.items() if r == "R0"}
    fl = flows.route_flows(routes["R0"], ips)
    assert len(fl) == 4
    assert {f["match"]["ipv4_dst"] for f in fl} == set(ips.values())
