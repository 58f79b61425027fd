"""The ani os-ken application (OpenFlow 1.3): proactive delay-shortest routing, failover,
port statistics, meters, misconfiguration injection/rollback, and a JSON API on loopback.

Handlers stay thin: path computation lives in :mod:`controllers.routing`, flow building in
:mod:`controllers.flows`.  Settings come from :data:`SETTINGS` (filled by
:mod:`controllers.run` before the app starts).

The HTTP API (endpoints, JSON, status codes) is in :mod:`controllers.api`.

Router forwarding capacity: a router whose topology entry has ``capacity_mbps`` gets a
drop meter (:data:`controllers.flows.ROUTER_METER_ID`) that every packet entering its switch
passes, so traffic through the router beyond that rate is dropped (a policer: no queueing).
"""

from __future__ import annotations

import json
import logging
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from controllers import api, flows, routing

LOG = logging.getLogger("ani.controller")

#: Filled in by controllers.run: topology_file, api_port, stats_interval.
SETTINGS: dict = {"topology_file": None, "api_port": 0, "stats_interval": 1.0}


class AniController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with open(SETTINGS["topology_file"]) as fh:
            self.topo = json.load(fh)
        self.lock = threading.RLock()
        self.by_dpid = {r["dpid"]: r for r in self.topo["routers"]}
        self.by_name = {r["name"]: r for r in self.topo["routers"]}
        self.host_ips = {r["name"]: r["host_ip"] for r in self.topo["routers"]}
        self.port_link = routing.port_to_link(self.topo)
        self.link_rate = {l["id"]: float(l.get("rate_mbps") or l.get("capacity_mbps") or 0)
                          for l in self.topo["links"]}
        self.datapaths = {}          # dpid -> datapath
        self.ready = set()           # dpids whose initial flows are confirmed (barrier)
        self.verified = {}           # router -> "ok" | problem
        self.port_down = set()       # (router, port) reported down
        self.down_routers = set()
        self.avoid = set()
        self.table = routing.route_table(self.topo)
        self.routes = routing.by_router(self.table)   # router -> {dst: port}
        self._paths = None                            # GET /paths, cached until a recompute
        self.failovers = []
        self.misconfigs = {}         # id -> record
        self.next_misconfig = 1
        self.rate_limits = {}        # router -> mbps
        self.capacity_nominal = {r["name"]: float(r["capacity_mbps"]) for r in self.topo["routers"]
                                 if r.get("capacity_mbps")}
        self.capacity = dict(self.capacity_nominal)   # router -> current forwarding capacity
        self.meter_stats = {}        # router -> {t, packets_in, bytes_in, dropped_packets, dropped_bytes}
        self.stats = {}              # (router, port) -> {t, rx_bytes, tx_bytes, tx_mbps, rx_mbps}
        self.started = time.time()
        self._wire_cache = {}
        self.stats_thread = hub.spawn(self._poll_stats)
        self.httpd = api.start(self, int(SETTINGS.get("api_port") or 0))

    # ---- switch life cycle ----------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_features(self, ev):
        dp = ev.msg.datapath
        router = self.by_dpid.get(dp.id)
        if router is None:
            LOG.warning("unknown switch dpid=%s connected; ignoring it", dp.id)
            return
        with self.lock:
            self.datapaths[dp.id] = dp
            self.ready.discard(dp.id)
            name = router["name"]
            if name in self.capacity:   # the meter must exist before the flow that uses it
                self._set_meter(dp, flows.ROUTER_METER_ID, self.capacity[name], replace=False)
            self._send_flows(dp, flows.base_flows(capacity=name in self.capacity)
                             + flows.route_flows(self.routes.get(name, {}), self.host_ips))
            if name in self.rate_limits:
                self._install_meter(dp, router, self.rate_limits[name])
            for rec in self.misconfigs.values():
                if rec["router"] == name:
                    self._send_flow(dp, rec["flow"])
            parser = dp.ofproto_parser
            dp.send_msg(parser.OFPPortDescStatsRequest(dp, 0))
            dp.send_msg(parser.OFPBarrierRequest(dp))
        LOG.info("switch %s (dpid %d) connected", name, dp.id)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def on_barrier(self, ev):
        with self.lock:
            self.ready.add(ev.msg.datapath.id)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def on_dead(self, ev):
        dp = ev.datapath
        with self.lock:
            if dp.id is not None and self.datapaths.get(dp.id) is dp:
                del self.datapaths[dp.id]
                self.ready.discard(dp.id)
                LOG.info("switch dpid %s disconnected", dp.id)

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def on_port_desc(self, ev):
        dp = ev.msg.datapath
        router = self.by_dpid[dp.id]["name"]
        ofp = dp.ofproto
        seen = {}
        for p in ev.msg.body:
            seen[p.port_no] = bool(p.state & ofp.OFPPS_LINK_DOWN or p.config & ofp.OFPPC_PORT_DOWN)
        expected = {self.by_name[router]["host_port"]} | {port for (r, port) in self.port_link if r == router}
        missing = sorted(expected - set(seen))
        with self.lock:
            self.verified[router] = "ok" if not missing else f"missing ports {missing}"
            changed = False
            for port, down in seen.items():
                if (router, port) in self.port_link:
                    changed |= self._set_port(router, port, down)
            if changed:
                self._recompute(f"port description of {router}")

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def on_port_status(self, ev):
        t_event = time.time()
        msg = ev.msg
        dp = msg.datapath
        ofp = dp.ofproto
        router = self.by_dpid.get(dp.id, {}).get("name")
        port = msg.desc.port_no
        if router is None or (router, port) not in self.port_link:
            return
        down = bool(msg.reason == ofp.OFPPR_DELETE or msg.desc.state & ofp.OFPPS_LINK_DOWN
                    or msg.desc.config & ofp.OFPPC_PORT_DOWN)
        with self.lock:
            if self._set_port(router, port, down):
                self._recompute(f"{self.port_link[(router, port)]} {'down' if down else 'up'} "
                                f"(port {port} of {router})", t_event)

    # ---- routing ------------------------------------------------------------------
    def _set_port(self, router, port, down) -> bool:
        """Record a port state; True if the *link* state changed."""
        lid = self.port_link[(router, port)]
        before = self._down_links()
        if down:
            self.port_down.add((router, port))
        else:
            self.port_down.discard((router, port))
        return (lid in before) != (lid in self._down_links())

    def _down_links(self) -> set:
        return {self.port_link[k] for k in self.port_down}

    def _recompute(self, reason: str, t_event: float | None = None) -> None:
        t_event = t_event or time.time()
        new = routing.route_table(self.topo, self._down_links(), self.avoid, self.down_routers)
        changed, removed = routing.diff(self.table, new)
        self.table = new
        self.routes = routing.by_router(new)
        self._paths = None
        per_switch = {}
        for (router, dst), port in changed.items():
            per_switch.setdefault(router, []).append(flows.route_flow(self.host_ips[dst], port))
        for router, specs in per_switch.items():
            dp = self.datapaths.get(self.by_name[router]["dpid"])
            if dp is not None:
                self._send_flows(dp, specs)
        for router, dst in removed:
            dp = self.datapaths.get(self.by_name[router]["dpid"])
            if dp is not None:
                self._delete_flow(dp, flows.route_flow(self.host_ips[dst], 0))
        t_done = time.time()
        rec = {"reason": reason, "t_event": t_event, "t_installed": t_done,
               "compute_ms": round((t_done - t_event) * 1000, 3),
               "flows_changed": len(changed), "flows_removed": len(removed)}
        self.failovers.append(rec)
        del self.failovers[:-200]
        LOG.info("recomputed routes: %s; %d flows changed, %d removed in %.1f ms",
                 reason, len(changed), len(removed), rec["compute_ms"])

    # ---- flow helpers (spec dict -> OpenFlow) ----------------------------------------
    def _flow_mod(self, dp, s, command):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = []
        if s.get("meter"):
            inst.append(parser.OFPInstructionMeter(s["meter"], ofp.OFPIT_METER))
        actions = [parser.OFPActionOutput(port) for kind, port in s["actions"] if kind == "output"]
        if actions:
            inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
        if s.get("goto") is not None:
            inst.append(parser.OFPInstructionGotoTable(s["goto"]))
        return parser.OFPFlowMod(
            datapath=dp, cookie=s["cookie"], table_id=s["table"], command=command,
            priority=s["priority"], match=parser.OFPMatch(**s["match"]), instructions=inst,
            out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY)

    def _wire(self, dp, s) -> bytes:
        # Flow mods are identical across switches except for the xid: serialise each distinct
        # spec once (os-ken's encoder costs ~0.4 ms a message; a 143-switch network needs 20k).
        key = (s["table"], s["priority"], s["cookie"], tuple(sorted(s["match"].items())),
               tuple(s["actions"]), s["meter"], s["goto"])
        buf = self._wire_cache.get(key)
        if buf is None:
            msg = self._flow_mod(dp, s, dp.ofproto.OFPFC_ADD)
            msg.xid = 0
            msg.serialize()
            buf = self._wire_cache[key] = bytes(msg.buf)
        return buf

    def _send_flow(self, dp, s):
        dp.send(self._wire(dp, s))

    def _send_flows(self, dp, specs):
        """Many flow mods in one write (OpenFlow is a stream of messages)."""
        dp.send(b"".join(self._wire(dp, s) for s in specs))

    def _delete_flow(self, dp, s):
        dp.send_msg(self._flow_mod(dp, dict(s, actions=[], meter=None, goto=None),
                                   dp.ofproto.OFPFC_DELETE_STRICT))

    def _set_meter(self, dp, meter_id, mbps, replace=True):
        """(Re)create drop meter ``meter_id`` at ``mbps``; ``replace=False`` on a fresh switch."""
        ofp, parser = dp.ofproto, dp.ofproto_parser
        band = flows.meter_band(mbps, meter_id)
        bands = [parser.OFPMeterBandDrop(rate=band["rate_kbps"], burst_size=band["burst_kb"])]
        flags = ofp.OFPMF_KBPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS
        if replace:
            dp.send_msg(parser.OFPMeterMod(dp, ofp.OFPMC_MODIFY, flags, meter_id, bands))
        else:
            dp.send_msg(parser.OFPMeterMod(dp, ofp.OFPMC_DELETE, 0, meter_id, []))
            dp.send_msg(parser.OFPMeterMod(dp, ofp.OFPMC_ADD, flags, meter_id, bands))

    def _install_meter(self, dp, router, mbps):
        self._set_meter(dp, flows.METER_ID, mbps, replace=False)
        self._send_flow(dp, flows.meter_flow(router["host_port"]))

    def _remove_meter(self, dp, router):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self._delete_flow(dp, flows.meter_flow(router["host_port"]))
        dp.send_msg(parser.OFPMeterMod(dp, ofp.OFPMC_DELETE, 0, flows.METER_ID, []))

    # ---- statistics -------------------------------------------------------------------
    def _poll_stats(self):
        while True:
            hub.sleep(float(SETTINGS.get("stats_interval") or 1.0))
            with self.lock:
                dps = list(self.datapaths.values())
            for dp in dps:
                try:
                    dp.send_msg(dp.ofproto_parser.OFPPortStatsRequest(dp, 0, dp.ofproto.OFPP_ANY))
                    if self.by_dpid.get(dp.id, {}).get("name") in self.capacity:
                        dp.send_msg(dp.ofproto_parser.OFPMeterStatsRequest(dp, 0, flows.ROUTER_METER_ID))
                except Exception as exc:  # a dying switch must not stop polling
                    LOG.debug("stats request to %s failed: %s", dp.id, exc)

    @set_ev_cls(ofp_event.EventOFPMeterStatsReply, MAIN_DISPATCHER)
    def on_meter_stats(self, ev):
        now = time.time()
        router = self.by_dpid.get(ev.msg.datapath.id, {}).get("name")
        with self.lock:
            for st in ev.msg.body:
                if router is None or st.meter_id != flows.ROUTER_METER_ID:
                    continue
                self.meter_stats[router] = {
                    "t": now, "packets_in": st.packet_in_count, "bytes_in": st.byte_in_count,
                    "dropped_packets": sum(b.packet_band_count for b in st.band_stats),
                    "dropped_bytes": sum(b.byte_band_count for b in st.band_stats)}

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def on_port_stats(self, ev):
        now = time.time()
        router = self.by_dpid.get(ev.msg.datapath.id, {}).get("name")
        if router is None:
            return
        with self.lock:
            for st in ev.msg.body:
                key = (router, st.port_no)
                prev = self.stats.get(key)
                rec = {"t": now, "rx_bytes": st.rx_bytes, "tx_bytes": st.tx_bytes,
                       "rx_packets": st.rx_packets, "tx_packets": st.tx_packets,
                       "tx_dropped": st.tx_dropped, "tx_mbps": 0.0, "rx_mbps": 0.0}
                if prev and now > prev["t"]:
                    dt = now - prev["t"]
                    rec["tx_mbps"] = max(0.0, (st.tx_bytes - prev["tx_bytes"]) * 8 / dt / 1e6)
                    rec["rx_mbps"] = max(0.0, (st.rx_bytes - prev["rx_bytes"]) * 8 / dt / 1e6)
                self.stats[key] = rec

    # ---- API operations (called from controllers.api's HTTP threads) ----------------------
    def health(self) -> dict:
        with self.lock:
            connected = sorted(self.by_dpid[d]["name"] for d in self.datapaths)
            return {
                "switches_expected": len(self.by_dpid),
                "switches_connected": len(self.datapaths),
                "switches_ready": len(self.ready & set(self.datapaths)),
                "ready": len(self.ready & set(self.datapaths)) == len(self.by_dpid),
                "connected": connected,
                "verified": dict(self.verified),
                "routes_installed": sum(1 for (r, _d) in self.table
                                        if self.by_name[r]["dpid"] in self.datapaths),
                "paths": len([k for k in self.table if k[0] != k[1]]),
                "down_links": sorted(self._down_links()),
                "avoid": sorted(self.avoid),
                "rate_limits": dict(self.rate_limits),
                "router_capacity": dict(self.capacity),
                "router_capacity_changed": {r: c for r, c in self.capacity.items()
                                            if c != self.capacity_nominal.get(r)},
                "misconfigs": [{k: v for k, v in m.items() if k != "flow"} for m in self.misconfigs.values()],
                "failovers": list(self.failovers),
                "uptime_s": round(time.time() - self.started, 3),
            }

    def ports(self) -> dict:
        with self.lock:
            out = []
            for (router, port), st in sorted(self.stats.items()):
                lid = self.port_link.get((router, port))
                rate = self.link_rate.get(lid) if lid else None
                out.append(dict(st, router=router, port=port, link=lid,
                                util=(st["tx_mbps"] / rate) if rate else None))
            util = [p["util"] for p in out if p["util"] is not None]
            return {"ports": out, "max_link_util": max(util) if util else 0.0}

    def meters(self) -> dict:
        with self.lock:
            return {"meters": {r: dict(m, capacity_mbps=self.capacity.get(r))
                               for r, m in sorted(self.meter_stats.items())}}

    def set_capacity(self, body: dict) -> dict:
        """Set one router's forwarding capacity, or restore one / every router's nominal one."""
        with self.lock:
            if body.get("router") is None:
                if "mbps" in body:
                    raise ValueError("'mbps' needs a 'router'")
                names = list(self.capacity_nominal)
            else:
                names = [self._router(body["router"])["name"]]
                if names[0] not in self.capacity_nominal:
                    raise ValueError(f"router {names[0]!r} has no forwarding capacity in the topology")
            for name in names:
                mbps = float(body["mbps"]) if "mbps" in body else self.capacity_nominal[name]
                if mbps <= 0:
                    raise ValueError("'mbps' must be positive")
                if self.capacity[name] == mbps:
                    continue
                self.capacity[name] = mbps
                dp = self.datapaths.get(self.by_name[name]["dpid"])
                if dp is not None:
                    self._set_meter(dp, flows.ROUTER_METER_ID, mbps)
            return {"ok": True, "router_capacity": {n: self.capacity[n] for n in names}}

    def current_paths(self) -> dict:
        with self.lock:
            if self._paths is None:     # cached until the next recompute
                p = routing.paths(self.topo, self._down_links(), self.avoid, self.down_routers)
                self._paths = {f"{s}>{d}": path for (s, d), path in sorted(p.items())}
            return self._paths

    def mitigation(self, body: dict) -> dict:
        action = body.get("action")
        with self.lock:
            if action == "rate_limit":
                router = self._router(body.get("router"))
                mbps = float(body.get("mbps", 0))
                if mbps <= 0:
                    raise ValueError("rate_limit needs a positive 'mbps'")
                self.rate_limits[router["name"]] = mbps
                dp = self.datapaths.get(router["dpid"])
                if dp is not None:
                    self._install_meter(dp, router, mbps)
                return {"ok": True, "rate_limits": dict(self.rate_limits)}
            if action == "reroute":
                avoid = body.get("avoid") or []
                known = {l["id"] for l in self.topo["links"]}
                bad = [a for a in avoid if a not in known]
                if bad:
                    raise ValueError(f"unknown links to avoid: {bad}")
                self.avoid = set(avoid)
                self._recompute(f"reroute avoiding {sorted(self.avoid)}")
                return {"ok": True, "avoid": sorted(self.avoid)}
            if action == "undo":
                what = body.get("what", "all")
                if what in ("rate_limit", "all"):
                    names = [body["router"]] if body.get("router") else list(self.rate_limits)
                    for name in names:
                        router = self._router(name)
                        self.rate_limits.pop(name, None)
                        dp = self.datapaths.get(router["dpid"])
                        if dp is not None:
                            self._remove_meter(dp, router)
                if what in ("reroute", "all") and self.avoid:
                    self.avoid = set()
                    self._recompute("reroute undone")
                return {"ok": True}
            raise ValueError(f"unknown mitigation action {action!r} (rate_limit, reroute, undo)")

    def misconfig(self, body: dict) -> dict:
        kind = body.get("kind")
        with self.lock:
            router = self._router(body.get("router"))
            dst = self._router(body.get("dst"))
            mid = self.next_misconfig
            if kind == "blackhole":
                flow = flows.blackhole_flow(dst["host_ip"], mid)
            elif kind == "wrong_next_hop":
                via = self._router(body.get("via"))
                try:
                    port = routing.neighbour_port(self.topo, router["name"], via["name"])
                except KeyError as exc:
                    raise ValueError(str(exc).strip("'")) from None
                flow = flows.wrong_next_hop_flow(dst["host_ip"], port, mid)
            else:
                raise ValueError(f"unknown misconfiguration {kind!r} (blackhole, wrong_next_hop)")
            self.next_misconfig += 1
            rec = {"id": mid, "kind": kind, "router": router["name"], "dst": dst["name"],
                   "via": body.get("via"), "t": time.time(), "flow": flow}
            self.misconfigs[mid] = rec
            dp = self.datapaths.get(router["dpid"])
            if dp is not None:
                self._send_flow(dp, flow)
            return {"ok": True, "id": mid}

    def rollback(self, mid: int | None = None) -> dict:
        with self.lock:
            ids = [mid] if mid is not None else list(self.misconfigs)
            done = []
            for i in ids:
                rec = self.misconfigs.pop(i, None)
                if rec is None:
                    continue
                dp = self.datapaths.get(self.by_name[rec["router"]]["dpid"])
                if dp is not None:
                    self._delete_flow(dp, rec["flow"])
                done.append(i)
            return {"ok": True, "rolled_back": done}

    def _router(self, name):
        if name not in self.by_name:
            raise ValueError(f"unknown router {name!r}")
        return self.by_name[name]
