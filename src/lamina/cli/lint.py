"""``lamina lint``: show how lamina reads a Dockerfile, and what is wrong with it."""
from __future__ import annotations

import sys

from .args import ArgumentParser, Namespace

HELP = "Read a Dockerfile as Docker does; print its stages, instructions and problems"


def register(p: ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH",
                   help="build context folder (default: .), or the Dockerfile itself; - reads stdin")
    p.add_argument("-f", "--file", metavar="FILE",
                   help="the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output format (default: text)")
    p.add_argument("--dump", action="store_true",
                   help="print the parse tree in BuildKit's dump format instead")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="set a build argument, as for build (used to resolve FROM lines)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the problems")


def run(args: Namespace) -> int:
    from ..dockerfile import lint as lintmod
    from .common import parse_build_args, read_dockerfile

    name, data = read_dockerfile(args.path, args.file)
    if args.dump:
        from ..dockerfile.dump import dump
        from ..dockerfile.parser import parse

        print(dump(parse(data, file=name).root))
        return 0
    report = lintmod.lint(data, file=name, build_args=parse_build_args(args.build_arg))
    if args.format == "json":
        import json

        print(json.dumps(report.to_json(), indent=2))
    else:
        if not args.quiet:
            print(lintmod.format_report(report), end="")
        for problem in report.problems:
            print(problem, file=sys.stderr if args.quiet else sys.stdout)
    return 1 if report.has_errors else 0
