"""Forgiving, discoverable names: resolve what a person (or a model) wrote to a canonical id.

A router matches by id or by its label from the data, ignoring case, spaces and punctuation
(``Kansas City``, ``kansascity`` → ``KansasCity``; other characters, such as shell
metacharacters, never match); a link by either orientation of its two
routers, each resolved the same way (``KansasCity-Denver`` → ``Denver-KansasCity``). Nothing
else is guessed: a name that matches no element, or more than one, is not resolved, and
:func:`suggest` offers the closest names instead.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from functools import lru_cache

from harness.kg.model import KnowledgeGraph
from harness.topology.load import link_id


def _key(name: str) -> str:
    """Lower case without spaces, dots, dashes, underscores and apostrophes; a name with any
    other character (``;``, ``/``, ``$`` …) gets no key and so never resolves."""
    ascii_ = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    if not re.fullmatch(r"[A-Za-z0-9 ._'-]*", ascii_):
        return "\0"
    return re.sub(r"[ ._'-]", "", ascii_.lower())


@lru_cache(maxsize=16)
def _router_keys(kg: KnowledgeGraph) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for r in kg.routers:
        for name in (r, kg.attrs("router", r).get("label") or r):
            keys.setdefault(_key(name), set()).add(r)
    return keys


def resolve(kg: KnowledgeGraph, kind: str, name: str) -> str | None:
    """The canonical id of the ``kind`` element ``name`` means, or None (unknown or ambiguous)."""
    if kg.has(kind, name):
        return name
    if kind == "router":
        found = _router_keys(kg).get(_key(name), set())
        return next(iter(found)) if len(found) == 1 else None
    if kind == "link":
        for sep in ("-", "–", "—", " to ", "<->", "/"):
            parts = str(name).split(sep)
            if len(parts) == 2:
                u, v = (resolve(kg, "router", p.strip()) for p in parts)
                if u and v and kg.has("link", link_id(u, v)):
                    return link_id(u, v)
        return None
    found = [n for n in kg.names(kind) if _key(n) == _key(name)]
    return found[0] if len(found) == 1 else None


def suggest(kg: KnowledgeGraph, kind: str, name: str, n: int = 3) -> list[str]:
    """The closest ``kind`` names to ``name`` (by their normalised spelling)."""
    names = kg.names(kind)
    by_key: dict[str, str] = {}
    for x in names:
        by_key.setdefault(_key(x), x)
    if kind == "router":
        for k, rs in _router_keys(kg).items():
            if len(rs) == 1:
                by_key.setdefault(k, next(iter(rs)))
    close = difflib.get_close_matches(_key(name), list(by_key), n=n, cutoff=0.6)
    return list(dict.fromkeys(by_key[k] for k in close))
