"""Chart geometry for server-rendered SVG: rectangles, labels and legends computed here, drawn by the
templates (so every label goes through Jinja's autoescaping). No script, no inline style: colours come
from CSS classes in app.css, which the page's Content-Security-Policy allows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css_class: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"
    css_class: str = ""


@dataclass
class Chart:
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css class, name)
    empty: bool = False


PLOT_LEFT = 44
PLOT_BOTTOM = 22
PLOT_TOP = 10


def stacked_columns(
    columns: Sequence[str],
    values: Mapping[str, Mapping[str, float]],
    series: Sequence[str],
    *,
    width: int = 760,
    height: int = 220,
    unit: str = "",
    class_prefix: str = "series-",
    label_every: int = 5,
    by_position: bool = False,
) -> Chart:
    """One column per entry of `columns` (days), stacked by `series` (states). With `by_position` the
    series' classes are numbered (`series-0`, ...) for names that are no CSS class (model names)."""
    classes = {name: f"{class_prefix}{index if by_position else name}" for index, name in enumerate(series)}
    chart = Chart(width, height, legend=[(classes[name], name.replace("_", " ")) for name in series])
    totals = [sum(values.get(column, {}).get(name, 0) for name in series) for column in columns]
    top = max(totals, default=0)
    if not columns or top <= 0:
        chart.empty = True
        return chart
    plot_height = height - PLOT_TOP - PLOT_BOTTOM
    step = (width - PLOT_LEFT - 4) / len(columns)
    bar_width = max(step * 0.75, 1.0)
    for index, column in enumerate(columns):
        x = PLOT_LEFT + index * step + (step - bar_width) / 2
        baseline = float(height - PLOT_BOTTOM)
        for name in series:
            value = values.get(column, {}).get(name, 0)
            if value <= 0:
                continue
            bar_height = value / top * plot_height
            baseline -= bar_height
            chart.rects.append(
                Rect(round(x, 1), round(baseline, 1), round(bar_width, 1), round(bar_height, 1),
                     classes[name], f"{column}: {_number(value)}{unit} {name.replace('_', ' ')}")
            )
        if index % label_every == 0 or index == len(columns) - 1:
            chart.labels.append(Label(round(x + bar_width / 2, 1), height - 6, column[5:]))
    chart.labels.append(Label(PLOT_LEFT - 6, PLOT_TOP + 10, f"{_number(top)}{unit}", anchor="end"))
    chart.labels.append(Label(PLOT_LEFT - 6, height - PLOT_BOTTOM, "0", anchor="end"))
    return chart


def share_bars(
    rows: Mapping[str, Mapping[str, int]],
    series: Sequence[str],
    *,
    width: int = 460,
    row_height: int = 28,
    class_prefix: str = "outcome-",
    label_width: int = 90,
) -> Chart:
    """One horizontal 100% bar per row (item kinds), split by `series` (review outcomes)."""
    height = max(len(rows), 1) * row_height + 4
    chart = Chart(width, height, legend=[(f"{class_prefix}{name}", name) for name in series])
    if not rows:
        chart.empty = True
        return chart
    plot_width = width - label_width - 8
    for index, (row, counts) in enumerate(rows.items()):
        total = sum(counts.get(name, 0) for name in series)
        y = index * row_height + 2
        chart.labels.append(Label(label_width - 6, y + row_height * 0.65, row.replace("_", " "), anchor="end"))
        x = float(label_width)
        for name in series:
            count = counts.get(name, 0)
            if not total or not count:
                continue
            bar_width = count / total * plot_width
            chart.rects.append(
                Rect(round(x, 1), y, round(bar_width, 1), row_height - 6, f"{class_prefix}{name}",
                     f"{row.replace('_', ' ')}: {count} {name} ({count / total:.0%})")
            )
            if bar_width > 36:
                chart.labels.append(Label(round(x + bar_width / 2, 1), y + row_height * 0.55, f"{count / total:.0%}",
                                          css_class="on-bar dark" if name == "pending" else "on-bar"))
            x += bar_width
    return chart


def _number(value: float) -> str:
    if value >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}" if value < 1 else f"{value:,.1f}"
