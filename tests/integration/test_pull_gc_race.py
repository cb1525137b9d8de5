"""A garbage collection during a pull (an `rmi` beside it) keeps what the pull unpacks on: the
snapshots of the image in flight are leased from the start, before its manifest is stored,
so layers it shares with a removed image are not taken from under it."""
from __future__ import annotations

from lamina.api.registry import pull, push
from lamina.image.digest import chain_ids
from lamina.store import Store, gc
from lamina.store import unpack as unpack_module
from lamina.testing import FakeRegistry, random_image


def test_the_snapshots_of_an_image_being_pulled_are_kept_by_a_collection(tmp_path,
                                                                          monkeypatch):
    source = Store.open(tmp_path / "source")
    store = Store.open(tmp_path / "store")
    with FakeRegistry() as registry:
        name = f"{registry.host}/team/app:1"
        built = random_image(sizes=[2048, 1024, 512], seed="race", tag=name, store=source)
        push(name, store=source)
        chains = chain_ids(source.image(name).config().rootfs.diff_ids)
        seen = {}
        real = unpack_module.unpack_image

        def collect_first(store_, image):
            seen["marked"] = gc.mark(store_).snapshots   # what a GC now would keep
            return real(store_, image)
        monkeypatch.setattr(unpack_module, "unpack_image", collect_first)
        pulled = pull(name, store=store)
    assert pulled.image_id == built.image_id
    assert set(chains) <= seen["marked"]
