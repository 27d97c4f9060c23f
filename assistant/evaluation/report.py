"""Self-contained HTML report: inline CSS, inline SVG bar charts, every piece of data text escaped.

No scripts and no network: the file opens offline, and a document containing ``<script>`` renders
as text because everything from documents, questions and answers goes through ``html.escape``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from assistant.evaluation.gold import GoldItem
from assistant.evaluation.metrics import METRICS, MetricInfo, QuestionScore, format_metric, supports

__all__ = ["bar_chart_svg", "highlight", "render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC",sans-serif;
margin:1.5rem;color:#1d2330;background:#fafbfc;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
.chart{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:.5rem}
.chart h3{font-size:.9rem;margin:.2rem 0 .4rem}
table{border-collapse:collapse;background:#fff;font-size:.85rem}
th,td{border:1px solid #dde1e6;padding:.35rem .5rem;vertical-align:top;text-align:left}
th{background:#eef1f5;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.q{max-width:22rem}.a{max-width:26rem}.c{max-width:36rem}
.passage{white-space:pre-wrap;font-size:.8rem;background:#f6f7f9;border-left:3px solid #c3c9d2;
padding:.3rem .5rem;margin:.2rem 0 .5rem;max-height:14rem;overflow:auto}
mark{background:#ffe28a}
.pass{color:#17803d;font-weight:600}.fail{color:#c62828;font-weight:600}.na{color:#8a93a0}
.tag{display:inline-block;background:#e7ecf3;border-radius:3px;padding:0 .3rem;margin:0 .15rem .1rem 0;
font-size:.75rem}
.abst{background:#fff3cd}.err{color:#c62828}
ol.hist{margin:.2rem 0;padding-left:1.2rem;color:#5a6372}
#only-fail:checked ~ table tr.ok{display:none}
details summary{cursor:pointer;color:#35507a}
dl.defs dt{font-weight:600}dl.defs dd{margin:0 0 .3rem 1rem}
"""

_BAR_COLORS = ("#3b6ea8", "#7aa6d8")


def _fmt(value: float | None, kind: str) -> str:
    return format_metric(value, kind, missing="n/a", ms_unit=" ms")


def bar_chart_svg(title: str, bars: Sequence[tuple[str, float | None]], kind: str = "rate") -> str:
    """One horizontal bar chart as inline SVG; rates on a 0–1 scale, others scaled to the maximum."""
    label_w, bar_w, row_h, pad = 120, 220, 20, 4
    width = label_w + bar_w + 70
    height = len(bars) * row_h + 2 * pad
    values = [v for _, v in bars if v is not None]
    top = 1.0 if kind == "rate" else max([*values, 0.0]) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">'
    ]
    for i, (label, value) in enumerate(bars):
        y = pad + i * row_h
        short = label if len(label) <= 18 else label[:17] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">{escape(short)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 6}" fill="#eef1f5"/>')
        if value is not None:
            w = max(0.0, min(1.0, value / top)) * bar_w
            color = _BAR_COLORS[0] if i == 0 else _BAR_COLORS[1]
            parts.append(
                f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{color}">'
                f"<title>{escape(label)}: {escape(_fmt(value, kind))}</title></rect>"
            )
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 14}" font-size="12">{escape(_fmt(value, kind))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _find_quote(text: str, quote: str, offset: int | None) -> tuple[int, int] | None:
    if not quote:
        return None
    if offset is not None and 0 <= offset and text[offset : offset + len(quote)] == quote:
        return offset, offset + len(quote)
    pos = text.find(quote)
    if pos >= 0:
        return pos, pos + len(quote)
    words = quote.split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(w) for w in words), text, flags=re.IGNORECASE)
    return (match.start(), match.end()) if match else None


def highlight(text: str, quote: str, offset: int | None = None) -> str:
    """Escaped ``text`` with ``quote`` wrapped in ``<mark>`` (tried at ``offset``, then searched)."""
    span = _find_quote(text, quote, offset)
    if span is None:
        suffix = f"<br><em>quote (not found in passage):</em> <mark>{escape(quote)}</mark>" if quote else ""
        return escape(text) + suffix
    s, e = span
    return f"{escape(text[:s])}<mark>{escape(text[s:e])}</mark>{escape(text[e:])}"


def _check(value: bool | None) -> str:
    if value is None:
        return '<span class="na">–</span>'
    return '<span class="pass">✓</span>' if value else '<span class="fail">✗</span>'


def _row_ok(score: QuestionScore) -> bool:
    if score.error:
        return False
    if not score.answerable:
        return score.abstained
    return bool(score.hit_at_k) and bool(score.has_supporting_citation) and score.answer_correct is not False


def _citations_html(record: Mapping[str, Any], item: GoldItem) -> str:
    out: list[str] = []
    for c in record.get("citations") or []:
        text = str(c.get("text") or "")
        quote = str(c.get("quote") or "")
        offset: int | None = None
        if isinstance(c.get("start"), int) and isinstance(c.get("passage_start"), int):
            offset = int(c["start"]) - int(c["passage_start"])
        ok = supports(quote or text, item.evidence) if item.answerable else None
        head = f"[{escape(str(c.get('n', '?')))}] {escape(str(c.get('title') or ''))}"
        head += f' <span class="na">{escape(str(c.get("doc_id") or ""))}</span> {_check(ok)}'
        out.append(f'<div>{head}<div class="passage">{highlight(text, quote, offset)}</div></div>')
    return "".join(out) or '<span class="na">no citations</span>'


def _retrieved_html(record: Mapping[str, Any], item: GoldItem) -> str:
    rows: list[str] = []
    for p in record.get("retrieved") or []:
        text = str(p.get("text") or "")
        ok = supports(text, item.evidence) if item.answerable else None
        short = text if len(text) <= 400 else text[:400] + "…"
        score = p.get("score")
        score_txt = f"{score:.3f}" if isinstance(score, int | float) else ""
        rows.append(
            f"<li>{_check(ok)} <b>{escape(str(p.get('doc_id') or ''))}</b> {escape(score_txt)}"
            f'<div class="passage">{escape(short)}</div></li>'
        )
    if not rows:
        return ""
    return f"<details><summary>retrieved ({len(rows)})</summary><ol>{''.join(rows)}</ol></details>"


def _question_row(item: GoldItem, record: Mapping[str, Any], score: QuestionScore) -> str:
    tags = "".join(f'<span class="tag">{escape(t)}</span>' for t in item.tags)
    hist = ""
    if item.history:
        hist = '<ol class="hist">' + "".join(f"<li>{escape(h)}</li>" for h in item.history) + "</ol>"
    gold = ""
    if item.evidence or item.answer_contains:
        ev = "".join(f"<li>{escape(e)}</li>" for e in item.evidence)
        ac = ", ".join(escape(a) for a in item.answer_contains)
        gold = f"<details><summary>gold</summary><ul>{ev}</ul>answer contains: {ac}</details>"
    answer = escape(str(record.get("answer") or ""))
    if record.get("error"):
        answer = f'<span class="err">error: {escape(str(record["error"]))}</span>'
    cls = "abst" if score.abstained else ""
    rr = "–" if score.reciprocal_rank is None else f"{score.reciprocal_rank:.2f}"
    prec = "–" if score.citation_precision is None else f"{score.citation_precision:.2f}"
    expected = "unanswerable" if not item.answerable else "answerable"
    return (
        f'<tr class="{"ok" if _row_ok(score) else "bad"}">'
        f'<td>{escape(item.id)}<br>{tags}<br><span class="na">{expected}</span></td>'
        f'<td class="q">{hist}{escape(item.question)}{gold}</td>'
        f'<td class="q">{escape(str(record.get("standalone_question") or ""))}</td>'
        f'<td class="a {cls}">{"<b>abstained</b><br>" if score.abstained else ""}{answer}</td>'
        f'<td class="c">{_citations_html(record, item)}{_retrieved_html(record, item)}</td>'
        f'<td>{_check(score.hit_at_1)}</td><td>{_check(score.hit_at_k)}</td><td class="num">{rr}</td>'
        f'<td class="num">{prec}</td><td>{_check(score.has_supporting_citation)}</td>'
        f"<td>{_check(score.answer_correct)}</td>"
        f"<td>{_check(score.abstained == (not item.answerable))}</td>"
        f'<td class="num">{score.latency_ms:.0f}</td></tr>'
    )


def _label(info: MetricInfo, k: int) -> str:
    return f"hit@{k}" if info.key == "hit@k" else info.label


def render_html(
    items: Sequence[GoldItem],
    records: Sequence[Mapping[str, Any]],
    scores: Sequence[QuestionScore],
    metrics: Mapping[str, Mapping[str, float | None]],
    k: int,
    title: str = "Evaluation report",
) -> str:
    """The whole report: summary table, a bar chart per metric (overall and per tag), per-question table."""
    groups = list(metrics)
    charted = [info for info in METRICS if info.kind != "count"]
    head_cells = "".join(f"<th>{escape(g)}</th>" for g in groups)
    summary_rows = "".join(
        f"<tr><td>{escape(_label(info, k))}</td>"
        + "".join(f'<td class="num">{escape(_fmt(metrics[g].get(info.key), info.kind))}</td>' for g in groups)
        + "</tr>"
        for info in METRICS
    )
    charts = "".join(
        f'<div class="chart"><h3>{escape(_label(info, k))}</h3>'
        + bar_chart_svg(_label(info, k), [(g, metrics[g].get(info.key)) for g in groups], info.kind)
        + "</div>"
        for info in charted
    )
    defs = "".join(f"<dt>{escape(_label(i, k))}</dt><dd>{escape(i.description)}</dd>" for i in METRICS)
    rows = "".join(_question_row(i, r, s) for i, r, s in zip(items, records, scores, strict=True))
    overall = metrics.get("all", {})
    n = overall.get("n")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p>{escape(str(int(n)) if n is not None else "0")} questions, k = {int(k)}.
Rates are in [0, 1]; n/a means the metric has no questions to average over.</p>
<h2>Metrics</h2>
<table><tr><th>metric</th>{head_cells}</tr>{summary_rows}</table>
<details><summary>definitions</summary><dl class="defs">{defs}</dl></details>
<h2>Charts</h2>
<div class="charts">{charts}</div>
<h2>Questions</h2>
<input type="checkbox" id="only-fail"> <label for="only-fail">show only questions with a failure</label>
<table>
<tr><th>id</th><th>question</th><th>standalone question</th><th>answer</th><th>citations</th>
<th>hit@1</th><th>hit@{int(k)}</th><th>RR</th><th>cit. prec.</th><th>supp. cit.</th><th>answer ok</th>
<th>abstention ok</th><th>ms</th></tr>
{rows}
</table>
</body></html>
"""
