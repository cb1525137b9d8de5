"""image.digest's SHA-256: Python's implementation for small data, OpenSSL's past BULK bytes;
the same digests as hashlib whatever the sizes and the way the data comes."""
from __future__ import annotations

import hashlib
import os

import pytest

from lamina.image.digest import BULK, Sha256, sha256_digest, sha256_hex


@pytest.mark.parametrize("size", [0, 1, 4095, BULK - 1, BULK, BULK + 1, 3 * BULK + 17])
def test_one_shot_and_streamed_digests_are_hashlib_s(size):
    data = os.urandom(size)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_hex(data) == expected
    assert sha256_digest(data) == f"sha256:{expected}"
    for chunk in (1, 4096, 65536, BULK + 3):
        h = Sha256()
        for i in range(0, size, chunk):
            h.update(memoryview(data)[i:i + chunk])
        assert h.hexdigest() == expected, chunk
        assert h.digest() == bytes.fromhex(expected)
    assert Sha256(data).hexdigest() == expected


def test_a_reused_buffer_does_not_change_what_was_hashed():
    buf = bytearray(b"a" * 1000)
    h = Sha256()
    h.update(buf)
    buf[:] = b"b" * 1000
    h.update(buf)
    assert h.hexdigest() == hashlib.sha256(b"a" * 1000 + b"b" * 1000).hexdigest()


def test_the_digest_can_be_read_twice_and_updated_after():
    h = Sha256(b"abc")
    assert h.hexdigest() == h.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    h.update(b"def")
    assert h.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
