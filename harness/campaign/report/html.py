"""HTML for the report: one stylesheet, a page shell, tables with human headers and units.

Plain static HTML, no script. Tables fit a 1280 px page: cells wrap (long element lists
break between names), numbers are right-aligned at one precision per column.
"""

from __future__ import annotations

import base64
from html import escape

from harness.campaign.report.data import Column

CSS = """
body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0;max-width:100%}
td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;overflow-wrap:break-word}
th{background:#f3f3f3;text-align:left;font-weight:600}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto}
.warn{background:#fff4e0;border-left:4px solid #e69500;padding:4px 8px}
.muted{color:#666;font-size:.9em}
nav a{margin-right:1em}
ul.why{margin:0;padding-left:1.1em}
"""


def page(title: str, body: str, *, nav: str = "") -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            + (f"<nav>{nav}</nav>" if nav else "") + body + "</body></html>")


def table(rows: list[dict], columns: list[Column], *, raw: frozenset[str] = frozenset()) -> str:
    """Rows as a table: headers are the columns' titles (with units); numbers formatted at
    the column's precision; text escaped, except the keys in ``raw`` (already HTML)."""
    head = "".join(f"<th>{escape(c.title)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c.key)
            if c.key in raw:
                cells.append(f"<td>{v if v is not None else ''}</td>")
            elif c.decimals is not None:
                cells.append(f"<td class='num'>{escape(c.fmt(v))}</td>")
            else:
                cells.append(f"<td>{escape(c.fmt(v) if v is not None else '')}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def section(key: str, title: str, body: str) -> str:
    return f"<h2 id='{key}'>{escape(title)}</h2>{body}"


def img_inline(png: bytes, alt: str) -> str:
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def img_file(src: str, alt: str) -> str:
    return f"<img alt='{escape(alt)}' src='{escape(src)}'>"


def warn(text_html: str) -> str:
    return f"<p class='warn'>&#9888; {text_html}</p>"


def bullets(items: list[str]) -> str:
    return "<ul class='why'>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>" if items else ""
