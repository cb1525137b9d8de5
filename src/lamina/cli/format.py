"""How Docker prints things: sizes, ages, IDs, tables. Users script against these shapes."""
from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_size(size: float, precision: int = 3) -> str:
    """Decimal units with 3 significant digits, as ``docker images`` shows: ``5.58MB``, ``0B``."""
    return _scaled(size, 1000.0, _DECIMAL_UNITS, precision)


def bytes_size(size: float) -> str:
    """Binary units, as ``docker system df -v`` shows some sizes: ``1.5MiB``."""
    return _scaled(size, 1024.0, _BINARY_UNITS, 4)


def _scaled(size: float, base: float, units: Sequence[str], precision: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_duration(seconds: float) -> str:
    """Docker's rough age: ``Less than a second``, ``About a minute``, ``3 weeks`` ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def parse_timestamp(text: str | None) -> _dt.datetime | None:
    """An RFC 3339 time from an image config (nanoseconds allowed); None when absent or bad."""
    if not text:
        return None
    value = text.strip().replace("Z", "+00:00")
    # Python takes at most 6 fractional digits; configs written by Go have up to 9.
    if "." in value:
        head, _, rest = value.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}" if digits else head + rest
    try:
        stamp = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=_dt.timezone.utc)


def since(text: str | None, now: _dt.datetime | None = None) -> str:
    """``2 weeks ago`` for a config timestamp; ``N/A`` when there is none (as Docker prints)."""
    stamp = parse_timestamp(text)
    if stamp is None or stamp.year <= 1970:
        return "N/A"
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return human_duration((now - stamp).total_seconds()) + " ago"


def short_id(digest: str) -> str:
    """The 12-hex-digit ID Docker shows for an image or container."""
    return digest.split(":", 1)[-1][:12]


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    """Columns laid out as Docker's tabwriter does: each cell but the last padded to at least
    10 characters and 3 more than the column's widest cell."""
    all_rows = [list(header), *rows] if header is not None else [list(r) for r in rows]
    if not all_rows:
        return ""
    ncols = max(len(r) for r in all_rows)
    widths = [0] * ncols
    for row in all_rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + 3, 10)
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "\n".join(lines) + "\n"
