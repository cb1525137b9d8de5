"""--cache-to / --cache-from type=registry: a build cache pushed from one state root to the
real registry server (``docker-registry`` on 127.0.0.1) makes a build in another, empty
state root reuse every step; what cannot be imported is a warning, a failed export an error
that says the image was built."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from lamina.errors import LaminaError
from lamina.store import Store
from tests.integration.registry_fixtures import isolated  # noqa: F401 (fixture)
from tests.integration.test_registry_distribution import Distribution, skopeo

from tests.helpers_build import make_context

pytest_plugins = ["tests.conftest_build"]   # store (with busybox), lamina
pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="docker-registry is not installed (scripts/setup.sh)")

CACHE_TYPE = "application/vnd.lamina.buildcache.config.v1+json"
DOCKERFILE = """\
FROM busybox AS tools
RUN echo tool > /tool
FROM busybox
ENV GREETING=hi
RUN echo "$GREETING" > /greeting
COPY app.txt /app/
RUN cat /app/app.txt /greeting > /app/both
COPY --from=tools /tool /app/tool
WORKDIR /app
CMD ["cat", "/greeting"]
"""


@pytest.fixture
def registry(tmp_path):
    server = Distribution(tmp_path / "registry")
    yield server
    server.stop()


@pytest.fixture
def fresh_store(store, tmp_path):
    """Another machine: a new state root holding only the same busybox (saved, loaded)."""
    from lamina.api import load, save

    archive = io.BytesIO()
    save(["busybox:latest"], archive, store=store)

    def make(name: str) -> Store:
        other = Store.open(tmp_path / name)
        archive.seek(0)
        load(archive, store=other)
        return other
    return make


def _context(tmp_path: Path, app: str = "app\n") -> Path:
    return make_context(tmp_path / "ctx", DOCKERFILE, {"app.txt": app})


def _build(store_: Store, ctx: Path, **kwargs):
    from lamina.api.build import build
    from lamina.build.progress import PlainProgress

    log = io.StringIO()
    result = build(ctx, store=store_, tags=["app"], progress=PlainProgress(log), **kwargs)
    return result, log.getvalue()


def files_of(store_: Store, name: str):
    from tests.conftest_build import files_of   # here: the plugin module is loaded first
    return files_of(store_, name)


def _cached(result) -> dict[str, bool]:
    return {f"{s.stage}: {s.instruction}": s.cached for s in result.steps}


@pytest.mark.parametrize("mode,compression", [("max", "gzip"), ("min", "uncompressed")])
def test_a_fresh_state_root_builds_all_cached_from_the_registry(
        store, fresh_store, registry, tmp_path, mode, compression):
    ctx = _context(tmp_path)
    ref = f"{registry.host}/cache:app"
    first, log = _build(store, ctx, cache_to=f"type=registry,ref={ref},mode={mode},"
                                             f"compression={compression}")
    assert f"exporting cache to registry {ref}" in log and "pushed: sha256:" in log, log

    other = fresh_store("machine-b")
    second, log = _build(other, ctx, cache_from=f"type=registry,ref={ref}")
    assert f"importing cache manifest from {ref}" in log
    assert second.image_id == first.image_id and second.digest == first.digest
    assert second.warnings == ()
    final = {k: v for k, v in _cached(second).items() if not k.startswith("tools")}
    assert final and all(final.values()), log
    tools = [v for k, v in _cached(second).items() if k.startswith("tools")]
    # max exports every stage; min only the final one, so the tools stage runs again
    assert tools == ([True] if mode == "max" else [False])
    files = files_of(other, "app")   # the image is whole there: its files can be read
    assert files["app/both"][4] == b"app\nhi\n" and files["app/tool"][4] == b"tool\n"


def test_a_changed_file_reruns_only_the_steps_after_its_copy(store, fresh_store, registry,
                                                             tmp_path):
    ctx = _context(tmp_path)
    ref = f"{registry.host}/team/cache:main"
    _build(store, ctx, cache_to=f"type=registry,ref={ref},mode=max")
    _context(tmp_path, app="changed\n")
    other = fresh_store("machine-c")
    result, log = _build(other, ctx, cache_from=ref)   # a bare REF, as with docker buildx
    assert _cached(result) == {
        "tools: RUN echo tool > /tool": True,
        "1: ENV GREETING=hi": True,
        '1: RUN echo "$GREETING" > /greeting': True,
        "1: COPY app.txt /app/": False,
        "1: RUN cat /app/app.txt /greeting > /app/both": False,
        "1: COPY --from=tools /tool /app/tool": False,
        "1: WORKDIR /app": False,
        '1: CMD ["cat", "/greeting"]': False,
    }, log
    assert files_of(other, "app")["app/both"][4] == b"changed\nhi\n"


def test_the_cache_manifest_is_an_oci_manifest_skopeo_reads(store, fresh_store, registry,
                                                            tmp_path):
    ctx = _context(tmp_path)
    ref = f"{registry.host}/cache:app"
    first, _ = _build(store, ctx, cache_to=f"type=registry,ref={ref}")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").encode()
    manifest = json.loads(raw)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == CACHE_TYPE
    assert manifest["config"]["mediaType"] == CACHE_TYPE
    built = store.image("app")
    plain = {d.digest for d in built.layers()
             if d.media_type == "application/vnd.oci.image.layer.v1.tar"}
    # The layers the build made left gzip-compressed, each naming the plain tar it holds.
    sent = {d["annotations"]["containerd.io/uncompressed"]: d for d in manifest["layers"]
            if "annotations" in d}
    assert plain and plain <= set(sent)
    assert all(d["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
               for d in sent.values())
    # The config blob is lamina's record list: skopeo fetches it like any blob.
    config = json.loads(skopeo("inspect", "--config", "--raw", "--tls-verify=false",
                               f"docker://{ref}"))
    assert config["version"] == 1 and len(config["records"]) == 7
    # The cache can be named by the digest skopeo computes, as well as by its tag.
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    other = fresh_store("machine-b")
    second, log = _build(other, ctx, cache_from=f"type=registry,ref={registry.host}/cache@{digest}")
    assert second.image_id == first.image_id and second.warnings == (), log


def test_a_second_export_sends_no_blob_again(lamina, store, registry, tmp_path):
    ctx = _context(tmp_path)
    ref = f"{registry.host}/cache:cli"
    out = lamina("build", "--progress", "plain", "-t", "app",
                 "--cache-to", f"type=registry,ref={ref},mode=max", str(ctx))
    assert "pushed: sha256:" in out.stderr
    out = lamina("build", "--progress", "plain", "-t", "app",
                 "--cache-to", f"type=registry,ref={ref},mode=max", str(ctx))
    assert "layer already exists: sha256:" in out.stderr
    assert "pushed: sha256:" not in out.stderr, out.stderr
    out = lamina("build", "--progress", "plain", "-t", "app", "--cache-from", ref, str(ctx))
    assert f"importing cache manifest from {ref}" in out.stderr


@pytest.mark.parametrize("where", ["missing tag", "no registry", "not a cache"])
def test_a_cache_that_cannot_be_imported_is_a_warning(store, fresh_store, registry, tmp_path,
                                                      where):
    from lamina.api.registry import push

    if where == "missing tag":
        ref = f"{registry.host}/cache:nothing"
        expected = "not found"
    elif where == "no registry":
        ref = "127.0.0.1:9/cache:app"   # the discard port: nothing listens
        expected = "127.0.0.1:9"
    else:   # an ordinary image at the reference
        ref = f"{registry.host}/cache:image"
        store.tag(ref, store.resolve("busybox:latest").digest)
        push(ref, store=store)
        expected = "not a lamina build cache"
    ctx = _context(tmp_path)
    other = fresh_store("machine-b")
    result, log = _build(other, ctx, cache_from=f"type=registry,ref={ref}")
    assert len(result.warnings) == 1 and expected in result.warnings[0], result.warnings
    assert "WARNING: cache import from" in log
    assert not any(s.cached for s in result.steps if s.layer)
    assert files_of(other, "app")["app/both"][4] == b"app\nhi\n"   # built all the same


def test_a_failed_export_is_an_error_after_the_image_is_built(store, tmp_path):
    ctx = _context(tmp_path)
    with pytest.raises(LaminaError) as caught:
        _build(store, ctx, cache_to="type=registry,ref=127.0.0.1:9/cache:app")
    assert "was built, but exporting its build cache to 127.0.0.1:9/cache:app failed: " \
           "cannot reach 127.0.0.1:9" in caught.value.message
    image_id = caught.value.message.split("the image ", 1)[1].split()[0]
    assert store.image("app").manifest().config.digest == image_id   # built and named
    result, log = _build(store, ctx, cache_to="type=registry,ref=127.0.0.1:9/cache:app,"
                                              "ignore-error=true")
    assert result.image_id == image_id
    assert any("cache export to 127.0.0.1:9/cache:app failed (ignored)" in w
               for w in result.warnings), result.warnings


def test_a_damaged_layer_in_the_registry_is_not_trusted(store, fresh_store, registry,
                                                        tmp_path):
    ctx = _context(tmp_path)
    ref = f"{registry.host}/cache:app"
    _build(store, ctx, cache_to=f"type=registry,ref={ref},compression=uncompressed")
    # The registry serves its files as they are: alter the blob of the layer COPY made.
    copy_layer = store.image("app").layers()[2].digest
    blob = next((registry.directory / "data").rglob(f"blobs/sha256/*/{copy_layer[7:]}/data"))
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF
    blob.write_bytes(bytes(data))
    other = fresh_store("machine-b")
    result, log = _build(other, ctx, cache_from=f"type=registry,ref={ref}")
    assert any(copy_layer in w and "could not be fetched" in w for w in result.warnings), \
        result.warnings
    steps = _cached(result)
    assert steps['1: RUN echo "$GREETING" > /greeting'] is True   # its layers were fine
    assert steps["1: COPY app.txt /app/"] is False                 # rebuilt, not trusted
    # Nothing damaged was stored: a blob of that digest exists only if the rebuild made the
    # same layer again, and then its bytes match its digest.
    if other.content.has(copy_layer):
        other.content.verify(copy_layer)
