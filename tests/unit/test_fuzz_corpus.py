"""A corpus of hostile layers and images (issue 9, item 3), beyond test_layer_malicious.py.

Layers go through ``apply_layer``; images go the whole way a user's would: ``load`` of an
archive into a store, then an unpack of every image it named. Each attack must end in a
``LaminaError`` (``refused``) or, for the few Docker accepts, be applied with everything kept
inside the target (``contained``); whatever happens, nothing outside the target or the store
changes, and the store passes ``system check`` afterwards.

Decompression bombs: apply streams (a bounded read-ahead, never the whole layer in memory),
so a bomb costs no memory. A file larger than the free space is refused before it is written
(LayerError "the file needs N bytes but only M are free here"); many smaller files stop at
the first write that finds the file system full (LayerError "No space left on device"); both
name the entry, and the store applies into a temporary snapshot dir it then removes. A GNU
sparse file keeps its holes (a "1 TiB" entry costs its few data bytes).
``test_decompression_bombs_stop_with_bounded_memory`` applies 1 GiB gzip and zstd bombs (one
file, and 256 files) into a 16 MiB tmpfs in a child process and checks its peak memory.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Callable

import pytest
import zstandard

from lamina.errors import LaminaError
from lamina.image import mediatypes as mt
from lamina.layer import apply_layer
from tests.unit.test_layer_apply import build_tar, entry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="apply_layer needs root")

FIGURES: dict[str, list[str]] = {"refused": [], "contained": [], "failed": []}


# -- hostile layers ---------------------------------------------------------------------------

def _raw_header(name: str, size_field: bytes, kind: bytes = b"0") -> bytes:
    """A ustar header with ``size_field`` (12 bytes) as given, checksum fixed."""
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"0000644\x00"
    h[108:116] = b"0000000\x00"
    h[116:124] = b"0000000\x00"
    h[124:136] = size_field
    h[136:148] = b"00000000000\x00"
    h[156:157] = kind
    h[257:263] = b"ustar\x00"
    h[263:265] = b"00"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\x00 " % sum(h)
    return bytes(h)


def _base256(value: int) -> bytes:
    return bytes([0x80]) + value.to_bytes(11, "big", signed=False)


def _negative_size() -> bytes:
    return _raw_header("neg", bytes([0xff]) + (-5).to_bytes(11, "big", signed=True)[0:11]) \
        + b"\0" * 1024


def _sparse_huge() -> bytes:
    """GNU sparse 1.0 (pax): a 1 TiB file of a few real bytes."""
    data = b"1\n0\n4\n" + b"\0" * 506 + b"data"
    info, _ = entry("GNUSparseFile.0/sparse", data=data, pax={
        "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse",
        "GNU.sparse.realsize": str(1 << 40)})
    return build_tar((info, data))


def _deep() -> bytes:
    name = "/".join(["d"] * 1500) + "/f"
    return build_tar(entry(name, data=b"x"))


LAYER_ATTACKS: list[tuple[str, Callable[[], bytes]]] = [
    ("huge-size-base256-no-data", lambda: _raw_header("big", _base256(1 << 62)) + b"\0" * 1024),
    ("huge-size-octal-truncated", lambda: _raw_header("big", b"77777777777\x00") + b"x" * 512),
    ("pax-size-huge", lambda: build_tar(entry("f", data=b"x", pax={"size": "9" * 40}))),
    ("negative-size-base256", _negative_size),
    ("gnu-sparse-terabyte", _sparse_huge),
    ("truncated-gzip", lambda: gzip.compress(build_tar(entry("f", data=os.urandom(5000))))[:2000]),
    ("gzip-of-garbage", lambda: gzip.compress(os.urandom(3000))),
    ("zstd-of-garbage", lambda: zstandard.ZstdCompressor().compress(os.urandom(3000))),
    ("gzip-bad-crc", lambda: (lambda b: b[:-8] + bytes(8))(gzip.compress(build_tar(entry("f"))))),
    ("device-node-hardlinked-from-host", lambda: build_tar(entry("sda", "hardlink",
                                                                 link="/dev/sda"))),
    ("device-node-dot-slash-escape", lambda: build_tar(entry("./../outside/zero", "chr",
                                                             dev=(1, 5)))),
    ("device-node-pax-path-escape", lambda: build_tar(entry("ok", "blk", dev=(8, 0), pax={
        "path": "../outside/sda"}))),
    ("symlink-to-proc-root-then-write", lambda: build_tar(
        entry("p", "symlink", link="/proc/1/root"), entry("p/etc/evil"))),
    ("hardlink-through-proc-root", lambda: build_tar(
        entry("p", "symlink", link="/proc/self/root"), entry("h", "hardlink",
                                                            link="p/etc/passwd"))),
    ("file-as-parent", lambda: build_tar(entry("a"), entry("a/b"))),
    ("hardlink-to-itself", lambda: build_tar(entry("h", "hardlink", link="h"))),
    ("overlay-opaque-xattr-injection", lambda: build_tar(entry("d", "dir", pax={
        "SCHILY.xattr.trusted.overlay.opaque": "y"}))),
    ("overlay-redirect-xattr-injection", lambda: build_tar(entry("d", "dir", pax={
        "SCHILY.xattr.trusted.overlay.redirect": "/etc"}))),
    ("pax-path-10k-chars", lambda: build_tar(entry("f", pax={"path": "a/" * 5000 + "f"}))),
    ("deep-1500-directories", _deep),
    ("pax-linkpath-symlink-then-write", lambda: build_tar(
        entry("l", "symlink", link="ok", pax={"linkpath": "/"}), entry("l/tmp/evil"))),
]

# What Docker also accepts, kept inside the target: (name -> check of the target)
CONTAINED = {
    "overlay-opaque-xattr-injection":
        lambda t: "trusted.overlay.opaque" not in os.listxattr(t / "d", follow_symlinks=False),
    "overlay-redirect-xattr-injection":
        lambda t: "trusted.overlay.redirect" not in os.listxattr(t / "d", follow_symlinks=False),
    "deep-1500-directories": lambda t: (t / "d").is_dir(),
    "gnu-sparse-terabyte": lambda t: os.stat(t / "sparse").st_blocks < 1024,  # holes kept
    "negative-size-base256": lambda t: os.stat(t / "neg").st_size == 0,
    "pax-path-10k-chars": lambda t: (t / "a").is_dir(),
    "pax-linkpath-symlink-then-write": lambda t: not Path("/tmp/evil").exists(),
}


def _snapshot(root: Path, skip: set[Path]) -> dict[str, tuple]:
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path in skip:
                continue
            st = os.lstat(path)
            data = (hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode)
                    else None)
            seen[str(path)] = (st.st_mode, st.st_nlink, st.st_mtime_ns, data)
    return seen


def _host_files() -> list[tuple]:
    return [(os.stat(p).st_nlink, os.stat(p).st_mtime_ns, os.stat(p).st_ctime_ns)
            for p in ("/etc/passwd", "/etc/shadow")] + [Path("/tmp/evil").exists(),
                                                               Path("/etc/evil").exists()]


@pytest.fixture
def fs(tmp_path):
    """A small tmpfs to run each attack in: whatever an attack makes lamina write, it can
    never fill the host's disk (a sparse or zero-filled file of a terabyte)."""
    path = tmp_path / "fs"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep me")
    return outside


@pytest.mark.parametrize("name, make", LAYER_ATTACKS, ids=[n for n, _ in LAYER_ATTACKS])
def test_hostile_layer_is_refused_or_contained(fs, name, make, record_property):
    tmp_path = fs
    _outside(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    data = make()
    before, host = _snapshot(tmp_path, {target}), _host_files()
    from lamina.layer import open_decompressed
    try:
        apply_layer(open_decompressed(io.BytesIO(data)), target)
    except LaminaError as err:
        assert str(err)
        outcome = "refused"
    else:
        outcome = "contained"
        assert name in CONTAINED, f"{name}: applied without complaint"
        assert CONTAINED[name](target), f"{name}: applied, but not as it should be"
    finally:
        FIGURES["failed"].append(name)
    assert _snapshot(tmp_path, {target}) == before
    assert _host_files() == host
    FIGURES["failed"].remove(name)
    FIGURES[outcome].append(name)
    record_property("lamina_figure", ("hostile corpus", outcome, 1))


# -- decompression bombs ----------------------------------------------------------------------

BOMB_SIZE = 1 << 30     # what the bomb expands to
BOMB_SCRIPT = r"""
import io, os, sys
from lamina.layer import apply_layer, open_decompressed, LayerError
path, target = sys.argv[1], sys.argv[2]
try:
    with open(path, "rb") as f:
        apply_layer(open_decompressed(f), target)
except LayerError as err:
    print("ERROR", err)
else:
    print("APPLIED")
# VmHWM, this process's own peak: ru_maxrss would carry the peak of the (pytest) process
# that started it over the exec.
with open("/proc/self/status") as status:
    print("MAXRSS", next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def _bomb(path: Path, kind: str, files: int = 1) -> None:
    """A layer of ``files`` files of zeros, BOMB_SIZE in all, compressed with ``kind``."""
    zeros = bytes(1 << 20)
    with open(path, "wb") as out:
        if kind == "gzip":
            comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        else:
            comp = zstandard.ZstdCompressor(level=3).compressobj()
        for n in range(files):
            info = tarfile.TarInfo(f"bomb{n}" if files > 1 else "bomb")
            info.size = BOMB_SIZE // files
            out.write(comp.compress(info.tobuf(format=tarfile.PAX_FORMAT)))
            for _ in range(info.size >> 20):
                out.write(comp.compress(zeros))
        out.write(comp.compress(bytes(1024)))
        out.write(comp.flush())


@pytest.mark.parametrize("kind, files", [("gzip", 1), ("zstd", 1), ("gzip", 256)])
def test_decompression_bombs_stop_with_bounded_memory(tmp_path, kind, files, record_property):
    bomb = tmp_path / f"bomb.{kind}"
    _bomb(bomb, kind, files)
    assert bomb.stat().st_size < 8 << 20       # a small file ...
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(small)], check=True)
    try:
        target = small / "target"
        target.mkdir()
        out = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(bomb), str(target)],
                             capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    # refused up front (the size its header declares is more than the free space) or
    # stopped when the file system is full: either way a LayerError naming the entry
    assert "'bomb" in lines["ERROR"], lines
    assert "No space left on device" in lines["ERROR"] or "free" in lines["ERROR"], lines
    assert int(lines["MAXRSS"]) < 200_000, f"peak memory {lines['MAXRSS']} KiB"   # ... 1 GiB
    FIGURES["refused"].append(f"{kind}-bomb-1GiB-in-{files}-files")
    record_property("lamina_figure", ("hostile corpus", "refused", 1))


# -- hostile images -----------------------------------------------------------------------------

def _layer_blob(tar: bytes) -> tuple[bytes, str]:
    return gzip.compress(tar, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Parts:
    """An OCI image layout as a dict of pieces an attack can change before it is packed."""

    def __init__(self, tars: list[bytes], name: str = "docker.io/evil/img:1") -> None:
        self.blobs: dict[str, bytes] = {}     # path in the archive -> bytes
        self.extra: list[tuple[tarfile.TarInfo, bytes | None]] = []
        layers = []
        diff_ids = []
        for tar in tars:
            blob, diff_id = _layer_blob(tar)
            layers.append({"mediaType": mt.OCI_LAYER_GZIP, "digest": _sha(blob),
                           "size": len(blob)})
            diff_ids.append(diff_id)
            self.blobs[f"blobs/sha256/{_sha(blob)[7:]}"] = blob
        self.config = {"architecture": _arch(), "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": diff_ids},
                       "config": {"Cmd": ["sh"]}}
        self.manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                         "config": {"mediaType": mt.OCI_CONFIG}, "layers": layers}
        self.name = name
        self.override_manifest_desc: dict | None = None

    def pack(self) -> bytes:
        config = json.dumps(self.config).encode()
        self.manifest["config"].setdefault("digest", _sha(config))
        self.manifest["config"].setdefault("size", len(config))
        self.blobs.setdefault(f"blobs/sha256/{self.manifest['config']['digest'][7:]}", config)
        manifest = json.dumps(self.manifest).encode()
        desc = {"mediaType": mt.OCI_MANIFEST, "digest": _sha(manifest), "size": len(manifest),
                "annotations": {"io.containerd.image.name": self.name}}
        desc.update(self.override_manifest_desc or {})
        self.blobs.setdefault(f"blobs/sha256/{_sha(manifest)[7:]}", manifest)
        files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                 "index.json": json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                           "manifests": [desc]}).encode(), **self.blobs}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for path, data in files.items():
                info = tarfile.TarInfo(path)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            for info, data in self.extra:
                tf.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def _arch() -> str:
    from lamina.image.platform import host_platform
    return host_platform().architecture


def _docker_archive(config_path: str, layer_paths: list[str], files: dict[str, bytes],
                    tags: list[str] = ("evil/docker:1",)) -> bytes:
    manifest = [{"Config": config_path, "RepoTags": list(tags), "Layers": layer_paths}]
    files = {"manifest.json": json.dumps(manifest).encode(), **files}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GOOD = build_tar(entry("etc", "dir"), entry("etc/hello", data=b"hello\n"))
OTHER = build_tar(entry("etc", "dir"), entry("etc/hello", data=b"changed\n"))


def _swap_layer(p: Parts) -> None:      # the blob under the layer's name is another one
    path = next(k for k in p.blobs if k.startswith("blobs/"))
    p.blobs[path] = gzip.compress(OTHER, mtime=0)


def _size(delta: int | None = None, value: int | None = None) -> Callable[[Parts], None]:
    def change(p: Parts) -> None:
        layer = p.manifest["layers"][0]
        layer["size"] = value if value is not None else layer["size"] + delta
    return change


def _config_digest_wrong(p: Parts) -> None:
    p.manifest["config"]["digest"] = _sha(b"{}")
    p.manifest["config"]["size"] = len(json.dumps(p.config))
    p.blobs[f"blobs/sha256/{_sha(b'{}')[7:]}"] = json.dumps(p.config).encode()


def _manifest_digest_wrong(p: Parts) -> None:
    p.override_manifest_desc = {"digest": _sha(b"x"), "size": 1}
    p.blobs[f"blobs/sha256/{_sha(b'x')[7:]}"] = b"not x at all"


def _diff_id_wrong(p: Parts) -> None:
    p.config["rootfs"]["diff_ids"] = [_sha(OTHER)]


def _more_diff_ids(p: Parts) -> None:
    p.config["rootfs"]["diff_ids"] = p.config["rootfs"]["diff_ids"] * 2


def _link_member(kind: bytes, target: str) -> Callable[[Parts], None]:
    def change(p: Parts) -> None:
        info = tarfile.TarInfo("blobs/sha256/" + "e" * 64)
        info.type, info.linkname = kind, target
        p.extra.append((info, None))
        p.manifest["layers"].append({"mediaType": mt.OCI_LAYER_GZIP,
                                     "digest": "sha256:" + "e" * 64, "size": 10})
    return change


def _index_loop(p: Parts) -> None:
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_INDEX, "digest": _sha(b"loop"), "size": 4}]}).encode()
    p.blobs[f"blobs/sha256/{_sha(index)[7:]}"] = index
    p.override_manifest_desc = {"mediaType": mt.OCI_INDEX, "digest": _sha(index),
                                "size": len(index)}


def _oci(tars: list[bytes], change: Callable[[Parts], None] | None = None,
         name: str = "docker.io/evil/img:1") -> Callable[[], bytes]:
    def make() -> bytes:
        p = Parts(tars, name)
        if change:
            change(p)
        return p.pack()
    return make


def _big_config() -> bytes:
    return _docker_archive("c.json", [], {"c.json": b" " * (8 * 1024 * 1024 + 1)})


def _bzip2_layer() -> bytes:
    import bz2
    config = json.dumps({"architecture": _arch(), "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [_sha(GOOD)]}}).encode()
    return _docker_archive("c.json", ["l/layer.tar"], {"c.json": config,
                                                      "l/layer.tar": bz2.compress(GOOD)})


IMAGE_ATTACKS: list[tuple[str, Callable[[], bytes]]] = [
    ("layer-blob-not-its-digest", _oci([GOOD], _swap_layer)),
    ("layer-size-smaller", _oci([GOOD], _size(delta=-10))),
    ("layer-size-larger", _oci([GOOD], _size(delta=+10))),
    ("layer-size-huge", _oci([GOOD], _size(value=1 << 62))),
    ("layer-size-negative", _oci([GOOD], _size(value=-1))),
    ("config-not-its-digest", _oci([GOOD], _config_digest_wrong)),
    ("manifest-not-its-digest", _oci([GOOD], _manifest_digest_wrong)),
    ("diff-id-not-the-layers", _oci([GOOD], _diff_id_wrong)),
    ("more-diff-ids-than-layers", _oci([GOOD], _more_diff_ids)),
    ("archive-symlink-to-host-file", _oci([GOOD], _link_member(tarfile.SYMTYPE,
                                                                "/etc/shadow"))),
    ("archive-symlink-climbing-out", _oci([GOOD], _link_member(tarfile.SYMTYPE,
                                                                "../../../etc/shadow"))),
    ("archive-hardlink-to-host-file", _oci([GOOD], _link_member(tarfile.LNKTYPE,
                                                                 "/etc/shadow"))),
    ("index-points-at-itself", _oci([GOOD], _index_loop)),
    ("image-name-traversal", _oci([GOOD], name="../../etc/passwd")),
    ("docker-config-path-traversal", lambda: _docker_archive("../../etc/passwd", [], {})),
    ("docker-layer-path-absolute", lambda: _docker_archive("c.json", ["/etc/shadow"], {
        "c.json": json.dumps({"rootfs": {"type": "layers", "diff_ids": [_sha(GOOD)]}}).encode()
    })),
    ("docker-config-too-big", _big_config),
    ("docker-layer-bzip2", _bzip2_layer),
    ("layer-path-traversal", _oci([build_tar(entry("../../../../tmp/evil"))])),
    ("layer-device-escape", _oci([build_tar(entry("d", "symlink", link="/dev"),
                                            entry("d/evil", "chr", dev=(1, 3)))])),
    ("layer-symlink-then-write", _oci([build_tar(entry("etc", "symlink", link="/etc"),
                                                 entry("etc/evil"))])),
    ("second-layer-through-first-layers-symlink",
     _oci([build_tar(entry("x", "symlink", link="/etc")), build_tar(entry("x/evil"))])),
    ("layer-hardlink-to-host", _oci([build_tar(entry("h", "hardlink", link="/etc/shadow"))])),
]


@pytest.mark.parametrize("name, make", IMAGE_ATTACKS, ids=[n for n, _ in IMAGE_ATTACKS])
def test_hostile_image_is_refused_by_load_or_unpack(fs, name, make, record_property):
    from lamina.api import check
    from lamina.api.archive import load
    from lamina.store.unpack import unpack_image

    from lamina.store import Store
    tmp_path = fs
    store = Store.open(tmp_path / "root")
    _outside(tmp_path)
    archive = tmp_path / "evil.tar"
    archive.write_bytes(make())
    root = tmp_path / "root"
    before, host = _snapshot(tmp_path, {root}), _host_files()
    FIGURES["failed"].append(name)
    with pytest.raises(LaminaError) as info:
        for loaded in load(archive, store=store):
            unpack_image(store, store.image(loaded.name or loaded.image_id))
    assert str(info.value)
    assert "Traceback" not in str(info.value)
    assert _snapshot(tmp_path, {root}) == before
    assert _host_files() == host
    store.gc()
    report = check(store=store)
    assert report.ok, report.problems
    FIGURES["failed"].remove(name)
    FIGURES["refused"].append(name)
    record_property("lamina_figure", ("hostile corpus", "refused", 1))


def test_the_corpus_is_large_enough_and_figures():
    total = len(LAYER_ATTACKS) + len(IMAGE_ATTACKS) + 2
    assert total >= 30


def teardown_module() -> None:
    done = len(FIGURES["refused"]) + len(FIGURES["contained"])
    print(f"\nhostile corpus: {done + len(FIGURES['failed'])} attacks run, "
          f"{len(FIGURES['refused'])} refused, {len(FIGURES['contained'])} contained "
          f"(accepted, kept inside), {len(FIGURES['failed'])} not held"
          + (f": {FIGURES['failed']}" if FIGURES["failed"] else ""))
