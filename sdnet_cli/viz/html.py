"""``index.html``: every figure of a visualisation run with its caption, plus links to the JSON files."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..fsio import atomic_write_bytes

_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
figure{margin:2em 0;border-top:1px solid #ddd;padding-top:1em}img{max-width:100%}
figcaption{margin-top:.5em;line-height:1.4}code{background:#f4f4f4;padding:0 .2em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"""


def render_index(title: str, facts: dict[str, Any], figures: list[dict[str, str]], data_files: list[str]) -> str:
    """HTML text: a facts table, then one ``<figure>`` per ``{'file', 'caption', 'what'}``, then the data files."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1><table>"]
    parts += [f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in facts.items()]
    parts.append("</table>")
    section = None
    for fig in figures:
        if fig["what"] != section:
            section = fig["what"]
            parts.append(f"<h2>{e(section)}</h2>")
        parts.append(f"<figure><img src='{e(fig['file'])}' alt='{e(fig['file'])}'>"
                     f"<figcaption><code>{e(fig['file'])}</code>: {e(fig['caption'])}</figcaption></figure>")
    if data_files:
        parts.append("<h2>data</h2><ul>")
        parts += [f"<li><a href='{e(f)}'>{e(f)}</a></li>" for f in data_files]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_index(directory: str | Path, title: str, facts: dict[str, Any], figures: list[dict[str, str]],
                data_files: list[str]) -> Path:
    """Write ``index.html`` into ``directory`` atomically; returns its path."""
    path = Path(directory) / "index.html"
    atomic_write_bytes(path, render_index(title, facts, figures, data_files).encode())
    return path
