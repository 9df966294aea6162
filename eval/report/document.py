"""The report as a document (sections of paragraphs, tables, figures, galleries)
and its two renderings: one self-contained HTML page and Markdown. Both escape
every text that comes from data (class names): no markup, no links get through.
"""
from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

FILES_DIR = "report_files"


# ----------------------------------------------------------------------------- document model
@dataclass
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""
    first_col_header: bool = True
    left: bool = False      # left-align every column (key/value tables)


@dataclass
class Figure:
    path: str          # file under report_files/
    caption: str
    width: Optional[int] = None


@dataclass
class Gallery:
    title: str
    figures: Sequence[Figure]


Block = Union[str, Table, Figure, Gallery]


@dataclass
class Section:
    title: str
    blocks: List[Block] = field(default_factory=list)
    anchor: str = ""


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px auto;
max-width:1180px;padding:0 16px;color:#1d2430;background:#fff;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #dde3ea;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}table{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em}
th,td{border:1px solid #cfd6de;padding:3px 8px;text-align:right}th{background:#eef2f6}
td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#f8fafc}
caption{caption-side:bottom;text-align:left;color:#5a6573;font-size:.9em;padding-top:4px}
.pos{color:#11703a}.neg{color:#b3261e}figure{margin:.8em 0}figcaption{color:#5a6573;font-size:.9em}
table.left td{text-align:left}img{max-width:100%;height:auto;border:1px solid #e3e8ee}.toc a{margin-right:12px}
p.note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px}
"""


_MD_SPECIAL = "\\`*_[]|#"


def md_text(text: str) -> str:
    """``text`` as literal Markdown: HTML special characters as entities (no raw HTML gets
    through: a class name ``<script>`` stays text), Markdown punctuation backslash-escaped,
    on one line."""
    t = html.escape(" ".join(str(text).split()), quote=False)
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in t)


def _md_cell(text: str) -> str:
    return md_text(text)


def render_markdown(title: str, intro: Sequence[str], sections: Sequence[Section]) -> str:
    out = [f"# {md_text(title)}", ""]
    out += [md_text(p) + "\n" for p in intro]
    for s in sections:
        out += [f"## {md_text(s.title)}", ""]
        for b in s.blocks:
            if isinstance(b, str):
                out += [md_text(b), ""]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
                out.append("|" + "|".join(["---"] + ["---:"] * (len(b.header) - 1)) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
                out += ([f"\n*{md_text(b.caption)}*"] if b.caption else []) + [""]
            elif isinstance(b, Figure):
                out += [f"![{md_text(b.caption)}]({FILES_DIR}/{b.path})", "", f"*{md_text(b.caption)}*", ""]
            elif isinstance(b, Gallery):
                out += [f"### {md_text(b.title)}", ""]
                for f in b.figures:
                    out += [f"**{md_text(f.caption)}**", "", f"![{md_text(f.caption)}]({FILES_DIR}/{f.path})", ""]
    return "\n".join(out).rstrip() + "\n"


def _data_uri(path: str) -> str:
    mime = "image/jpeg" if path.lower().endswith((".jpg", ".jpeg")) else "image/png"
    with open(path, "rb") as f:
        return f"data:{mime};base64,{base64.b64encode(f.read()).decode('ascii')}"


def _html_cell(text: str, tag: str) -> str:
    t = str(text)
    cls = ""
    if tag == "td" and len(t) > 1 and t[0] in "+−" and t[1:].replace(".", "", 1).isdigit():
        cls = ' class="pos"' if t[0] == "+" else ' class="neg"'
    return f"<{tag}{cls}>{html.escape(t)}</{tag}>"


def render_html(title: str, intro: Sequence[str], sections: Sequence[Section], files_dir: str) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(title)}</title><style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    for p in intro:
        cls = ' class="note"' if p.startswith("Note:") else ""
        parts.append(f"<p{cls}>{e(p)}</p>")
    parts.append('<p class="toc">' + "".join(f'<a href="#{e(s.anchor)}">{e(s.title)}</a>' for s in sections)
                 + "</p>")
    for s in sections:
        parts.append(f'<h2 id="{e(s.anchor)}">{e(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, str):
                cls = ' class="note"' if b.startswith("Note:") else ""
                parts.append(f"<p{cls}>{e(b)}</p>")
            elif isinstance(b, Table):
                rows = [] if not any(b.header) else ["<tr>" + "".join(_html_cell(h, "th") for h in b.header)
                                                      + "</tr>"]
                for r in b.rows:
                    cells = [_html_cell(c, "th" if (i == 0 and b.first_col_header) else "td") for i, c in
                             enumerate(r)]
                    rows.append("<tr>" + "".join(cells) + "</tr>")
                cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
                cls = ' class="left"' if b.left else ""
                parts.append(f"<table{cls}>{cap}{''.join(rows)}</table>")
            elif isinstance(b, Figure):
                w = f' width="{b.width}"' if b.width else ""
                parts.append(f'<figure><img src="{_data_uri(os.path.join(files_dir, b.path))}" alt="{e(b.caption)}"'
                             f"{w}><figcaption>{e(b.caption)}</figcaption></figure>")
            elif isinstance(b, Gallery):
                parts.append(f"<h3>{e(b.title)}</h3>")
                for f in b.figures:
                    parts.append(f'<figure><figcaption>{e(f.caption)}</figcaption>'
                                 f'<img src="{_data_uri(os.path.join(files_dir, f.path))}" alt="{e(f.caption)}">'
                                 f"</figure>")
    parts.append("</body></html>")
    # anchors inside the page are the only links; no external resource is referenced
    return "\n".join(parts) + "\n"
