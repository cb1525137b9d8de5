"""WORKDIR creates its directory as BuildKit does: a layer of its own when the directory is
new (owned by the USER in effect), no layer (an ``empty_layer`` history entry) when it exists.
"""
from __future__ import annotations

pytest_plugins = ["tests.conftest_build"]   # store, build, image_files, layer_members


def test_workdir_creates_missing_directory_in_a_layer(store, build, tmp_path, image_files,
                                                      layer_members):
    built = build(tmp_path, "FROM busybox\nWORKDIR /srv/app\nWORKDIR /bin\nUSER app\n"
                            "WORKDIR /home/app/work\nWORKDIR /\n", tags=["wd"])
    image = store.image("wd")
    history = [(h.created_by, bool(h.empty_layer)) for h in image.config().history][-5:]
    assert history == [("WORKDIR /srv/app", False), ("WORKDIR /bin", True), ("USER app", True),
                       ("WORKDIR /home/app/work", False), ("WORKDIR /", True)]
    assert len(image.layers()) == 3   # busybox's, /srv/app's, /home/app/work's
    members = layer_members("wd", 1)
    assert sorted(members) == ["srv", "srv/app"]
    assert all(m.isdir() and m.mode & 0o7777 == 0o755 and m.uid == 0
               for m in members.values())
    members = layer_members("wd", 2)
    assert sorted(members) == ["home", "home/app", "home/app/work"]
    # the new directory belongs to the USER; its parents that existed are copied up as is
    assert members["home/app/work"].uid == 1000 and members["home"].uid == 0
    files = image_files("wd")
    assert files["srv/app"][0] == "d" and files["home/app/work"][:3] == ("d", 0o755, 1000)
    again = build(tmp_path, "FROM busybox\nWORKDIR /srv/app\nWORKDIR /bin\nUSER app\n"
                            "WORKDIR /home/app/work\nWORKDIR /\n", tags=["wd"])
    assert again.image_id == built.image_id


def test_workdir_the_next_run_starts_in(build, tmp_path, image_files):
    build(tmp_path, "FROM busybox\nWORKDIR /a\nWORKDIR b\nRUN pwd > /where\n", tags=["wd"])
    assert image_files("wd")["where"][4] == b"/a/b\n"
