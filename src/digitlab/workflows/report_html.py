"""HTML building blocks of the report: one page, inline CSS, images as base64 PNG, no scripts.

Nothing here touches the network or the file system: the page opens from a USB stick, offline.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Iterable, Sequence

import matplotlib.pyplot as plt

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff; --accent:#2f5d8a;
        --bad:#b03a2e; --bad-bg:#fdecea; --good:#1e7b4a; --good-bg:#e7f5ec; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 15px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background:linear-gradient(120deg,#1d3b5c,#2f5d8a); color:#fff; padding:28px 0 22px; }
header h1 { margin:0 0 4px; font-size:28px; font-weight:650; letter-spacing:-0.01em; }
header p { margin:0; color:#d9e6f2; }
.wrap { max-width:1120px; margin:0 auto; padding:0 24px; }
nav { background:#fff; border-bottom:1px solid var(--line); position:sticky; top:0; z-index:1; }
nav .wrap { display:flex; flex-wrap:wrap; gap:4px 18px; padding-top:9px; padding-bottom:9px; font-size:14px; }
nav a { color:var(--accent); text-decoration:none; white-space:nowrap; }
nav a:hover { text-decoration:underline; }
main { padding:22px 0 40px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:20px 24px;
          margin:0 0 18px; box-shadow:0 1px 2px rgba(31,41,51,.04); }
h2 { margin:0 0 12px; font-size:20px; font-weight:640; color:#102a43; }
h3 { margin:18px 0 8px; font-size:16px; color:#243b53; }
p { margin:8px 0; }
.note { color:var(--muted); font-style:italic; }
.callout { border-left:4px solid var(--accent); background:#eef4fa; padding:10px 14px; border-radius:4px; margin:12px 0; }
.callout.bad { border-color:var(--bad); background:var(--bad-bg); }
.callout.good { border-color:var(--good); background:var(--good-bg); }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600;
         vertical-align:middle; }
.badge.bad { background:var(--bad-bg); color:var(--bad); border:1px solid #f3b8b0; }
.badge.good { background:var(--good-bg); color:var(--good); border:1px solid #a8dbbd; }
table { border-collapse:collapse; margin:8px 0 4px; font-size:14px; }
th, td { padding:5px 12px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f0f4f8; color:#334e68; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }
tr.total td { font-weight:600; border-top:2px solid #cbd2d9; }
tbody tr:nth-child(even) td { background:#fafbfc; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(300px, 1fr)); gap:14px 28px; align-items:start; }
.grid > div { min-width:0; overflow-x:auto; }
figure { margin:10px 0; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:13px; }
pre { background:#f0f4f8; padding:10px 12px; border-radius:6px; overflow-x:auto; }
.tiles { display:flex; flex-wrap:wrap; gap:12px; margin:4px 0 14px; }
.tile { flex:1 1 170px; border:1px solid var(--line); border-radius:8px; padding:10px 14px; background:#fbfcfd; }
.tile .v { font-size:24px; font-weight:650; color:#102a43; font-variant-numeric: tabular-nums; }
.tile .l { font-size:13px; color:var(--muted); }
.tile.bad { border-color:#f3b8b0; background:var(--bad-bg); } .tile.bad .v { color:var(--bad); }
.tile.good { border-color:#a8dbbd; background:var(--good-bg); } .tile.good .v { color:var(--good); }
td.nowrap { white-space:nowrap; }
footer { color:var(--muted); font-size:13px; padding:0 0 30px; }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def png_bytes(fig, dpi: int = 100) -> bytes:
    """Render a matplotlib Figure to PNG bytes (and close it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")

    plt.close(fig)
    return buf.getvalue()


def img(png: bytes, alt: str, caption: str | None = None, width: int | None = None) -> str:
    """A <figure> holding the PNG as a data: URI (self-contained; no file beside the page)."""
    data = base64.b64encode(png).decode("ascii")
    style = f' style="max-width:{width}px"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}"{style}>{cap}</figure>'


def table(headers: Sequence[str], rows: Iterable[Sequence], numeric: Sequence[int] = (),
          row_classes: Sequence[str] | None = None) -> str:
    """An HTML table; columns listed in `numeric` are right-aligned. Cells are escaped unless they are
    `Raw` (pre-built HTML such as a badge)."""
    numeric = set(numeric)
    head = "".join(f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        cells = "".join(
            f'<td class="num">{_cell(v)}</td>' if i in numeric else f"<td>{_cell(v)}</td>"
            for i, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw(str):
    """A string of trusted HTML (built here), inserted into a table without escaping."""


def _cell(value) -> str:
    return value if isinstance(value, Raw) else esc(value)


def badge(text: str, kind: str = "bad") -> Raw:
    return Raw(f'<span class="badge {kind}">{esc(text)}</span>')


def tiles(items: Sequence[tuple[str, str, str]]) -> str:
    """Headline numbers as tiles: (label, value, kind) with kind "", "good" or "bad"."""
    return '<div class="tiles">' + "".join(
        f'<div class="tile {kind}"><div class="v">{esc(value)}</div><div class="l">{esc(label)}</div></div>'
        for label, value, kind in items) + "</div>"


def columns(*blocks: str) -> str:
    """Blocks of HTML side by side (wrapping on narrow screens)."""
    return '<div class="grid">' + "".join(f"<div>{b}</div>" for b in blocks) + "</div>"


def callout(html_body: str, kind: str = "") -> str:
    return f'<div class="callout {kind}">{html_body}</div>'


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]], footer: str) -> str:
    """The whole document. sections: (anchor id, heading, inner HTML)."""
    nav = "".join(f'<a href="#{esc(sid)}">{esc(head)}</a>' for sid, head, _ in sections)
    body = "".join(f'<section id="{esc(sid)}"><h2>{esc(head)}</h2>{inner}</section>'
                   for sid, head, inner in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></div></header>'
        f'<nav><div class="wrap">{nav}</div></nav>'
        f'<main><div class="wrap">{body}</div></main>'
        f'<footer><div class="wrap">{footer}</div></footer></body></html>\n'
    )
