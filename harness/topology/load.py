"""Topology loaders: every source becomes one plain, annotated ``networkx.Graph``.

The graph every loader returns (the *topology contract* the rest of ani reads):

graph attributes
    ``name`` (the reference it was loaded from), ``source`` (``topohub``, ``graphml``,
    ``gml``, ``as-rel``, ``synthetic``), ``dropped`` (names of routers removed because
    they were outside the largest connected component).
node key
    the router id: ASCII letters, digits and ``_`` only, unique, derived from the
    data's own name (``"New York"`` -> ``NewYork``; a repeated name gets ``_2``, ``_3``…).
    Because ids never contain ``-``, a link id ``A-B`` is unambiguous.
node attributes
    ``label`` (the original name), ``lat``/``lon`` (degrees, or ``None``).
edge attributes
    ``dist_km`` (great-circle length, or ``None``), ``delay_ms`` (propagation delay),
    ``delay_source`` (``distance`` | ``default`` | ``synthetic``), ``capacity_mbps``,
    ``capacity_source`` (``data`` | ``default``), ``conduit`` (a conduit/duct name from
    the file, or ``None``), ``parallel`` (how many parallel edges were collapsed).

Documented defaults
    * delay: ``dist_km * 0.005`` ms (light in fibre ~5 us/km), at least
      :data:`MIN_DELAY_MS`; without coordinates :data:`DEFAULT_DELAY_MS`.
      Synthetic ``as:N`` graphs draw delays uniformly from :data:`SYNTHETIC_DELAY_MS`
      with the given seed.
    * capacity: from ``LinkSpeedRaw`` (bit/s) or ``LinkSpeed`` × ``LinkSpeedUnits``
      where the file has them, else :data:`DEFAULT_CAPACITY_MBPS` (10 GbE, the commonest
      backbone interface speed in Topology Zoo where speeds are given).
    * parallel edges collapse into one link: capacities add up (a bundle), the
      shortest delay wins.
"""

from __future__ import annotations

import difflib
import json
import logging
import random
import re
import unicodedata
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import networkx as nx

from harness.errors import TopologyError
from harness.topology.geo import FIBRE_MS_PER_KM, haversine_km

log = logging.getLogger(__name__)

DEFAULT_CAPACITY_MBPS = 10_000.0
DEFAULT_DELAY_MS = 1.0
MIN_DELAY_MS = 0.05
SYNTHETIC_DELAY_MS = (1.0, 20.0)
TOPOHUB_SOURCES = ("topozoo", "caida", "sndlib", "backbone", "gabriel")
#: Where the project's own small, hand-checked topologies live.
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "topologies"
_UNITS = {"": 1e-6, "k": 1e-3, "K": 1e-3, "M": 1.0, "G": 1e3, "T": 1e6}


def link_id(u: str, v: str) -> str:
    """The canonical id of the link between routers ``u`` and ``v`` (``A-B``, sorted)."""
    a, b = sorted((u, v))
    return f"{a}-{b}"


def slug(name: object, fallback: str) -> str:
    """An ASCII identifier from a free-form name (letters, digits, ``_``)."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9_]+", "", text.title() if " " in text else text)
    return text or fallback


def load_topology(ref: str | Path, *, seed: int = 0) -> nx.Graph:
    """Load a topology by reference and return the annotated graph (see module doc).

    ``ref`` is one of: a file path (``.graphml``, ``.gml``, or CAIDA ``as1|as2|rel``
    text), the stem of a file shipped in ``topologies/`` (``ring6``), a topohub key
    (``topozoo/Abilene``, ``caida/3356``, ``sndlib/polska``, ``backbone/world``), or
    ``as:N`` for a seeded synthetic AS-like graph of N nodes.

    Raises
    ------
    TopologyError
        unknown name (closest names suggested), missing or malformed file, empty graph.
    """
    text = str(ref).strip()
    if not text:
        raise TopologyError("empty topology reference")
    path = Path(text)
    if m := re.fullmatch(r"as:(\d+)", text):
        g = _synthetic_as(int(m.group(1)), seed)
    elif path.is_file():
        g = _load_file(path)
    elif (shipped := _shipped(text)) is not None:
        g = _load_file(shipped)
    elif text.split("/", 1)[0] in TOPOHUB_SOURCES:
        g = _load_topohub(text)
    elif path.suffix or "/" in text or "\\" in text:
        raise TopologyError(f"topology file not found: {text}")
    else:
        raise TopologyError(_unknown_message(text))
    g.graph["name"] = text
    return _finish(g)


# --------------------------------------------------------------------------- sources

def _shipped(name: str) -> Path | None:
    if not re.fullmatch(r"[A-Za-z0-9_.]+", name):
        return None
    for ext in (".graphml", ".gml", ".txt"):
        p = SHIPPED_DIR / f"{name}{ext}"
        if p.is_file():
            return p
    return None


def _topohub_key(name: str) -> str:
    """Map a user key to a topohub key (``caida/3356`` -> ``caida/2024-08/3356``)."""
    parts = name.split("/")
    if parts[0] == "caida" and len(parts) == 2:
        dated = sorted(k for k in topohub_keys() if k.startswith("caida/") and k.endswith("/" + parts[1]))
        if dated:
            return dated[-1]
    return name


def _load_topohub(name: str) -> nx.Graph:
    import topohub

    key = _topohub_key(name)
    try:
        data = topohub.get(key)
    except (KeyError, FileNotFoundError, OSError):
        raise TopologyError(_unknown_message(name)) from None
    raw = nx.node_link_graph(data, edges="edges")
    if raw.is_directed():
        raw = raw.to_undirected()
    g = nx.Graph(source="topohub")
    ids = _assign_ids((n, d.get("name")) for n, d in raw.nodes(data=True))
    for n, d in raw.nodes(data=True):
        lon, lat = (d.get("pos") or (None, None))[:2]
        g.add_node(ids[n], label=str(d.get("name", n)), lat=lat, lon=lon)
    for u, v, d in raw.edges(data=True):
        _add_edge(g, ids[u], ids[v], dist_km=d.get("dist"))
    return g


def _load_file(path: Path) -> nx.Graph:
    suffix = path.suffix.lower()
    try:
        if suffix == ".graphml":
            _check_unique_graphml_ids(path)
            raw = nx.read_graphml(path)
            source = "graphml"
        elif suffix == ".gml":
            raw = nx.read_gml(path, label="id")
            source = "gml"
        else:
            return _load_as_rel(path)
    except TopologyError:
        raise
    except (ET.ParseError, nx.NetworkXError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise TopologyError(f"malformed topology file {path}: {exc}") from None
    if raw.is_directed():
        raw = raw.to_undirected()
    g = nx.Graph(source=source)
    ids = _assign_ids((n, d.get("label", n)) for n, d in raw.nodes(data=True))
    for n, d in raw.nodes(data=True):
        lat, lon = _float(d.get("Latitude")), _float(d.get("Longitude"))
        g.add_node(ids[n], label=str(d.get("label", n)), lat=lat, lon=lon)
    for u, v, d in raw.edges(data=True):
        if u == v:
            continue
        _add_edge(g, ids[u], ids[v], capacity_mbps=_capacity(d), conduit=d.get("conduit") or d.get("Conduit"))
    return g


def _check_unique_graphml_ids(path: Path) -> None:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise TopologyError(f"malformed GraphML file {path}: {exc}") from None
    seen: set[str] = set()
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "node":
            nid = el.get("id")
            if nid in seen:
                raise TopologyError(f"malformed GraphML file {path}: duplicate node id {nid!r}")
            seen.add(nid)


def _load_as_rel(path: Path) -> nx.Graph:
    """CAIDA AS-relationship text: ``as1|as2|rel[|source]`` lines, ``#`` comments."""
    g = nx.Graph(source="as-rel")
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("|")
        if len(fields) < 3 or not fields[0].isdigit() or not fields[1].isdigit() or fields[2].strip() not in {"-1", "0", "1", "2"}:
            raise TopologyError(f"malformed AS-relationship file {path}, line {lineno}: {line[:80]!r} (expected 'as1|as2|rel')")
        a, b = f"AS{fields[0]}", f"AS{fields[1]}"
        if a == b:
            continue
        for n in (a, b):
            if n not in g:
                g.add_node(n, label=n, lat=None, lon=None)
        _add_edge(g, a, b, relationship=int(fields[2]))
    return g


def _synthetic_as(n: int, seed: int) -> nx.Graph:
    if n < 2:
        raise TopologyError(f"as:{n}: a synthetic AS graph needs at least 2 nodes")
    raw = nx.random_internet_as_graph(n, seed=seed)
    rng = random.Random(seed)
    g = nx.Graph(source="synthetic")
    for v, d in raw.nodes(data=True):
        g.add_node(f"AS{v}", label=f"AS{v} ({d.get('type', '?')})", lat=None, lon=None)
    for u, v, d in raw.edges(data=True):
        _add_edge(g, f"AS{u}", f"AS{v}", delay_ms=round(rng.uniform(*SYNTHETIC_DELAY_MS), 3), delay_source="synthetic")
    return g


# --------------------------------------------------------------------------- shaping

def _assign_ids(pairs: Iterable[tuple[object, object]]) -> dict[object, str]:
    ids: dict[object, str] = {}
    used: dict[str, int] = {}
    for n, name in pairs:
        base = slug(name if name not in (None, "") else n, fallback=f"n{slug(n, 'x')}")
        if base[0].isdigit():
            base = f"n{base}"
        count = used.get(base, 0) + 1
        used[base] = count
        ids[n] = base if count == 1 else f"{base}_{count}"
    return ids


def _add_edge(g: nx.Graph, u: str, v: str, **attrs) -> None:
    if u == v:
        return
    attrs = {k: val for k, val in attrs.items() if val is not None}
    if g.has_edge(u, v):
        d = g.edges[u, v]
        d["parallel"] += 1
        d["_caps"].append(attrs.get("capacity_mbps"))
        for k, val in attrs.items():
            if k == "dist_km":
                d[k] = min(d.get(k) or val, val)
            elif k == "delay_ms":
                d[k] = min(d.get(k, val), val)
            elif k != "capacity_mbps":
                d.setdefault(k, val)
        return
    g.add_edge(u, v, parallel=1, _caps=[attrs.pop("capacity_mbps", None)], **attrs)


def _finish(g: nx.Graph) -> nx.Graph:
    if g.number_of_nodes() == 0:
        raise TopologyError(f"topology {g.graph['name']!r} has no nodes")
    if g.number_of_edges() == 0:
        raise TopologyError(f"topology {g.graph['name']!r} has no links")
    dropped: list[str] = []
    if not nx.is_connected(g):
        keep = max(nx.connected_components(g), key=lambda c: (len(c), sorted(c)))
        dropped = sorted(set(g) - keep)
        shown = ", ".join(dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10 else "")
        log.warning("topology %s is disconnected: kept the largest component (%d routers), dropped %d: %s",
                    g.graph["name"], len(keep), len(dropped), shown)
        g = g.subgraph(keep).copy()
        if g.number_of_edges() == 0:
            raise TopologyError(f"topology {g.graph['name']!r} has no links in its largest component")
    g.graph["dropped"] = dropped
    for u, v, d in g.edges(data=True):
        caps = d.pop("_caps")
        if all(c is not None for c in caps):
            d["capacity_mbps"], d["capacity_source"] = float(sum(caps)), "data"
        else:
            known = sum(c for c in caps if c is not None)
            d["capacity_mbps"] = float(known + DEFAULT_CAPACITY_MBPS * sum(c is None for c in caps))
            d["capacity_source"] = "default"
        if d.get("dist_km") is None:
            a, b = g.nodes[u], g.nodes[v]
            if None not in (a["lat"], a["lon"], b["lat"], b["lon"]):
                d["dist_km"] = round(haversine_km(a["lat"], a["lon"], b["lat"], b["lon"]), 3)
        if "delay_ms" in d:
            pass
        elif d.get("dist_km") is not None:
            d["delay_ms"] = round(max(MIN_DELAY_MS, d["dist_km"] * FIBRE_MS_PER_KM), 4)
            d["delay_source"] = "distance"
        else:
            d["delay_ms"], d["delay_source"] = DEFAULT_DELAY_MS, "default"
        d.setdefault("dist_km", None)
        d.setdefault("conduit", None)
    return g


def _capacity(d: dict) -> float | None:
    raw = _float(d.get("LinkSpeedRaw"))
    if raw:
        return raw / 1e6
    speed = _float(d.get("LinkSpeed"))
    if speed:
        return speed * _UNITS.get(str(d.get("LinkSpeedUnits", "M")).strip(), 1.0)
    return None


def _float(x) -> float | None:
    try:
        return float(x) if x not in (None, "") else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- catalogue

@lru_cache(maxsize=1)
def topohub_keys() -> tuple[str, ...]:
    """Every key the installed ``topohub`` package can load."""
    import topohub

    base = Path(topohub.__file__).parent / "data"
    return tuple(sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.json")))


def shipped_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*") if p.suffix in {".graphml", ".gml", ".txt"})


def list_topologies(source: str | None = None) -> list[dict]:
    """Names with node and link counts: topohub's catalogue plus ``topologies/``.

    ``source`` filters to one topohub group (``topozoo``, ``caida``, ``sndlib``,
    ``backbone``, ``gabriel``) or ``shipped``.
    """
    allowed = (*TOPOHUB_SOURCES, "shipped")
    if source is not None and source not in allowed:
        raise TopologyError(f"unknown topology source {source!r}; choose one of {', '.join(allowed)}")
    import topohub

    base = Path(topohub.__file__).parent / "data"
    rows = []
    for key in topohub_keys():
        group = key.split("/", 1)[0]
        if source not in (None, group):
            continue
        with open(base / f"{key}.json") as fh:
            stats = json.load(fh).get("graph", {}).get("stats", {})
        name = key if group != "caida" else "caida/" + key.rsplit("/", 1)[-1]
        rows.append({"name": name, "source": group, "nodes": stats.get("nodes"), "links": stats.get("links")})
    if source in (None, "shipped"):
        for name in shipped_names():
            g = load_topology(name)
            rows.append({"name": name, "source": "shipped", "nodes": g.number_of_nodes(), "links": g.number_of_edges()})
    return rows


def _unknown_message(name: str) -> str:
    known = [*(k if not k.startswith("caida/") else "caida/" + k.rsplit("/", 1)[-1] for k in topohub_keys()), *shipped_names()]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if not close:
        low = name.lower()
        close = [k for k in known if low in k.lower()][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else "; see 'ani topo list'"
    return f"unknown topology {name!r}{hint}"
