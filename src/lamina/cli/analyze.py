"""``lamina image analyze IMAGE`` (and ``lamina history --wasted IMAGE``): where the bytes went.

Per layer, newest first: its stored size (compressed, or marked as stored uncompressed), its
uncompressed tar size, the bytes of it that later layers hid (WASTED) and the bytes of lower
layers it hid (HIDES); then the biggest offenders, and with ``--ci`` dive's three rules, each
PASS, FAIL or SKIP, the command failing (exit 1) when one fails.
"""
from __future__ import annotations

import json
import re

from .args import ArgumentParser, ArgumentTypeError, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..api.analysis import Analysis, RuleResult

HELP = "Show where an image's bytes went: wasted space, efficiency, CI thresholds"

LAYER_HEADER = ("LAYER", "CREATED BY", "COMPRESSED", "UNCOMPRESSED", "WASTED", "HIDES")
OFFENDER_HEADER = ("SIZE", "PATH", "ADDED BY", "HIDDEN BY")
CREATED_BY_WIDTH = 45
# go-humanize's units, as dive reads highestWastedBytes: kB/MB decimal, KiB/MiB binary.
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "ki": 2**10, "kib": 2**10, "mi": 2**20,
          "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40}


def register(p: ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE", help="a name or an image ID")
    register_common(p)
    p.add_argument("--ci", action="store_true",
                   help="check dive's rules (defaults: lowest efficiency 0.9, highest user "
                        "wasted ratio 0.1); exit 1 when one fails")
    p.add_argument("--lowest-efficiency", type=_ratio, metavar="F",
                   help="fail below this efficiency (0-1; implies --ci)")
    p.add_argument("--highest-wasted-bytes", type=_bytes, metavar="N|SIZE",
                   help="fail above this many wasted bytes (e.g. 20MB, 5MiB; 'disabled' "
                        "skips the rule; implies --ci)")
    p.add_argument("--highest-user-wasted-percent", type=_ratio, metavar="F",
                   help="fail when the wasted bytes exceed this share (0-1, or N%) of the "
                        "bytes added above the base layer (implies --ci)")
    p.add_argument("--format", metavar="FORMAT", choices=("table", "json"),
                   help="'table' (default) or 'json'")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate CREATED BY")


def register_common(p: ArgumentParser) -> None:
    p.add_argument("--top", type=int, default=None, metavar="N",
                   help="how many offenders to name (default 20)")


def run(args: Namespace) -> int:
    from ..api.analysis import evaluate
    from .common import open_store

    analysis = _analyze(args.image, open_store(args))
    thresholds = {"lowest_efficiency": args.lowest_efficiency,
                  "highest_wasted_bytes": args.highest_wasted_bytes,
                  "highest_user_wasted_percent": args.highest_user_wasted_percent}
    ci = args.ci or any(v is not None for v in thresholds.values())
    rules = evaluate(analysis, **{k: (None if v == "disabled" else v)
                                  for k, v in thresholds.items()},
                     defaults=True) if ci else ()
    # "disabled" skips a rule even when dive has a default for it.
    rules = tuple(_skipped(r) if thresholds[_ARG[r.name]] == "disabled" else r for r in rules)
    top = _top(args)
    if args.format == "json":
        out = analysis.to_json(limit=top)
        if ci:
            out["rules"] = [{"name": r.name, "threshold": r.threshold, "status": r.status,
                             "message": r.message} for r in rules]
            out["pass"] = all(r.status != "FAIL" for r in rules)
        print(json.dumps(out, indent=2))
    else:
        print(render(analysis, top, summary=True, no_trunc=args.no_trunc), end="")
        if ci:
            print()
            print(render_rules(rules), end="")
    return 1 if any(r.status == "FAIL" for r in rules) else 0


def run_wasted(args: Namespace) -> int:
    """``lamina history --wasted IMAGE``: the same figures, no rules."""
    from .common import open_store

    analysis = _analyze(args.image, open_store(args))
    if args.format == "json":
        print(json.dumps(analysis.to_json(limit=_top(args)), indent=2))
    else:
        print(render(analysis, _top(args), summary=False, no_trunc=args.no_trunc), end="")
    return 0


_ARG = {"lowestEfficiency": "lowest_efficiency", "highestWastedBytes": "highest_wasted_bytes",
        "highestUserWastedPercent": "highest_user_wasted_percent"}


def _analyze(name: str, store) -> "Analysis":
    from ..api.analysis import analyze
    return analyze(name, store=store)


def _top(args: Namespace) -> int:
    from ..api.analysis import DEFAULT_OFFENDERS
    from ..errors import UsageError

    if args.top is not None and args.top < 0:
        raise UsageError(f"--top {args.top}: expected 0 or more offenders",
                         hint="--top 0 leaves the offender list out")
    return DEFAULT_OFFENDERS if args.top is None else args.top


def _skipped(rule: "RuleResult") -> "RuleResult":
    from dataclasses import replace
    return replace(rule, threshold=None, status="SKIP", message="rule disabled")


def render(analysis: "Analysis", top: int, *, summary: bool, no_trunc: bool = False) -> str:
    from .format import human_size, short_id, table
    from .history import ellipsis

    lines = []
    if summary:
        lines.append(f"Image: {analysis.image} (ID {short_id(analysis.image_id)})\n")
        lines.append(f"Size: {human_size(analysis.stored_size)} stored, "
                     f"{human_size(analysis.tar_size)} uncompressed, "
                     f"{len(analysis.layers)} layer(s)\n")
    lines.append(f"Wasted: {human_size(analysis.wasted_bytes)} of "
                 f"{human_size(analysis.total_bytes)} written by the layers "
                 f"({len(analysis.wasted)} file(s)); efficiency "
                 f"{analysis.efficiency * 100:.2f}%\n")
    if summary:
        lines.append(f"User wasted: {analysis.user_wasted_ratio * 100:.2f}% of the "
                     f"{human_size(analysis.user_bytes)} added above the base layer\n")
    lines.append("\n")
    rows = []
    for layer in reversed(analysis.layers):
        created_by = layer.created_by.replace("\t", " ")
        stored = human_size(layer.stored_size)
        rows.append((str(layer.index),
                     created_by if no_trunc else ellipsis(created_by, CREATED_BY_WIDTH),
                     f"{stored} ({layer.compression})" if layer.compressed
                     else f"{stored} (stored uncompressed)",
                     human_size(layer.tar_size), human_size(layer.wasted_bytes),
                     human_size(layer.removed_bytes)))
    lines.append(table(rows, LAYER_HEADER))
    offenders = analysis.offenders(top)
    if offenders:
        lines.append("\nBiggest offenders:\n")
        lines.append(table([(human_size(w.size), w.path, f"layer {w.added_by}",
                             f"layer {w.removed_by} ({w.how})") for w in offenders],
                           OFFENDER_HEADER))
        if len(analysis.wasted) > len(offenders):
            lines.append(f"... and {len(analysis.wasted) - len(offenders)} more "
                         "(--top N shows more)\n")
    return "".join(lines)


def render_rules(rules: "tuple[RuleResult, ...]") -> str:
    lines = ["CI rules:\n"]
    for rule in rules:
        lines.append(f"  {rule.status}  {rule.name}: {rule.message}\n")
    failed = sum(r.status == "FAIL" for r in rules)
    passed = sum(r.status == "PASS" for r in rules)
    skipped = sum(r.status == "SKIP" for r in rules)
    lines.append(f"Result: {'FAIL' if failed else 'PASS'} ({passed} passed, {failed} failed, "
                 f"{skipped} skipped)\n")
    return "".join(lines)


def _ratio(text: str) -> float:
    """``0.9`` or ``90%``: a ratio between 0 and 1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ArgumentTypeError(f"invalid ratio {text!r}: expected e.g. 0.9 or 90%")
    if value < 0:
        raise ArgumentTypeError(f"invalid ratio {text!r}: expected 0 or more")
    return value


def _bytes(text: str) -> int | str:
    """``20MB`` (decimal), ``5MiB`` (binary), ``1024``, or ``disabled``."""
    if text.strip().lower() == "disabled":
        return "disabled"
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ArgumentTypeError(f"invalid size {text!r}: expected e.g. 1048576, "
                                "20MB or 5MiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
