"""The figures of issue 9's tests (soak, concurrency, faults, fuzzing), printed at the end of
the run, also under xdist: a test records ``("lamina_figure", (group, key, count))`` or
``("lamina_line", text)`` with ``record_property``; the reports carry them to this process.
Loaded when tests/soak is part of the run (as in CI and ``make soak``)."""
from __future__ import annotations

from collections import Counter, defaultdict

_counts: dict[str, Counter] = defaultdict(Counter)
_lines: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.when != "teardown":   # carries every property the test recorded
        return
    for key, value in report.user_properties:
        if key == "lamina_figure":
            group, name, count = value
            _counts[group][name] += count
        elif key == "lamina_line":
            _lines.append(value)


def pytest_terminal_summary(terminalreporter) -> None:
    if not (_counts or _lines):
        return
    terminalreporter.section("reliability and security figures (issue 9)")
    for line in _lines:
        terminalreporter.write_line(line)
    for group, counts in sorted(_counts.items()):
        terminalreporter.write_line(
            f"{group}: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
