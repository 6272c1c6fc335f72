"""HTML building blocks of the static leaderboard site: page shell, inline style and script, tables.

Everything is inline (no CDN, font or script from the network). Tables with class `sortable` sort by a
click on a header (numeric where the cell's `data-sort` is a number); `index.html#sort=<col>-<asc|desc>`
sorts on load (a link can share a sorted board). Images that fail to load get the class `broken` (a red
frame); on load the body records `data-images-ok` / `data-images-broken` counts.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1400px;
 padding:0 1em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin-top:1.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
td,th{border:1px solid #d0d0d0;padding:3px 7px;text-align:right;vertical-align:top}
td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}
th{background:#f3f3f3}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=asc]::after{content:" \\25B2"}table.sortable th[data-dir=desc]::after{content:" \\25BC"}
tr.reference td{color:#555;font-style:italic;background:#fafafa}
.rank{color:#666;font-size:11px}
.note{color:#444;font-size:13px}
img{max-width:100%;height:auto;display:block;margin:.4em 0}
img.broken{outline:3px solid #c00}
code{background:#f3f3f3;padding:0 3px;border-radius:3px}
nav a{margin-right:1em}
"""

SCRIPT = """
function sortTable(th, dir){
 const table=th.closest('table'), body=table.tBodies[0], col=[...th.parentNode.cells].indexOf(th);
 const asc = dir ? dir==='asc' : th.dataset.dir!=='asc';
 table.querySelectorAll('th').forEach(h=>delete h.dataset.dir); th.dataset.dir = asc?'asc':'desc';
 const key=row=>{const c=row.cells[col]; const raw=(c.dataset.sort ?? c.textContent).trim();
  if(raw===''||raw==='\u2013') return null; const num=Number(raw); return isNaN(num) ? raw : num;};
 const rows=[...body.rows].sort((x,y)=>{const a=key(x), b=key(y);
  if(a===null||b===null) return a===null ? (b===null?0:1) : -1;
  const c = (typeof a==='number' && typeof b==='number') ? a-b : String(a).localeCompare(String(b));
  return asc ? c : -c;});
 rows.forEach(r=>body.appendChild(r));
}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
const wanted=/sort=(\\d+)-(asc|desc)/.exec(location.hash);
if(wanted){document.querySelectorAll('table.sortable').forEach(t=>{const th=t.tHead.rows[0].cells[+wanted[1]];
 if(th) sortTable(th, wanted[2]);});}
window.addEventListener('load',()=>{const imgs=[...document.images];
 const ok=imgs.filter(i=>i.complete && i.naturalWidth>0).length;
 document.body.dataset.imagesOk=ok; document.body.dataset.imagesBroken=imgs.length-ok;});
"""


@dataclass(frozen=True)
class Cell:
    """A table cell: shown text (escaped), numeric sort key (None: sort by text), optional raw HTML."""

    text: str
    sort: float | None = None
    raw_html: str | None = None

    def render(self, tag: str = "td") -> str:
        sort = "" if self.sort is None or math.isnan(self.sort) else f' data-sort="{self.sort:.10g}"'
        body = self.raw_html if self.raw_html is not None else html.escape(self.text)
        return f"<{tag}{sort}>{body}</{tag}>"


def page(title: str, body: str) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
            f"{body}<script>{SCRIPT}</script></body></html>\n")


def table(header: list[str], rows: list[list[Cell]], *, sortable: bool = True, row_class: str = "",
          table_id: str = "") -> str:
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    cls = ' class="sortable"' if sortable else ""
    head = "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>"
    tr = f'<tr class="{row_class}">' if row_class else "<tr>"
    body = "<tbody>" + "".join(tr + "".join(c.render() for c in row) + "</tr>" for row in rows) + "</tbody>"
    return f"<table{ident}{cls}>{head}{body}</table>"


def link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'
