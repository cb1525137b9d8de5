"""Layer tars squashed into one: OCI's apply rules, composed (layer/squash.py)."""
from __future__ import annotations

import io
import tarfile

import pytest

from lamina.layer import LayerError
from lamina.layer.squash import squash_layers


def layer(*entries: tuple) -> io.BytesIO:
    """A layer tar: ("d", name) dirs, ("f", name, data), ("l", name, target) hardlinks,
    ("s", name, target) symlinks; ``.wh.`` names are markers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, *rest in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1000
            data = None
            if kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "f":
                info.size, data = len(rest[0]), io.BytesIO(rest[0])
            elif kind == "l":
                info.type, info.linkname = tarfile.LNKTYPE, rest[0]
            elif kind == "s":
                info.type, info.linkname = tarfile.SYMTYPE, rest[0]
            tar.addfile(info, data)
    buf.seek(0)
    return buf


def squash(*layers: io.BytesIO, base: set[str] = frozenset()) -> dict[str, object]:
    out = io.BytesIO()
    squash_layers(list(layers), out, base_has=lambda path: path in base)
    out.seek(0)
    found: dict[str, object] = {}
    with tarfile.open(fileobj=out, mode="r:") as tar:
        for m in tar:
            found[m.name] = (tar.extractfile(m).read() if m.isreg() else
                             f"->{m.linkname}" if m.islnk() else m.type)
    return found


def test_a_higher_layer_wins_and_a_lower_directory_keeps_its_other_entries():
    result = squash(layer(("d", "a"), ("f", "a/x", b"1"), ("f", "a/y", b"1")),
                    layer(("d", "a"), ("f", "a/x", b"2")))
    assert result == {"a": tarfile.DIRTYPE, "a/x": b"2", "a/y": b"1"}


def test_a_file_made_and_deleted_leaves_nothing_a_deleted_base_file_a_whiteout():
    result = squash(layer(("d", "tmp"), ("f", "tmp/big", b"x" * 5000)),
                    layer(("d", "tmp"), ("f", "tmp/.wh.big", b""), ("d", "etc"),
                          ("f", "etc/.wh.removeme", b"")),
                    base={"tmp", "etc", "etc/removeme"})
    assert result == {"etc": tarfile.DIRTYPE, "etc/.wh.removeme": b"", "tmp": tarfile.DIRTYPE}


def test_a_deleted_then_remade_directory_hides_the_base_content():
    result = squash(layer(("f", ".wh.d", b"")),
                    layer(("d", "d"), ("f", "d/new", b"n")),
                    base={"d", "d/old"})
    assert result == {"d": tarfile.DIRTYPE, "d/.wh..wh..opq": b"", "d/new": b"n"}


def test_an_opaque_directory_hides_lower_layers_and_stays_opaque_over_the_base():
    result = squash(layer(("d", "d"), ("f", "d/lower", b"l")),
                    layer(("d", "d"), ("f", "d/.wh..wh..opq", b""), ("f", "d/upper", b"u")),
                    base={"d"})
    assert result == {"d": tarfile.DIRTYPE, "d/.wh..wh..opq": b"", "d/upper": b"u"}


def test_a_file_over_a_directory_hides_what_lower_layers_had_in_it():
    result = squash(layer(("d", "p"), ("f", "p/inside", b"i")), layer(("s", "p", "/elsewhere")))
    assert result == {"p": tarfile.SYMTYPE}


def test_a_whiteout_does_not_hide_its_own_layer():
    result = squash(layer(("f", "x", b"old")), layer(("f", ".wh.x", b""), ("f", "x", b"new")),
                    base={"x"})
    assert result == {".wh.x": b"", "x": b"new"}


def test_hardlinks_stay_links_or_become_copies_of_their_first_content():
    kept = squash(layer(("f", "a", b"A"), ("l", "b", "a")), layer(("f", "c", b"C")))
    assert kept == {"a": b"A", "b": "->a", "c": b"C"}
    replaced = squash(layer(("f", "a", b"A"), ("l", "b", "a")), layer(("f", "a", b"new")))
    assert replaced == {"a": b"new", "b": b"A"}


def test_the_output_is_ordered_and_the_same_every_time():
    layers = [layer(("d", "z"), ("f", "z/b", b"b"), ("f", "z/a", b"a"), ("f", "a", b"a")),
              layer(("d", "z"), ("f", "z/.wh.b", b""))]
    first = squash(*layers, base={"z", "z/b"})
    assert list(first) == ["a", "z", "z/.wh.b", "z/a"]
    for buf in layers:
        buf.seek(0)
    assert squash(*layers, base={"z", "z/b"}) == first


def test_a_hardlink_to_outside_its_layer_is_refused():
    with pytest.raises(LayerError, match="hardlink b names a"):
        squash(layer(("f", "a", b"A")), layer(("l", "b", "a")))


def test_a_deleted_folder_made_again_by_its_files_alone_hides_the_base_content():
    """Layer 2 writes p/x without an entry for p itself (tars lamina did not write may do
    that): the base's p/old must stay hidden, as applying the two layers in turn shows."""
    result = squash(layer(("f", ".wh.p", b"")), layer(("f", "p/x", b"new")),
                    base={"p", "p/old"})
    assert result["p/.wh..wh..opq"] == b""
    assert result["p/x"] == b"new"
    assert ".wh.p" not in result


@pytest.mark.parametrize("marker", [".wh.", "d/.wh..", "d/.wh..."])
def test_a_whiteout_naming_no_file_is_refused(marker):
    with pytest.raises(LayerError, match="names no file"):
        squash(layer(("d", "d"), ("f", marker, b"")), base={"d"})


def test_a_dotdot_entry_is_left_out():
    assert squash(layer(("d", ".."), ("f", "a", b"1"))) == {"a": b"1"}
