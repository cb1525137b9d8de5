"""atheris: image reference parsing (python fuzz/fuzz_reference.py [libFuzzer options])."""
import atheris

with atheris.instrument_imports():
    from lamina.image.reference import ImageReference

from common import main


def target(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    ref = ImageReference.parse(text)
    assert ImageReference.parse(str(ref)) == ref


if __name__ == "__main__":
    main(target)
