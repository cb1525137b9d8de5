"""atheris: manifests, indexes and image configs from random bytes."""
import atheris

with atheris.instrument_imports():
    from lamina.image.config import ImageConfig
    from lamina.image.manifest import parse_manifest

from common import main

MEDIA_TYPES = [None, "application/vnd.oci.image.manifest.v1+json",
               "application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.v2+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"]


def target(data: bytes) -> None:
    if not data:
        return
    parse_manifest(data[1:], MEDIA_TYPES[data[0] % len(MEDIA_TYPES)])
    config = ImageConfig.parse(data[1:])
    ImageConfig.parse(config.to_json())


if __name__ == "__main__":
    main(target)
