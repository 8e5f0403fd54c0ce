#!/usr/bin/env python3
"""Plots of a run, drawn from what its processes serve at /metrics: the benchmark
scrapes the producer and every consumer twice a second while it runs (`Sampler`), and
writes the same figures the Grafana dashboard shows as SVG line charts (`write_svg`),
for the operating guide. Standard library only."""

import threading
import time
import urllib.request

# The series plotted, each read from every process and summed (or the max, for gauges
# of one process), as the dashboard's panels compute them.
COUNTERS = {
    "published": "mongo2pg_producer_documents_published_total",
    "committed": "mongo2pg_documents_committed_total",
    "events_published": "mongo2pg_producer_change_events_published_total",
    "changes_applied": "mongo2pg_changes_applied_total",
}
GAUGES = {
    "read_lag": "mongo2pg_producer_change_lag_seconds",
    "apply_lag": "mongo2pg_change_apply_lag_seconds",
    "headroom": "mongo2pg_producer_oplog_headroom_seconds",
}


def scrape(url):
    """The samples of one /metrics page: {name: [value, ...]} (one per label set)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as page:
            text = page.read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        try:
            samples.setdefault(name, []).append(float(line.rsplit(" ", 1)[1]))
        except ValueError:
            continue
    return samples


class Sampler(threading.Thread):
    """Scrapes `urls()` (the processes running now) every `every` seconds until
    stopped; keeps per second the rate of each counter (a process restarted counts
    from zero: its new total is its increase, as Prometheus' rate() takes it) and each
    gauge's value."""

    def __init__(self, urls, every=0.5):
        super().__init__(daemon=True)
        self.urls, self.every = urls, every
        self.rows = []  # (seconds since start, {series: value})
        self.halt = threading.Event()
        self.started_at = time.monotonic()

    def run(self):
        last = {}  # url -> (time, {counter: total})
        while not self.halt.is_set():
            now = time.monotonic()
            rates = {key: 0.0 for key in COUNTERS}
            gauges = {}
            measured = False
            for url in self.urls():
                samples = scrape(url)
                if not samples:
                    continue
                totals = {key: sum(samples.get(name, [])) for key, name in COUNTERS.items()}
                if url in last:
                    then, before = last[url]
                    seconds = max(now - then, 1e-3)
                    for key, total in totals.items():
                        increase = total - before[key] if total >= before[key] else total
                        rates[key] += increase / seconds
                    measured = True
                last[url] = (now, totals)
                for key, name in GAUGES.items():
                    if samples.get(name):
                        gauges[key] = max(gauges.get(key, float("-inf")), max(samples[name]))
            if measured:
                self.rows.append((now - self.started_at, {**rates, **gauges}))
            self.halt.wait(self.every)

    def stop(self):
        self.halt.set()
        self.join()

    def series(self, key):
        return [(t, values[key]) for t, values in self.rows if key in values]


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]


def nice_top(value):
    """A round number at or above `value`, for the y axis."""
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10
    for factor in (1, 2, 2.5, 5, 10):
        if step * factor >= value:
            return step * factor
    return value


def write_svg(path, title, unit, lines):
    """A line chart: `lines` is [(legend, [(seconds, value), ...]), ...]."""
    width, height, left, right, top, bottom = 760, 280, 70, 20, 40, 40
    points = [p for _, series in lines for p in series]
    if not points:
        raise ValueError(f"{title}: nothing to plot")
    t_max = max(t for t, _ in points) or 1.0
    y_max = nice_top(max(v for _, v in points))
    x = lambda t: left + (width - left - right) * t / t_max  # noqa: E731
    y = lambda v: height - bottom - (height - top - bottom) * max(v, 0) / y_max  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14" font-weight="bold">{title}</text>']
    for i in range(5):
        value = y_max * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#ddd"/>')
        label = f"{value:,.0f}" if value == int(value) else f"{value:,.2f}".rstrip("0")
        out.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{label}</text>')
    for i in range(6):
        t = t_max * i / 5
        out.append(f'<text x="{x(t):.1f}" y="{height - bottom + 16}" text-anchor="middle">{t:.0f} s</text>')
    out.append(f'<text x="12" y="{top + (height - top - bottom) / 2:.0f}" transform="rotate(-90 12 '
               f'{top + (height - top - bottom) / 2:.0f})" text-anchor="middle">{unit}</text>')
    legend_x = left + 10
    for (legend, series), colour in zip(lines, COLOURS):
        if series:
            path_points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in series)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path_points}"/>')
        out.append(f'<rect x="{legend_x}" y="{top - 12}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{legend_x + 14}" y="{top - 3}">{legend}</text>')
        legend_x += 14 + 7 * len(legend) + 20
    out.append("</svg>")
    with open(path, "w") as svg:
        svg.write("\n".join(out) + "\n")


def write_run_plots(sampler, directory):
    """The three charts of the operating guide; returns their paths."""
    import os
    os.makedirs(directory, exist_ok=True)
    charts = [
        ("run-throughput.svg", "Throughput: snapshot and changes", "per second", [
            ("documents published", sampler.series("published")),
            ("rows committed", sampler.series("committed")),
            ("change events published", sampler.series("events_published")),
            ("changes applied", sampler.series("changes_applied")),
        ]),
        ("run-lag.svg", "Change stream lag: read and applied", "seconds", [
            ("read lag", sampler.series("read_lag")),
            ("apply lag", sampler.series("apply_lag")),
        ]),
        ("run-headroom.svg", "Oplog headroom", "seconds", [
            ("headroom", sampler.series("headroom")),
        ]),
    ]
    paths = []
    for name, title, unit, lines in charts:
        path = os.path.join(directory, name)
        write_svg(path, title, unit, lines)
        paths.append(path)
    return paths
