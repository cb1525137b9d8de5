"""Pull and push against lamina.testing's in-process registry (127.0.0.1 only): the auth
flows, the faults (5xx, 429, cut and damaged downloads), chunked uploads, mounts, skipped
blobs, redirects, paginated tags and mirrors, counted request by request."""
from __future__ import annotations

import json

import pytest

from lamina.api import check
from lamina.api.registry import login, pull, pull_all_tags, push, remote_tags
from lamina.image.platform import Platform, host_platform
from lamina.image.reference import parse_normalized
from lamina.registry import quirks, transport
from lamina.registry.client import Session
from lamina.registry.config import RegistryConfig
from lamina.registry.errors import (RateLimitedError, RemoteNotFoundError, TransferError,
                                    UnauthorizedError, UnavailableError)
from lamina.registry.pull import pull_image
from lamina.testing.registry import FakeRegistry
from tests.helpers_images import make_image
from tests.integration.registry_fixtures import (  # noqa: F401 (fixtures)
    isolated, source, target)

SECRET = "pa55-w0rd-never-shown"


@pytest.fixture
def registry():
    with FakeRegistry() as fake:
        yield fake


def pushed(store, registry, name="team/app:1", layers=3, seed=""):
    """An image made in ``store`` and pushed to ``registry``; returns (reference, built)."""
    reference = f"{registry.host}/{name}"
    built = make_image(store, layers=layers, tag=reference, seed=seed)
    push(reference, store=store)
    return reference, built


def uploads(registry) -> int:
    return registry.count("PUT", "/blobs/uploads/") + registry.count("PATCH", "/blobs/uploads/")


# -- round trip, skipping and mounting --------------------------------------------------------

def test_push_then_pull_keeps_the_digest(source, target, registry):
    reference, built = pushed(source, registry)
    # the manifest went last, after every blob
    assert registry.requests[-1] == ("PUT", "/v2/team/app/manifests/1")
    assert registry.count("PUT", "/manifests/") == 1
    result = pull(reference, store=target, unpack=False)
    assert result.digest == result.manifest_digest == built.digest
    assert result.image_id == built.config_digest
    assert result.layers_downloaded == 3
    assert target.resolve(reference).digest == built.digest


def test_a_second_push_sends_no_blob(source, registry):
    reference, built = pushed(source, registry)
    before = uploads(registry)
    events = []
    push(reference, store=source, progress=events.append)
    assert uploads(registry) == before
    assert registry.count("HEAD", "/blobs/") == 2 * (len(built.layer_digests) + 1)
    assert {e.status for e in events if e.final} == {"Layer already exists"}


def test_a_push_that_failed_at_the_manifest_resends_no_blob(source, registry):
    reference = f"{registry.host}/team/app:1"
    make_image(source, layers=3, tag=reference)
    registry.fail("PUT", "/manifests/", status=500, times=100)
    with pytest.raises(UnavailableError) as caught:
        push(reference, store=source)
    assert "manifest" in str(caught.value) and "team/app:1" in str(caught.value)
    sent = uploads(registry)
    assert sent == 4  # three layers and the config, once each
    registry._faults.clear()
    push(reference, store=source)
    assert uploads(registry) == sent


def test_pulling_again_downloads_nothing(source, target, registry):
    reference, _ = pushed(source, registry)
    pull(reference, store=target, unpack=False)
    gets = registry.count("GET", "/blobs/")
    again = pull(reference, store=target, unpack=False)
    assert again.up_to_date and again.layers_downloaded == 0
    assert registry.count("GET", "/blobs/") == gets  # not even the config


def test_blobs_are_mounted_from_a_repository_known_to_have_them(source, registry):
    reference, built = pushed(source, registry)
    other = f"{registry.host}/elsewhere/copy:2"
    source.tag(other, built.digest)
    before = uploads(registry)
    events = []
    push(other, store=source, progress=events.append)
    assert uploads(registry) == before
    assert registry.count("POST", "/v2/elsewhere/copy/blobs/uploads/") == 4
    assert {e.status for e in events if e.final} == {"Mounted from team/app"}
    assert registry.manifests["elsewhere/copy"]["2"][0] == built.manifest.raw


def test_a_refused_mount_becomes_an_upload_in_the_session_it_opened(source, registry):
    reference, built = pushed(source, registry)
    registry.repo_blobs["team/app"].clear()  # gone from there since (deleted, say)
    other = f"{registry.host}/elsewhere/copy:2"
    source.tag(other, built.digest)
    events = []
    push(other, store=source, progress=events.append)
    assert registry.count("POST", "/v2/elsewhere/copy/blobs/uploads/") == 4  # mounts only
    assert registry.count("PUT", "/v2/elsewhere/copy/blobs/uploads/") == 4
    assert {e.status for e in events if e.final} == {"Pushed"}


def test_a_pulled_blob_is_mounted_when_pushed_elsewhere(source, target, registry):
    reference, built = pushed(source, registry)
    pull(reference, store=target, unpack=False)
    target.tag(f"{registry.host}/mine/app:1", built.digest)
    push(f"{registry.host}/mine/app:1", store=target)
    assert registry.count("POST", "/v2/mine/app/blobs/uploads/") == 4
    assert registry.count("PUT", "/v2/mine/app/blobs/uploads/") == 0


def test_chunked_uploads(source, target, registry):
    reference = f"{registry.host}/team/chunky:1"
    built = make_image(source, layers=2, tag=reference)
    push(reference, store=source, chunk_size=100)
    total = sum(d.size for d in (*built.manifest.layers, built.manifest.config))
    chunks = sum(-(-d.size // 100) for d in (*built.manifest.layers, built.manifest.config))
    assert registry.count("PATCH", "/blobs/uploads/") == chunks > 3
    assert sum(len(registry.blobs[d]) for d in built.blobs - {built.digest}) == total
    assert pull(reference, store=target, unpack=False).manifest_digest == built.digest


# -- auth ---------------------------------------------------------------------------------------

def test_bearer_flow_anonymous_pull_and_push_after_login(source, target, tmp_path,
                                                         monkeypatch):
    with FakeRegistry(auth="bearer", users={"ann": SECRET}) as registry:
        reference = f"{registry.host}/team/app:1"
        make_image(source, layers=3, tag=reference)
        with pytest.raises(UnauthorizedError) as caught:
            push(reference, store=source)
        assert f"{registry.host}/team/app" in str(caught.value)
        assert f"lamina login {registry.host}" in str(caught.value)
        login(registry.host, username="ann", password=SECRET)
        push(reference, store=source)
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "nobody"))  # anonymous now
        registry.token_requests.clear()
        assert pull(reference, store=target, unpack=False).manifest_digest
        # one token for the whole pull, asked for the scope it needs
        assert registry.token_requests == [{"service": ["lamina-fake-registry"],
                                            "scope": ["repository:team/app:pull"]}]


def test_tokens_are_cached_per_scope_and_renewed_after_a_401(source, target):
    with FakeRegistry(auth="bearer") as registry:
        registry.auth = "none"
        reference, _ = pushed(source, registry)
        registry.auth = "bearer"
        ref = parse_normalized(reference)
        with Session(RegistryConfig()) as session:
            pull_image(target, ref, session, unpack=False)
            assert len(registry.token_requests) == 1
            target.index.remove(reference)
            pull_image(target, ref, session, unpack=False)
            assert len(registry.token_requests) == 1  # the cached token served again
            registry.revoke_tokens()
            pull_image(target, ref, session, unpack=False)
            assert len(registry.token_requests) == 2  # a 401, a new token, and on


def test_an_identity_token_is_exchanged_for_access_tokens(source, tmp_path):
    with FakeRegistry(auth="bearer", identity_tokens={"refresh-" + SECRET: "ann"}) as registry:
        docker = tmp_path / "docker"
        docker.mkdir()
        (docker / "config.json").write_text(json.dumps(
            {"auths": {registry.host: {"identitytoken": "refresh-" + SECRET}}}))
        reference, built = pushed(source, registry)
        assert registry.manifests["team/app"]["1"][0] == built.manifest.raw
        posted = registry.token_requests[-1]
        assert posted["grant_type"] == ["refresh_token"]
        assert posted["scope"] == ["repository:team/app:pull,push"]


def test_the_token_server_refuses_a_wrong_password(tmp_path):
    with FakeRegistry(auth="bearer", users={"ann": SECRET}) as registry:
        with pytest.raises(UnauthorizedError) as caught:
            login(registry.host, username="ann", password=SECRET + "x")
        assert "incorrect username or password" in str(caught.value)
        assert SECRET not in str(caught.value)
        assert not (tmp_path / "docker" / "config.json").exists()


def test_basic_auth(source, target):
    with FakeRegistry(auth="basic", users={"ann": SECRET}) as registry:
        reference = f"{registry.host}/team/app:1"
        make_image(source, layers=2, tag=reference)
        with pytest.raises(UnauthorizedError, match="authentication required"):
            push(reference, store=source)
        with pytest.raises(UnauthorizedError) as caught:
            login(registry.host, username="ann", password="wrong")
        assert "refused the credentials" in str(caught.value)
        login(registry.host, username="ann", password=SECRET)
        push(reference, store=source)
        assert pull(reference, store=target, unpack=False).layers_downloaded == 2


def test_blob_redirects_do_not_carry_the_credentials(source, target):
    with FakeRegistry(auth="basic", users={"ann": SECRET}, redirect_blobs=True) as registry:
        login(registry.host, username="ann", password=SECRET)
        reference, _ = pushed(source, registry)
        pull(reference, store=target, unpack=False)
        assert len(registry.storage_authorizations) == 4  # the config and three layers
        assert set(registry.storage_authorizations) == {None}


# -- faults -------------------------------------------------------------------------------------

def test_5xx_and_429_are_retried(source, target, registry):
    reference, built = pushed(source, registry)
    registry.fail("GET", "/manifests/", status=503, times=2)
    registry.fail("GET", built.layer_digests[0], status=429, retry_after="0")
    registry.fail("HEAD", "/blobs/", status=502)
    registry.fail("PUT", "/manifests/", status=500)
    assert pull(reference, store=target, unpack=False).manifest_digest == built.digest
    push(reference, store=source)
    assert registry.count("GET", "/manifests/") == 3


def test_a_registry_that_keeps_failing_is_reported(target, registry):
    registry.fail("GET", "/manifests/", status=500, times=100)
    reference = f"{registry.host}/team/app:1"
    with pytest.raises(UnavailableError) as caught:
        pull(reference, store=target)
    assert str(caught.value).startswith(f"manifest {reference}: {registry.host} failed with 500")
    assert registry.count("GET", "/manifests/") == transport.ATTEMPTS


def test_a_long_rate_limit_is_reported_not_waited_for(target, registry):
    registry.fail("GET", "/manifests/", status=429, retry_after="3600", times=100)
    with pytest.raises(RateLimitedError) as caught:
        pull(f"{registry.host}/team/app:1", store=target)
    assert "429 Too Many Requests" in str(caught.value)
    assert "retry after 3600 s" in str(caught.value)
    assert registry.count("GET", "/manifests/") == 1


@pytest.mark.parametrize("fault", ["drop", "corrupt"])
def test_a_cut_or_damaged_download_is_fetched_again(source, target, registry, fault):
    reference, built = pushed(source, registry)
    layer = built.layer_digests[1]
    registry.fail("GET", layer, **{fault: True})
    assert pull(reference, store=target, unpack=False).manifest_digest == built.digest
    assert registry.count("GET", layer) == 2
    target.content.verify(layer)


@pytest.mark.parametrize("unpack", [False, True])
def test_a_download_damaged_every_time_fails_and_leaves_nothing_trusted(source, target,
                                                                       registry, unpack):
    reference, built = pushed(source, registry)
    layer = built.layer_digests[2]
    registry.fail("GET", layer, corrupt=True, times=100)
    with pytest.raises(TransferError) as caught:
        pull(reference, store=target, unpack=unpack)
    message = str(caught.value)
    assert reference in message and layer in message and "attempts" in message
    assert not target.content.has(layer)
    assert target.index.list() == []
    report = check(store=target)
    assert report.problems == ()
    target.gc()
    assert list(target.content.digests()) == []
    assert not any(target.snapshots.exists(c) for c in built.chain_ids)


def test_an_unknown_image_names_the_reference(target, registry):
    with pytest.raises(RemoteNotFoundError) as caught:
        pull(f"{registry.host}/team/nope:1", store=target)
    assert str(caught.value).startswith(f"manifest {registry.host}/team/nope:1: not found")


def test_an_unreachable_registry(target):
    with pytest.raises(UnavailableError, match="cannot reach 127.0.0.1:9"):
        pull("127.0.0.1:9/team/app:1", store=target)


# -- platforms, tags, mirrors -------------------------------------------------------------------

def put_index(registry, store, name, platforms):
    """An index in ``registry`` with one image per platform (made in ``store``, pushed by
    digest); returns {platform: manifest digest}."""
    chosen = {}
    entries = []
    for i, plat in enumerate(platforms):
        built = make_image(store, layers=1, tag=f"{registry.host}/{name}:p{i}", seed=str(plat))
        push(f"{registry.host}/{name}:p{i}", store=store)
        chosen[plat] = built.digest
        obj = {"os": plat.os, "architecture": plat.architecture}
        if plat.variant:
            obj["variant"] = plat.variant
        entries.append({"mediaType": built.manifest.media_type, "digest": built.digest,
                        "size": len(built.manifest.raw), "platform": obj})
    raw = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": entries}).encode()
    registry.manifests[name]["multi"] = (raw, "application/vnd.oci.image.index.v1+json")
    return chosen


def test_an_index_gives_the_platform_asked_for(source, target, registry):
    other = Platform("linux", "s390x")
    chosen = put_index(registry, source, "team/multi", [other, host_platform()])
    reference = f"{registry.host}/team/multi:multi"
    mine = pull(reference, store=target, unpack=False)
    assert mine.manifest_digest == chosen[host_platform()]
    assert mine.digest != mine.manifest_digest  # the registry's digest is the index's
    theirs = pull(reference, store=target, platform="linux/s390x", unpack=False)
    assert theirs.manifest_digest == chosen[other]
    with pytest.raises(Exception, match=r"no image for platform linux/mips64.*s390x"):
        pull(reference, store=target, platform="linux/mips64", unpack=False)


def test_all_tags_page_after_page(source, target):
    with FakeRegistry(page_size=2) as registry:
        for tag in ("a", "b", "c", "d", "e"):
            pushed(source, registry, f"team/app:{tag}", layers=1, seed=tag)
        assert remote_tags(f"{registry.host}/team/app") == ["a", "b", "c", "d", "e"]
        results = pull_all_tags(f"{registry.host}/team/app", store=target, unpack=False)
        assert [r.name.rsplit(":", 1)[1] for r in results] == ["a", "b", "c", "d", "e"]


def with_mirrors(store, *urls):
    (store.root / "config.json").write_text(json.dumps({"registry-mirrors": list(urls)}))


def test_a_mirror_serves_docker_hub_first(source, target, monkeypatch):
    with FakeRegistry() as mirror, FakeRegistry() as hub:
        monkeypatch.setattr(quirks, "DOCKER_HUB_HOST", hub.host)
        _, built = pushed(source, mirror, "library/busybox:latest", layers=1)
        with_mirrors(target, f"http://{mirror.host}")
        result = pull("busybox", store=target, unpack=False)
        assert result.source == f"http://{mirror.host}"
        assert result.manifest_digest == built.digest
        assert hub.requests == []
        assert target.resolve("busybox").digest == built.digest


@pytest.mark.parametrize("mirror_state", ["empty", "down"])
def test_docker_hub_itself_when_the_mirror_cannot_serve(source, target, monkeypatch,
                                                       mirror_state):
    with FakeRegistry() as mirror, FakeRegistry() as hub:
        monkeypatch.setattr(quirks, "DOCKER_HUB_HOST", hub.host)
        _, built = pushed(source, hub, "library/busybox:latest", layers=1)
        url = f"http://{mirror.host}"
        if mirror_state == "down":
            mirror.stop()
        with_mirrors(target, url)
        # the hub fake speaks plain HTTP on loopback, as the real Hub speaks TLS
        result = pull("busybox", store=target, unpack=False)
        assert result.source == hub.host
        assert result.manifest_digest == built.digest
