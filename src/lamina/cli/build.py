"""``lamina build``: a Dockerfile and its context become an image (``docker build``)."""
from __future__ import annotations

import os
import sys

from .args import ArgumentParser, Namespace

HELP = "Build an image from a Dockerfile"


def register(p: ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH|-",
                   help="the build context folder; a Dockerfile (its folder is the context); "
                        "or - to read a Dockerfile, or a tar archive of the context, from "
                        "standard input")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                   help="name the image (repeatable)")
    p.add_argument("-f", "--file", metavar="FILE",
                   help="the Dockerfile (default: PATH/Dockerfile; - reads standard input)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="set a build argument (KEY alone takes $KEY); repeatable")
    p.add_argument("--target", metavar="STAGE", help="build this stage and what it needs")
    p.add_argument("--no-cache", action="store_true",
                   help="run every step, without using the build cache")
    p.add_argument("--pull", action="store_true",
                   help="pull the base images even when the store has them (a missing one "
                        "is always pulled)")
    p.add_argument("--progress", choices=("auto", "plain", "tty", "quiet"), default="auto",
                   help="how to show progress: plain for logs (default: auto)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the image ID")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="add a label to the image (repeatable)")
    p.add_argument("--iidfile", metavar="FILE", help="write the image ID to FILE")
    p.add_argument("--platform", metavar="OS/ARCH",
                   help="the platform to build for (this machine's only)")
    p.add_argument("--network", choices=("default", "host", "none"), default="default",
                   help="the network of RUN steps (default: a bridge with outbound access)")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE",
                   help="a secret for RUN --mount=type=secret (repeatable)")
    p.add_argument("--cache-from", action="append", default=[],
                   metavar="type=local,src=DIR|type=registry,ref=REF",
                   help="import a build cache exported with --cache-to, from a folder or a "
                        "registry (repeatable; a bare REF means type=registry,ref=REF); one "
                        "that cannot be read is a warning")
    p.add_argument("--explain", action="store_true",
                   help="after the build, list every step: CACHED, or why it ran")
    p.add_argument("--squash", action="store_true",
                   help="merge the layers the build made into one over the base image "
                        "(the build cache stays per step)")
    p.add_argument("--cache-to",
                   metavar="type=local,dest=DIR|type=registry,ref=REF[,mode=min|max]",
                   help="export the build cache of this build's steps to DIR, or push it to "
                        "the registry tag REF (mode=min, the default: the final stage's; max: "
                        "every stage's; registry: compression=gzip|zstd|uncompressed, "
                        "ignore-error=true)")


def run(args: Namespace) -> int:
    from ..dataclass_cache import compiled_dataclasses

    with compiled_dataclasses("lamina"):   # start-up time: see there
        return _build(args)


def _build(args: Namespace) -> int:
    from ..api.build import build, is_archive, parse_epoch
    from ..build.progress import make_progress
    from .common import open_store, parse_build_args

    build_args = parse_build_args(args.build_arg)
    labels = _pairs(args.label, "--label")
    secrets = dict(_secret(spec) for spec in args.secret)
    context: str | _Prepended | None = args.path
    dockerfile, text = args.file, None
    if args.path == "-" or args.file == "-":
        stdin = sys.stdin.buffer
        head = stdin.read(512)
        if args.path == "-" and is_archive(head):
            context = _Prepended(head, stdin)
        else:
            text = head + stdin.read()
            dockerfile = None
            context = None if args.path == "-" else args.path
    elif os.path.isfile(args.path) and args.file is None:
        print(f"note: {args.path} is a file: building with it as the Dockerfile and its folder "
              f"{os.path.dirname(args.path) or '.'} as the context", file=sys.stderr)
    # As buildx: the environment's SOURCE_DATE_EPOCH, unless a build arg gives one.
    epoch = None
    if not build_args.get("SOURCE_DATE_EPOCH") and os.environ.get("SOURCE_DATE_EPOCH"):
        epoch = parse_epoch(os.environ["SOURCE_DATE_EPOCH"])
    progress = make_progress("quiet" if args.quiet else args.progress, sys.stderr)
    try:
        result = build(context, dockerfile=dockerfile, dockerfile_text=text,  # type: ignore
                       tags=args.tag, build_args=build_args, target=args.target,
                       no_cache=args.no_cache, labels=labels, platform=args.platform,
                       network=args.network, secrets=secrets,
                       source_date_epoch=epoch, pull=True if args.pull else None,
                       cache_from=args.cache_from, cache_to=args.cache_to,
                       squash=args.squash, progress=progress,
                       reasons=not args.quiet or args.explain,   # -q shows none of them
                       store=open_store(args))
    finally:
        progress.close()
    if args.explain:
        print(explain_text(result.steps), end="")
    if args.iidfile:
        with open(args.iidfile, "w") as out:
            out.write(result.image_id)
    if args.quiet:
        print(result.image_id)
    return 0


def explain_text(steps) -> str:
    """The ``--explain`` summary: each step, CACHED or RAN with the reason below it."""
    ran = sum(not s.cached for s in steps)
    lines = [f"explain: {ran} of {len(steps)} steps ran"]
    multi = len({s.stage for s in steps}) > 1
    for s in steps:
        where = s.position or (f"[{s.stage}]" if multi else "")
        step = f"{where} {s.instruction}".strip()
        lines.append(f"  {'CACHED' if s.cached else 'RAN':<6} {step}")
        if not s.cached and s.reason:
            lines.append(f"         {s.reason}")
    return "\n".join(lines) + "\n"


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    from ..errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _secret(spec: str) -> tuple[str, str]:
    """``id=ID,src=FILE`` (also ``source=``, ``type=file``), as docker build takes it."""
    from ..errors import UsageError

    fields = dict(item.partition("=")[::2] for item in spec.split(","))
    if fields.get("type", "file") != "file" or "env" in fields:
        raise UsageError(f"--secret {spec!r}: only file secrets are supported",
                         hint="write the value to a file: --secret id=ID,src=FILE")
    secret_id = fields.get("id")
    source = fields.get("src") or fields.get("source")
    if not secret_id or not source:
        raise UsageError(f"--secret {spec!r}: expected id=ID,src=FILE")
    return secret_id, source


class _Prepended:
    """Standard input with the bytes read to look at it put back in front."""

    def __init__(self, head: bytes, stream) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(size)
        if 0 <= size < len(self._head):
            data, self._head = self._head[:size], self._head[size:]
            return data
        data, self._head = self._head, b""
        return data + self._stream.read(-1 if size < 0 else size - len(data))
