"""Pull and push against the real registry server (Debian's ``docker-registry``, the CNCF
distribution registry) on 127.0.0.1: plain HTTP, TLS with a CA made here, htpasswd basic
auth, and token auth with a token server here that follows Docker Hub's flow; with skopeo
on the other side, and the ``lamina`` command as a user runs it."""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import zstandard

from lamina.api.registry import login, pull, push
from lamina.image import mediatypes as mt
from lamina.image.config import ImageConfig, RootFS
from lamina.image.descriptor import Descriptor
from lamina.image.digest import chain_ids, sha256_digest
from lamina.image.manifest import build_index
from lamina.image.platform import Platform, host_platform
from lamina.registry.errors import UnauthorizedError
from lamina.registry.transport import TLSError
from lamina.store.commit import commit_image
from tests.helpers_images import layer_tar, make_image
from tests.integration.registry_fixtures import (  # noqa: F401 (fixtures)
    isolated, source, target)

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="docker-registry is not installed (scripts/setup.sh)")

LAMINA = Path(sys.executable).with_name("lamina")
SECRET = "Vry-s3cret-pa55"
SERVICE = "lamina-test-registry"
ISSUER = "lamina-test-token-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Distribution:
    """``docker-registry serve`` on a free loopback port, with its storage in ``directory``."""

    def __init__(self, directory: Path, auth: str = "", tls: tuple[Path, Path] | None = None,
                 client_ca: Path | None = None):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # another test may take the free port first: try another
            self.port = free_port()
            config = directory / "config.yml"
            tls_lines = f"\n  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}" if tls else ""
            if client_ca:
                tls_lines += f"\n    clientcas:\n      - {client_ca}"
            config.write_text(
                "version: 0.1\nlog:\n  level: error\n"
                f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n"
                f"http:\n  addr: 127.0.0.1:{self.port}{tls_lines}\n{auth}")
            self.process = subprocess.Popen(["docker-registry", "serve", str(config)],
                                            stdout=subprocess.DEVNULL,
                                            stderr=open(directory / "log", "wb"))
            if self._ready(tls is not None):
                return
            self.stop()
        raise RuntimeError(f"docker-registry did not start: {(directory / 'log').read_text()}")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ready(self, tls: bool) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            # Its /v2/ answering, not just a connect: another process may hold the port
            # (then the registry exits, "address in use").
            conn = (http.client.HTTPSConnection("127.0.0.1", self.port, timeout=1,
                                                context=ssl._create_unverified_context())
                    if tls else http.client.HTTPConnection("127.0.0.1", self.port, timeout=1))
            try:
                conn.request("GET", "/v2/")
                if conn.getresponse().getheader("Docker-Distribution-Api-Version"):
                    return self.process.poll() is None
            except ssl.SSLError:   # a TLS server that wants a client certificate: it answered
                return self.process.poll() is None
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def registry(tmp_path):
    server = Distribution(tmp_path / "registry")
    yield server
    server.stop()


def skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- round trips with the real registry and skopeo ----------------------------------------------

def test_push_then_pull_gives_the_same_image_and_unpacks(source, target, registry):
    reference = f"{registry.host}/team/app:1"
    built = make_image(source, layers=3, tag=reference)
    pushed = push(reference, store=source)
    assert pushed.digest == built.digest
    pulled = pull(reference, store=target)
    assert (pulled.digest, pulled.manifest_digest, pulled.image_id) == \
        (built.digest, built.digest, built.config_digest)
    lowers = target.snapshots.lowers(built.chain_ids)
    assert [p.name for p in lowers[-1].iterdir()] == ["data0"]
    assert (lowers[0] / "data2").read_bytes() == b"layer 2\n" * 300


def test_skopeo_reads_what_lamina_pushed(source, registry, tmp_path):
    reference = f"{registry.host}/team/app:1"
    built = make_image(source, layers=2, tag=reference)
    push(reference, store=source)
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reference}"))
    assert info["Digest"] == built.digest
    assert info["Layers"] == built.layer_digests
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reference}")
    assert raw.encode() == built.manifest.raw
    skopeo("copy", "--src-tls-verify=false", f"docker://{reference}",
           f"oci:{tmp_path / 'copy'}:app")
    assert (tmp_path / "copy" / "blobs" / "sha256" / built.digest[7:]).is_file()


@pytest.mark.parametrize("fmt, media_type", [("v2s2", mt.DOCKER_MANIFEST),
                                             ("oci", mt.OCI_MANIFEST)])
def test_lamina_pulls_what_skopeo_pushed(source, target, registry, fmt, media_type):
    built = make_image(source, layers=2, tag="skopeo/src:1")
    destination = f"{registry.host}/skopeo/app:{fmt}"
    skopeo("copy", "--dest-tls-verify=false", f"--format={fmt}",
           f"oci:{source.root}:docker.io/skopeo/src:1", f"docker://{destination}")
    pulled = pull(destination, store=target)
    stored = target.image(destination)
    assert stored.manifest().media_type == media_type
    assert pulled.image_id == built.config_digest
    assert [d.digest for d in stored.layers()] == built.layer_digests


def test_a_multi_platform_index_gives_this_machines_image(source, target, registry):
    other = Platform("linux", "s390x") if host_platform().architecture != "s390x" \
        else Platform("linux", "amd64")
    mine = make_image(source, layers=1, tag="multi/mine:1", seed="mine")
    theirs = make_image(source, layers=1, tag="multi/theirs:1", seed="theirs")
    index = build_index([mine.manifest.descriptor(platform=host_platform()),
                         theirs.manifest.descriptor(platform=other)])
    source.content.put_bytes(index.raw)
    source.tag("multi/app:1", index.digest)
    destination = f"{registry.host}/multi/app:1"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{source.root}:docker.io/multi/app:1",
           f"docker://{destination}")
    pulled = pull(destination, store=target)
    assert pulled.digest == index.digest
    assert pulled.manifest_digest == mine.digest
    assert target.resolve(destination).digest == mine.digest
    other_pull = pull(destination, store=target, platform=str(other), unpack=False)
    assert other_pull.manifest_digest == theirs.digest


def test_zstd_and_uncompressed_layers(source, target, registry):
    tars = [layer_tar({"z": b"zstd layer\n" * 50}), layer_tar({"p": b"plain layer\n" * 50})]
    with source.roots.lease() as lease:
        blobs = [source.content.put_bytes(zstandard.ZstdCompressor().compress(tars[0])),
                 source.content.put_bytes(tars[1])]
        layers = [Descriptor(mt.OCI_LAYER_ZSTD, blobs[0].digest, blobs[0].size),
                  Descriptor(mt.OCI_LAYER, blobs[1].digest, blobs[1].size)]
        platform = host_platform()
        config = ImageConfig(architecture=platform.architecture, os=platform.os,
                             rootfs=RootFS(diff_ids=tuple(sha256_digest(t) for t in tars)))
        reference = f"{registry.host}/team/mixed:1"
        desc = commit_image(source, config, layers, tags=[reference], lease=lease)
    push(reference, store=source, compression="none")  # the plain layer goes plain
    assert pull(reference, store=target).manifest_digest == desc.digest
    assert [d.media_type for d in target.image(reference).layers()] == \
        [mt.OCI_LAYER_ZSTD, mt.OCI_LAYER]
    top, bottom = target.snapshots.lowers(chain_ids(sha256_digest(t) for t in tars))
    assert (bottom / "z").read_bytes() == b"zstd layer\n" * 50
    assert (top / "p").read_bytes() == b"plain layer\n" * 50


# -- TLS ----------------------------------------------------------------------------------------

def make_ca(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for IP 127.0.0.1 signed by it: (ca, cert, key)."""
    directory.mkdir(parents=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", f"/CN={name}", cwd=directory)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1", cwd=directory)
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext",
            cwd=directory)
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


def test_tls_verified_with_a_ca_from_certs_d(source, target, tmp_path):
    ca, cert, key = make_ca(tmp_path / "pki", "lamina test CA")
    wrong_ca, _, _ = make_ca(tmp_path / "other-pki", "another CA")
    server = Distribution(tmp_path / "tls-registry", tls=(cert, key))
    try:
        certs_d = tmp_path / "certs.d"
        (certs_d / server.host).mkdir(parents=True)
        for store in (source, target):
            (store.root / "config.json").write_text(
                json.dumps({"certs-directory": str(certs_d)}))
        reference = f"{server.host}/team/app:1"
        built = make_image(source, layers=2, tag=reference)

        shutil.copy(wrong_ca, certs_d / server.host / "ca.crt")
        with pytest.raises(TLSError) as caught:
            push(reference, store=source)
        assert "not trusted" in str(caught.value)
        assert str(certs_d / server.host) in str(caught.value)

        shutil.copy(ca, certs_d / server.host / "ca.crt")
        push(reference, store=source)
        assert pull(reference, store=target).manifest_digest == built.digest
    finally:
        server.stop()


def test_a_client_certificate_from_certs_d(source, target, tmp_path):
    ca, cert, key = make_ca(tmp_path / "pki", "lamina test CA")
    server = Distribution(tmp_path / "mtls-registry", tls=(cert, key), client_ca=ca)
    try:
        certs_d = tmp_path / "certs.d" / server.host
        certs_d.mkdir(parents=True)
        (source.root / "config.json").write_text(
            json.dumps({"certs-directory": str(certs_d.parent)}))
        reference = f"{server.host}/team/app:1"
        built = make_image(source, layers=1, tag=reference)
        with pytest.raises(TLSError) as caught:
            push(reference, store=source)  # the registry wants a client certificate
        assert f"{certs_d}/client.cert" in str(caught.value)
        shutil.copy(ca, certs_d / "ca.crt")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(certs_d / "client.key"),
                "-out", "client.csr", "-subj", "/CN=lamina client", cwd=tmp_path / "pki")
        openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", str(certs_d / "client.cert"), "-days", "2",
                cwd=tmp_path / "pki")
        assert push(reference, store=source).digest == built.digest
    finally:
        server.stop()


def test_a_loopback_registry_with_tls_and_no_ca_is_used_unverified(source, tmp_path):
    _, cert, key = make_ca(tmp_path / "pki", "lamina test CA")
    server = Distribution(tmp_path / "tls-registry", tls=(cert, key))
    try:
        reference = f"{server.host}/team/app:1"
        built = make_image(source, layers=1, tag=reference)
        assert push(reference, store=source).digest == built.digest  # as Docker does
    finally:
        server.stop()


# -- auth ---------------------------------------------------------------------------------------

def htpasswd_registry(tmp_path) -> Distribution:
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd is not installed (apache2-utils, scripts/setup.sh)")
    line = subprocess.run(["htpasswd", "-Bbn", "ann", SECRET], capture_output=True, text=True,
                          check=True).stdout.strip()
    (tmp_path / "htpasswd").write_text(line + "\n")
    return Distribution(tmp_path / "auth-registry", auth=(
        f"auth:\n  htpasswd:\n    realm: lamina-test\n    path: {tmp_path / 'htpasswd'}\n"))


def cli(tmp_path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAMINA_ROOT": str(tmp_path / "source")}
    return subprocess.run([str(LAMINA), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def test_login_push_pull_logout_with_basic_auth(source, tmp_path):
    server = htpasswd_registry(tmp_path)
    try:
        reference = f"{server.host}/team/app:1"
        make_image(source, layers=2, tag=reference)
        config = tmp_path / "docker" / "config.json"

        refused = cli(tmp_path, "push", reference)
        assert refused.returncode == 125
        assert "authentication required" in refused.stderr
        assert f"lamina login {server.host}" in refused.stderr

        wrong = cli(tmp_path, "login", "-u", "ann", "--password-stdin", server.host,
                    stdin="not-" + SECRET + "\n")
        assert wrong.returncode == 125 and "refused the credentials" in wrong.stderr
        assert SECRET not in wrong.stdout + wrong.stderr and not config.exists()

        ok = cli(tmp_path, "login", "-u", "ann", "--password-stdin", server.host,
                 stdin=SECRET + "\n")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == "Login Succeeded\n"
        assert "stored unencrypted" in ok.stderr
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        entry = json.loads(config.read_text())["auths"][server.host]
        assert base64.b64decode(entry["auth"]).decode() == f"ann:{SECRET}"

        pushed = cli(tmp_path, "push", reference)
        pulled = cli(tmp_path, "pull", reference)
        for done in (pushed, pulled):
            assert done.returncode == 0, done.stderr
            assert SECRET not in done.stdout + done.stderr

        out = cli(tmp_path, "logout", server.host)
        assert out.stdout == f"Removing login credentials for {server.host}\n"
        assert json.loads(config.read_text())["auths"] == {}
        assert cli(tmp_path, "logout", server.host).stdout == \
            f"Not logged in to {server.host}\n"
    finally:
        server.stop()


class TokenServer:
    """Docker's token flow for the real registry: ``GET /token?service=&scope=``, basic
    credentials optional; RS256 JWTs with the signing certificate in ``x5c``, signed by
    openssl. Anonymous users may pull; ``users`` may pull and push."""

    def __init__(self, directory: Path, users: dict[str, str]) -> None:
        directory.mkdir(parents=True)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key",
                "-out", "token.crt", "-days", "2", "-subj", "/CN=lamina token signer",
                cwd=directory)
        self.key = directory / "token.key"
        self.cert = directory / "token.crt"
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             capture_output=True, check=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.users = users
        self.requests: list[dict[str, list[str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                server.requests.append(query)
                user = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if server.users.get(name) != password:
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    user = name
                body = json.dumps({"token": server.token(query.get("scope", []), user),
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/token"

    def token(self, scopes: list[str], user: str | None) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = [a for a in actions.split(",") if a == "pull" or user]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{_b64(json.dumps(header))}.{_b64(json.dumps(claims))}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), capture_output=True,
                                   check=True).stdout
        return f"{signing_input}.{_b64(signature)}"

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_bearer_tokens_with_the_real_registry(source, target, tmp_path, monkeypatch):
    tokens = TokenServer(tmp_path / "tokens", {"ann": SECRET})
    server = Distribution(tmp_path / "token-registry", auth=(
        f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    rootcertbundle: {tokens.cert}\n"))
    try:
        reference = f"{server.host}/team/app:1"
        built = make_image(source, layers=3, tag=reference)
        with pytest.raises(UnauthorizedError):
            push(reference, store=source)
        with pytest.raises(UnauthorizedError, match="incorrect username or password"):
            login(server.host, username="ann", password="wrong")
        login(server.host, username="ann", password=SECRET)
        push(reference, store=source)
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "anonymous"))
        tokens.requests.clear()
        assert pull(reference, store=target).manifest_digest == built.digest
        assert tokens.requests == [{"service": [SERVICE],
                                    "scope": ["repository:team/app:pull"]}]
    finally:
        server.stop()
        tokens.stop()


# -- the command line ---------------------------------------------------------------------------

def test_pull_and_push_print_what_docker_prints(source, registry, tmp_path):
    reference = f"{registry.host}/team/app:1"
    built = make_image(source, layers=2, tag=reference)
    ids = [d[7:19] for d in built.layer_digests]
    pushed = cli(tmp_path, "push", reference)
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/team/app]"
    assert sorted(lines[1:3]) == sorted(f"{i}: Pushed" for i in ids)
    assert lines[3] == f"1: digest: {built.digest} size: {len(built.manifest.raw)}"

    again = cli(tmp_path, "push", reference).stdout.splitlines()
    assert sorted(again[1:3]) == sorted(f"{i}: Layer already exists" for i in ids)

    source.index.remove(reference)
    for blob in built.layer_digests:
        source.content.delete(blob)
    pulled = cli(tmp_path, "pull", reference)
    assert pulled.returncode == 0, pulled.stderr
    lines = pulled.stdout.splitlines()
    assert lines[0] == "1: Pulling from team/app"
    assert sorted(lines[1:3]) == sorted(f"{i}: Pull complete" for i in ids)
    assert lines[3:] == [f"Digest: {built.digest}",
                         f"Status: Downloaded newer image for {reference}", reference]
    again = cli(tmp_path, "pull", reference).stdout.splitlines()
    assert again[-2] == f"Status: Image is up to date for {reference}"
    assert cli(tmp_path, "pull", "-q", reference).stdout == reference + "\n"


def test_pull_of_an_unknown_tag_fails_clearly(registry, tmp_path):
    done = cli(tmp_path, "pull", f"{registry.host}/team/nope")
    assert done.returncode == 125
    assert done.stdout == "Using default tag: latest\nlatest: Pulling from team/nope\n"
    assert done.stderr.startswith(
        f"lamina: manifest {registry.host}/team/nope:latest: not found")
