"""Compact GBNF grammars for the small JSON schemas ani asks models to fill in.

Why: llama.cpp's own JSON-schema support (LLGuidance in xllamacpp) allows free
whitespace between JSON tokens, and a 135M model spends it: measured on
SmolLM2-135M with the event schema, it wrote newlines and 4-space indents
(41-81 completion tokens per event) and 13-digit timestamps for a field bounded
to 0..600, because numeric bounds are not enforced. :func:`schema_to_gbnf`
writes a grammar with **no optional whitespace**, properties in a fixed order
and a bounded number of digits, sent as llama.cpp's ``grammar`` field.

Supported subset (anything else raises :class:`~harness.errors.LLMError`):

* ``object`` with ``properties``; every property is emitted, in the order of
  ``required`` first (as listed) and then the rest of ``properties``; optional
  properties are emitted too (a grammar with optional members needs optional
  commas, which is exactly the freedom we are removing).
  ``additionalProperties`` must be absent or ``false``.
* ``enum`` / ``const`` of JSON scalars (any type).
* ``anyOf`` / ``oneOf``: alternatives (``oneOf`` exclusivity is not enforced),
  e.g. one object per event type, each with its own ``target`` enum.
* ``string`` with ``maxLength`` (default 64) and ``minLength``.
* ``integer`` / ``number`` with ``minimum`` / ``maximum``. With ``0 <= minimum``
  and an integral ``maximum`` the upper bound is exact (built digit by digit:
  ``maximum: 600`` allows 0..599.999 and 600) but a positive ``minimum`` is not
  enforced (0 is allowed); otherwise the bounds only fix the sign and the
  **number of integer digits**. ``number`` gets at most 3 decimals; ``exclusive``
  bounds are treated as inclusive. Validate the parsed value afterwards.
* ``boolean``, ``null``.
* ``array`` with ``items`` and ``minItems`` / ``maxItems`` (default max 16).
"""

from __future__ import annotations

import json
import math
import re

from harness.errors import LLMError

_MAX_STRING = 64
_MAX_ITEMS = 16
_MAX_INT_DIGITS = 15
_FRACTION_DIGITS = 3

_CHAR_RULE = r'[^"\\\x00-\x1f] | "\\" ["\\/bfnrt]'


def gbnf_literal(text: str) -> str:
    """``text`` as a double-quoted GBNF terminal."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def _json_literal(value) -> str:
    return gbnf_literal(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _repeat(item: str, lo: int, hi: int) -> str:
    """``item`` repeated lo..hi times (GBNF ``{m,n}``)."""
    if lo == hi:
        return f"{item}{{{lo}}}" if lo != 1 else item
    return f"{item}{{{lo},{hi}}}"


def _at_most(hi: int) -> tuple[str, str]:
    """GBNF alternatives for the integers 0..hi-1 (no leading zeros) and for hi itself.

    Digit by digit: every shorter number, then for each position i of ``hi`` the
    numbers sharing its first i digits with a smaller digit at i.
    """
    if hi == 0:
        return "", '"0"'
    text = str(hi)
    n = len(text)
    alts = ["[0-9]"] if n > 1 else []          # 1-digit numbers (all < hi when hi has 2+ digits)
    if n > 2:
        alts.append(f"[1-9] {_repeat('[0-9]', 1, n - 2)}")  # 2..n-1 digits
    for i, ch in enumerate(text):
        d = int(ch)
        first = 1 if (i == 0 and n > 1) else 0
        if d - 1 < first:
            continue
        cls = f"[{first}-{d - 1}]" if d - 1 > first else f"[{first}]"
        parts = ([gbnf_literal(text[:i])] if i else []) + [cls]
        if n - i - 1:
            parts.append(_repeat("[0-9]", n - i - 1, n - i - 1))
        alts.append(" ".join(parts))
    return " | ".join(alts), gbnf_literal(text)


def _digits_for(bound: float) -> int:
    """Integer digits needed to write abs(bound)."""
    whole = int(math.floor(abs(bound)))
    return max(1, len(str(whole)))


class _Builder:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self.need_char = False

    def _name(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9-]+", "-", hint).strip("-").lower() or "value"
        name, n = base, 2
        while name in self.rules or name in ("root", "char"):
            name, n = f"{base}-{n}", n + 1
        self.rules[name] = ""  # reserve
        return name

    def rule(self, hint: str, body: str) -> str:
        name = self._name(hint)
        self.rules[name] = body
        return name

    def value(self, schema, path: str) -> str:
        """Return a GBNF expression (usually a rule name) for ``schema``."""
        if not isinstance(schema, dict):
            raise LLMError(f"schema_to_gbnf: schema at {path or '<root>'} must be an object, got {schema!r}")
        where = path or "<root>"
        if "const" in schema:
            return _json_literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not values:
                raise LLMError(f"schema_to_gbnf: empty enum at {where}")
            return self.rule(path or "value", " | ".join(_json_literal(v) for v in values))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = schema[key]
                if not isinstance(branches, list) or not branches:
                    raise LLMError(f"schema_to_gbnf: {key} at {where} must be a non-empty list")
                alts = [self.value(b, f"{path}-alt{i}" if path else f"alt{i}") for i, b in enumerate(branches, 1)]
                return self.rule(path or "value", " | ".join(alts))
        for key in ("allOf", "not", "$ref", "patternProperties", "pattern", "format"):
            if key in schema:
                raise LLMError(f"schema_to_gbnf: {key!r} at {where} is not supported "
                               "(supported: object, enum/const, anyOf/oneOf, string, integer, number, boolean, null, array)")
        kind = schema.get("type")
        if kind == "object":
            return self._object(schema, path)
        if kind == "string":
            return self._string(schema, path)
        if kind in ("integer", "number"):
            return self._number(schema, path, integer=(kind == "integer"))
        if kind == "boolean":
            return '("true" | "false")'
        if kind == "null":
            return '"null"'
        if kind == "array":
            return self._array(schema, path)
        raise LLMError(f"schema_to_gbnf: unsupported or missing type {kind!r} at {where}")

    def _object(self, schema: dict, path: str) -> str:
        props = schema.get("properties") or {}
        if not props:
            raise LLMError(f"schema_to_gbnf: object at {path or '<root>'} has no properties")
        if schema.get("additionalProperties", False) is not False:
            raise LLMError(f"schema_to_gbnf: object at {path or '<root>'} must set additionalProperties: false")
        required = list(schema.get("required") or [])
        unknown = [r for r in required if r not in props]
        if unknown:
            raise LLMError(f"schema_to_gbnf: required {unknown} at {path or '<root>'} not in properties")
        order = required + [k for k in props if k not in required]
        parts = []
        for i, key in enumerate(order):
            sep = "," if i else ""
            head = gbnf_literal(sep + json.dumps(key, ensure_ascii=False) + ":")
            parts.append(f"{head} {self.value(props[key], f'{path}-{key}' if path else key)}")
        body = '"{" ' + " ".join(parts) + ' "}"'
        return self.rule(path or "object", body)

    def _string(self, schema: dict, path: str) -> str:
        lo = int(schema.get("minLength", 0))
        hi = int(schema.get("maxLength", _MAX_STRING))
        if hi < lo:
            raise LLMError(f"schema_to_gbnf: maxLength < minLength at {path or '<root>'}")
        self.need_char = True
        return self.rule(f"{path}-str" if path else "string", f'"\\"" {_repeat("char", lo, hi)} "\\""')

    def _number(self, schema: dict, path: str, integer: bool) -> str:
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        frac = "" if integer else f' ("." {_repeat("[0-9]", 1, _FRACTION_DIGITS)})?'
        if lo is not None and lo >= 0 and hi is not None and hi >= 0 and float(hi).is_integer():
            # exact upper bound on the integer part; only 0 <= x is enforced below
            below, equal = _at_most(int(hi))
            body = f"({below}){frac}"
            if equal:
                body = f"{body} | {equal}"
            return self.rule(f"{path}-num" if path else "number", body)
        allow_neg = lo is None or lo < 0
        allow_pos = hi is None or hi >= 0
        if lo is not None and hi is not None:
            digits = min(_digits_for(max(abs(lo), abs(hi))), _MAX_INT_DIGITS)
        else:
            digits = _MAX_INT_DIGITS
        if digits > 1:
            whole = f'("0" | [1-9] {_repeat("[0-9]", 0, digits - 1)})'
        else:
            whole = "[0-9]"
        if not allow_pos:
            body = f'"-" {whole}'
        elif allow_neg:
            body = f'"-"? {whole}'
        else:
            body = whole
        return self.rule(f"{path}-num" if path else "number", body + frac)

    def _array(self, schema: dict, path: str) -> str:
        if "items" not in schema:
            raise LLMError(f"schema_to_gbnf: array at {path or '<root>'} needs 'items'")
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", _MAX_ITEMS))
        if hi < lo or hi < 1:
            raise LLMError(f"schema_to_gbnf: bad minItems/maxItems at {path or '<root>'}")
        item = self.value(schema["items"], f"{path}-item" if path else "item")
        more = '("," ' + item + ")"
        if lo == 0:
            inner = f"({item} {_repeat(more, 0, hi - 1)})?"
        else:
            inner = f"{item} {_repeat(more, lo - 1, hi - 1)}"
        return self.rule(path or "array", f'"[" {inner} "]"')


def schema_to_gbnf(schema: dict) -> str:
    """Turn a JSON schema (the subset in this module's docstring) into compact GBNF.

    Parameters
    ----------
    schema : dict
        A JSON schema; the root is usually an ``object``.

    Returns
    -------
    str
        A grammar whose ``root`` rule matches exactly the minified JSON
        documents of the schema (modulo numeric bounds, see module docstring).

    Raises
    ------
    LLMError
        If the schema uses a feature outside the supported subset.
    """
    builder = _Builder()
    top = builder.value(schema, "")
    lines = [f"root ::= {top}"]
    lines += [f"{name} ::= {body}" for name, body in builder.rules.items()]
    if builder.need_char:
        lines.append(f"char ::= {_CHAR_RULE}")
    return "\n".join(lines) + "\n"
