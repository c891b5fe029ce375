"""`insiders report`: one self-contained HTML dashboard (inline SVG, no network) from the marts."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg

from .errors import InsidersError
from .files import write_text_atomically

log = logging.getLogger(__name__)
PALETTE = ["#d1495b", "#00798c", "#edae49", "#30638e", "#66a182", "#8d5a97", "#e07a5f", "#3d405b", "#81b29a",
           "#f2cc8f", "#577590", "#9c6644"]
MAP_POINTS = 5_000


@dataclass
class ReportData:
    as_of: date
    summary: pd.DataFrame  # fct_segment_summary, every date
    customers: pd.DataFrame  # map points at the as-of date
    transitions: pd.DataFrame  # Insiders in and out per date pair
    hypotheses: pd.DataFrame
    rules: pd.DataFrame
    quality: pd.DataFrame
    choice: pd.DataFrame  # rpt_insider_choice at the as-of date
    backtests: pd.DataFrame  # rpt_backtests, every cutoff


def _frame(conn: psycopg.Connection, query: str, params: tuple = ()) -> pd.DataFrame:
    cur = conn.execute(query, params)
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def read_report_data(conn: psycopg.Connection, as_of: date | None = None) -> ReportData:
    try:
        as_of = as_of or conn.execute("select max(as_of_date) from fct_segment_summary").fetchone()[0]
    except psycopg.errors.UndefinedTable as exc:
        raise InsidersError("the segment marts do not exist yet: run `insiders run` first") from exc
    if as_of is None:
        raise InsidersError("the segment summary (fct_segment_summary) is empty: run `insiders run` first")
    return ReportData(
        as_of=as_of,
        summary=_frame(conn, "select * from fct_segment_summary where as_of_date <= %s"
                             " order by as_of_date, segment_id", (as_of,)),
        customers=_frame(conn, "select customer_id, segment_id, map_x, map_y from fct_customer_segments"
                               " where as_of_date = %s order by customer_id", (as_of,)),
        transitions=_frame(conn, """
            select to_as_of_date,
                   coalesce(sum(n_customers) filter (where is_entering_insiders), 0) as entered,
                   coalesce(sum(n_customers) filter (where is_leaving_insiders), 0) as left_insiders
            from fct_segment_transitions where to_as_of_date <= %s
            group by to_as_of_date order by to_as_of_date""", (as_of,)),
        hypotheses=_frame(conn, "select * from rpt_hypotheses where as_of_date = %s order by hypothesis_id",
                          (as_of,)),
        rules=_frame(conn, "select rule_number, sentence from rpt_insider_rules where as_of_date = %s"
                           " order by rule_number", (as_of,)),
        quality=_frame(conn, "select rule, sum(n_lines) as n_lines, sum(line_revenue) as line_revenue"
                             " from rpt_data_quality group by rule, rule_order order by rule_order"),
        choice=_frame(conn, "select * from rpt_insider_choice where as_of_date = %s"
                            " order by mean_future_revenue_share desc", (as_of,)),
        backtests=_frame(conn, "select * from rpt_backtests order by cutoff_date, horizon_days, rule_rank"),
    )


# -- SVG pieces ----------------------------------------------------------------------------------------------

def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _colors(summary: pd.DataFrame) -> dict[int, str]:
    return {int(s): PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(summary["segment_id"].unique()))}


def share_bars(current: pd.DataFrame, colors: dict[int, str]) -> str:
    """Customers' share against revenue share, one pair of bars per segment."""
    row_height, label_width, bar_width = 34, 190, 420
    height = row_height * len(current) + 30
    parts = [f'<svg class="chart" viewBox="0 0 {label_width + bar_width + 80} {height}" role="img" '
             'aria-label="customer and revenue share by segment">']
    for i, row in enumerate(current.itertuples()):
        y = 20 + i * row_height
        color = colors[int(row.segment_id)]
        customers, revenue = float(row.customer_share), float(row.gross_revenue_share)
        parts += [
            f'<text x="0" y="{y + 12}" class="label">{_esc(row.segment_name)}</text>',
            f'<rect x="{label_width}" y="{y}" width="{bar_width * customers:.1f}" height="11" fill="{color}" '
            'opacity="0.45"/>',
            f'<rect x="{label_width}" y="{y + 13}" width="{bar_width * revenue:.1f}" height="11" fill="{color}"/>',
            f'<text x="{label_width + bar_width * max(customers, revenue) + 6:.1f}" y="{y + 20}" class="small">'
            f"{customers:.0%} of customers · {revenue:.0%} of revenue</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)


def customer_map(customers: pd.DataFrame, colors: dict[int, str], names: dict[int, str]) -> str:
    size = 520
    points = customers.iloc[:: max(1, len(customers) // MAP_POINTS)]
    xs, ys = points["map_x"].astype(float), points["map_y"].astype(float)
    x0, x1, y0, y1 = xs.quantile(0.005), xs.quantile(0.995), ys.quantile(0.005), ys.quantile(0.995)
    sx = (size - 20) / max(x1 - x0, 1e-9)
    sy = (size - 20) / max(y1 - y0, 1e-9)
    parts = [f'<svg class="chart" viewBox="0 0 {size + 200} {size}" role="img" aria-label="customer map">']
    for row in points.itertuples():
        x = 10 + (min(max(float(row.map_x), x0), x1) - x0) * sx
        y = size - 10 - (min(max(float(row.map_y), y0), y1) - y0) * sy
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{colors[int(row.segment_id)]}" '
                     'opacity="0.6"/>')
    for i, (segment_id, name) in enumerate(sorted(names.items())):
        parts.append(f'<rect x="{size + 15}" y="{20 + i * 22}" width="12" height="12" fill="{colors[segment_id]}"/>'
                     f'<text x="{size + 33}" y="{31 + i * 22}" class="label">{_esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(series: dict[str, list[float]], dates: list[date], colors: dict[str, str], percent: bool,
               label: str) -> str:
    width, height, left, bottom = 720, 260, 56, 30
    top = max((max(v) for v in series.values() if v), default=1) or 1
    def x(i: int) -> float:
        return left + (width - left - 150) * (i / max(1, len(dates) - 1))

    def y(v: float) -> float:
        return height - bottom - (height - bottom - 10) * (v / top)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(label)}">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 150}" y2="{height - bottom}" class="axis"/>',
             f'<line x1="{left}" y1="10" x2="{left}" y2="{height - bottom}" class="axis"/>',
             f'<text x="4" y="16" class="small">{top:.0%}</text>' if percent else
             f'<text x="4" y="16" class="small">{top:,.0f}</text>']
    for i, day in enumerate(dates):
        if len(dates) <= 13 or i % 2 == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 10}" class="small" text-anchor="middle">'
                         f"{day:%b %y}</text>")
    for n, (name, values) in enumerate(series.items()):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colors[name]}" stroke-width="2.2"/>')
        parts += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colors[name]}"/>'
                  for i, v in enumerate(values)]
        parts.append(f'<text x="{width - 140}" y="{20 + n * 18}" class="label" style="fill:{colors[name]}">'
                     f"{_esc(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def history_section(summary: pd.DataFrame, names: dict[int, str], colors: dict[int, str], as_of: date) -> str:
    """Segment sizes, revenue shares and the Insiders' share by as-of date; with one date, a note instead of
    charts whose axis would hold one dot."""
    dates = sorted(summary["as_of_date"].unique())
    if len(dates) < 2:
        return (f"<p class='note' id='history-empty'>One as-of date so far ({_esc(as_of)}): segment sizes and revenue "
                "over time appear from the second date on. <code>insiders backfill --from MONTH-END --to "
                f"{_esc(as_of)} --monthly</code> labels every month-end in between, each with the model in force "
                "then.</p>")

    def label(segment_id: int) -> str:
        return names.get(segment_id, f"segment {segment_id}")

    def series(rows: pd.DataFrame, column: str) -> tuple[dict[str, list[float]], dict[str, str]]:
        # numeric columns arrive as Decimal (object dtype): floats before pivoting
        wide = (rows.assign(value=rows[column].astype(float))
                .pivot_table(index="as_of_date", columns="segment_id", values="value").reindex(dates))
        values = {label(int(s)): [float(v) for v in wide[s].fillna(0)] for s in wide.columns}
        return values, {label(int(s)): colors[int(s)] for s in wide.columns}

    segments = summary[~summary["is_insider"].astype(bool)]
    values, line_colors = series(summary, "n_customers")
    sizes = line_chart(values, dates, line_colors, False, "customers per segment by as-of date")
    values, line_colors = series(segments, "gross_revenue_share")
    revenue = line_chart(values, dates, line_colors, True, "share of gross revenue per segment by as-of date")
    program = summary[summary["is_insider"].astype(bool)].set_index("as_of_date")["gross_revenue_share"]
    name = "Insiders' revenue share"
    insider_share = line_chart({name: [float(v) for v in program.reindex(dates).fillna(0)]}, dates,
                               {name: colors.get(-1, PALETTE[0])}, True, "Insiders' share of revenue by as-of date")
    return (f"<p class='note'>{len(dates)} as-of dates, {_esc(dates[0])} to {_esc(dates[-1])}.</p>"
            "<h3>Customers per segment</h3>" + sizes
            + "<h3>Share of gross revenue per segment</h3><p class='note'>Each segment's purchases up to the date "
            "over the whole base's: shares compare across dates, the sums themselves grow with the history.</p>"
            + revenue + "<h3>The Insiders' share of gross revenue</h3>" + insider_share)


def moves_chart(transitions: pd.DataFrame) -> str:
    if transitions.empty:
        return "<p class='note'>One as-of date so far: moves appear from the second month on (insiders backfill).</p>"
    width, height, bottom = 720, 220, 30
    top = max(1, int(transitions[["entered", "left_insiders"]].to_numpy().max()))
    step = (width - 60) / len(transitions)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="moves in and out">']
    for i, row in enumerate(transitions.itertuples()):
        x = 50 + i * step
        for j, (value, color) in enumerate(((row.entered, "#66a182"), (row.left_insiders, "#d1495b"))):
            h = (height - bottom - 20) * value / top
            parts.append(f'<rect x="{x + j * step * 0.4:.1f}" y="{height - bottom - h:.1f}" '
                         f'width="{step * 0.38:.1f}" height="{h:.1f}" fill="{color}"/>')
        parts.append(f'<text x="{x + step * 0.4:.1f}" y="{height - 10}" class="small" text-anchor="middle">'
                     f"{row.to_as_of_date:%b %y}</text>")
    parts.append('<text x="50" y="14" class="label" style="fill:#66a182">entered</text>'
                 '<text x="130" y="14" class="label" style="fill:#d1495b">left</text></svg>')
    return "".join(parts)


def _table(headers: list[str], rows: list[list[object]], css: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def profiles_table(current: pd.DataFrame) -> str:
    metrics = [
        ("customers", "n_customers", "{:,.0f}"), ("share of customers", "customer_share", "{:.1%}"),
        ("share of gross revenue", "gross_revenue_share", "{:.1%}"),
        ("mean gross revenue", "mean_gross_revenue", "£{:,.0f}"),
        ("median gross revenue", "median_gross_revenue", "£{:,.0f}"),
        ("median recency (days)", "median_recency_days", "{:,.0f}"),
        ("median invoices", "median_invoices", "{:,.1f}"), ("average ticket", "avg_ticket", "£{:,.0f}"),
        ("return rate (units)", "return_rate", "{:.1%}"), ("mean products", "mean_distinct_products", "{:,.0f}"),
        ("mean units bought", "mean_items", "{:,.0f}"),
    ]
    rows = [[_esc(label)] + [fmt.format(float(v)) if v is not None else "n/a" for v in current[column]]
            for label, column, fmt in metrics]
    return _table(["", *list(current["segment_name"])], rows, "profiles")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Insiders — customer segments as of {as_of}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 24px; color: #222; }}
h1 {{ margin-bottom: 0; }} h2 {{ margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }}
.headline {{ display: flex; gap: 16px; flex-wrap: wrap; margin: 16px 0; }}
.card {{ background: #f6f6f3; border-radius: 8px; padding: 10px 16px; min-width: 150px; }}
.card b {{ display: block; font-size: 22px; }}
.chart {{ width: 100%; max-width: 900px; height: auto; }}
.label {{ font-size: 12px; fill: #222; }} .small {{ font-size: 11px; fill: #555; }} .axis {{ stroke: #999; }}
table {{ border-collapse: collapse; margin: 8px 0; }} th, td {{ padding: 4px 10px; border-bottom: 1px solid #eee; }}
td {{ text-align: right; }} td:first-child {{ text-align: left; }} th {{ background: #f6f6f3; }}
.yes {{ color: #2a7a3b; font-weight: 600; }} .no {{ color: #b23a48; font-weight: 600; }}
.note {{ color: #666; }} table.hypotheses td:nth-child(2) {{ text-align: left; }}
</style></head>
<body>
<h1>Insiders</h1>
<p class="note">Customer segments as of {as_of} · generated by <code>insiders report</code> from the marts</p>
<div class="headline">{cards}</div>
<h2>Segments: size and revenue</h2>{bars}
<h2>Customer map</h2><p class="note">Each dot a customer, placed by the model's 2-D projection of the features.</p>
{map}
<h2>Segment profiles</h2>{profiles}
<h2>Over time</h2>{history}
<h2>In and out of the Insiders</h2>{moves}
<h2>How the Insiders are chosen</h2>{choice}
<h2>Did it work? Backtests</h2>{backtests}
<h2>Hypotheses</h2><p class="note">The Insiders against the other customers, with 95% bootstrap intervals; p is a
one-sided permutation p-value where a difference is claimed.</p>{hypotheses}
<h2>What it takes to be an Insider</h2>{rules}
<h2>Data quality</h2>{quality}
<script>
  window.addEventListener("error", function () {{ document.body.dataset.error = "yes"; }});
  var charts = document.querySelectorAll("svg.chart").length;
  document.body.dataset.charts = String(charts);
  document.body.dataset.rendered = charts > 0 && !document.body.dataset.error ? "ok" : "no";
</script>
</body></html>
"""


def render(data: ReportData) -> str:
    summary = data.summary
    current = summary[summary["as_of_date"] == data.as_of].sort_values("segment_id")
    colors = _colors(summary)
    names = {int(r.segment_id): r.segment_name for r in current.itertuples()}
    insiders = current[current["is_insider"]].iloc[0]
    segments = current[~current["is_insider"]]
    cards = [
        ("customers", f"{int(segments['n_customers'].sum()):,}"),
        ("gross revenue", f"£{float(segments['gross_revenue'].sum()):,.0f}"),
        ("Insiders", f"{int(insiders.n_customers):,} ({float(insiders.customer_share):.1%})"),
        ("Insiders' revenue share", f"{float(insiders.gross_revenue_share):.1%}"),
        ("Insiders' expected revenue, next 90 days", f"£{float(insiders.expected_revenue_90d or 0):,.0f}"),
        ("segments", str(len(segments))),
    ]
    history = history_section(summary, names, colors, data.as_of)
    hypotheses = _table(["", "hypothesis", "Insiders (95% CI)", "compared with (95% CI)", "p", "holds"], [
        [_esc(r.hypothesis_id), _esc(r.statement),
         f"{_number(r.insiders_value)} [{_number(r.insiders_value_low)}, {_number(r.insiders_value_high)}]",
         f"{_number(r.compared_with)}" + (f" [{_number(r.compared_with_low)}, {_number(r.compared_with_high)}]"
                                          if r.compared_with_low is not None else " (threshold)")
         + f" <span class='note'>({_esc(r.unit)})</span>",
         "" if r.p_value is None else f"{float(r.p_value):.3f}",
         "<span class='yes'>holds</span>" if r.holds else "<span class='no'>not shown</span>"]
        for r in data.hypotheses.itertuples()], "hypotheses")
    rules = "<ol>" + "".join(f"<li>{_esc(r.sentence)}</li>" for r in data.rules.itertuples()) + "</ol>"
    quality = _table(["rule", "lines", "revenue"], [
        [_esc(r.rule), f"{int(r.n_lines):,}", f"£{float(r.line_revenue):,.2f}"] for r in data.quality.itertuples()])
    return PAGE.format(
        as_of=data.as_of, cards="".join(f'<div class="card">{_esc(k)}<b>{_esc(v)}</b></div>' for k, v in cards),
        bars=share_bars(current, colors), map=customer_map(data.customers, colors, names),
        profiles=profiles_table(current), history=history,
        moves=moves_chart(data.transitions), hypotheses=hypotheses, rules=rules, quality=quality,
        choice=choice_section(data.choice), backtests=backtests_section(data.backtests),
    )


def _number(value: object) -> str:
    return "n/a" if value is None else f"{float(value):,.3f}"


def choice_section(choice: pd.DataFrame) -> str:
    if choice.empty:
        return ("<p class='note'>Too little history for a backtest that ends by this date: the Insiders are the top "
                "customers by past revenue, the strongest simple rule.</p>")
    rows = [[_esc(r.candidate) + (" <b>(used)</b>" if r.is_chosen else ""), f"{float(r.mean_future_revenue_share):.1%}",
             f"{float(r.min_future_revenue_share):.1%} to {float(r.max_future_revenue_share):.1%}",
             str(r.n_inner_cutoffs)] for r in choice.itertuples()]
    return (f"<p>{_esc(choice['choice_reason'].iloc[0])}</p>"
            + _table(["definition", "share of the horizon's revenue (mean)", "range", "inner backtests"], rows))


def backtests_section(backtests: pd.DataFrame) -> str:
    if backtests.empty:
        return ("<p class='note'>No backtest yet: <code>insiders backtest --cutoff DATE --horizon 90</code> rebuilds "
                "everything at a past date and measures the Insiders against simple rules on what followed.</p>")
    parts = []
    for (cutoff, horizon), rows in backtests.groupby(["cutoff_date", "horizon_days"], sort=True):
        first = rows.iloc[0]
        parts.append(f"<h3>Cutoff {cutoff}, next {horizon} days — Insiders chosen by "
                     f"{_esc(first.insider_definition)}; forecast {float(first.forecast_predicted_revenue):,.0f} "
                     f"against {float(first.forecast_actual_revenue):,.0f} actual "
                     f"({float(first.forecast_revenue_error_share):+.1%})</h3>")
        parts.append(_table(["rule", "customers", "share of future revenue (95% CI)", "lift",
                             "Insiders minus rule, points (95% CI)"], [
            [_esc(r.rule), f"{int(r.n_customers):,}",
             f"{float(r.future_revenue_share):.1%} [{float(r.future_revenue_share_low):.1%}, "
             f"{float(r.future_revenue_share_high):.1%}]", f"{float(r.lift):.2f}",
             f"{100 * float(r.share_difference_vs_insiders):+.1f} [{100 * float(r.share_difference_low):+.1f}, "
             f"{100 * float(r.share_difference_high):+.1f}]"] for r in rows.itertuples()]))
    return "".join(parts)


def write_report(conn: psycopg.Connection, out: Path, as_of: date | None = None) -> Path:
    data = read_report_data(conn, as_of)
    write_text_atomically(out, render(data))
    log.info("wrote %s (%s segments, %s customers, %d as-of dates)", out, data.summary["segment_id"].nunique(),
             f"{len(data.customers):,}", data.summary["as_of_date"].nunique())
    return out
