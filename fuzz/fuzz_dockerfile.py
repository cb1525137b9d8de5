"""atheris: the Dockerfile parser and the .dockerignore matcher."""
import atheris

with atheris.instrument_imports():
    from lamina.dockerfile.ignore import PatternMatcher, read_ignore
    from lamina.dockerfile.parser import parse

from common import main


def target(data: bytes) -> None:
    half = len(data) // 2
    try:
        parse(data[:half])
    finally:
        matcher = PatternMatcher(read_ignore(data[half:]))
        for path in ("a", "a/b", "x/y/z.txt", ".git/HEAD"):
            matcher.matches(path)


if __name__ == "__main__":
    main(target)
