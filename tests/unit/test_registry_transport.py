"""Transport.retry: the backoff loop that pull, push and the build cache share."""
from __future__ import annotations

import pytest

from lamina.registry.errors import TransferError
from lamina.registry.transport import Transport


def flaky(failures: int, error: BaseException):
    calls = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"
    return attempt, calls


def test_a_retryable_error_is_tried_again_until_it_passes():
    attempt, calls = flaky(2, TransferError("cut short"))
    assert Transport(attempts=3, backoff=0).retry(attempt, (TransferError,)) == "done"
    assert len(calls) == 3


def test_the_last_error_is_raised_after_every_attempt():
    attempt, calls = flaky(5, TransferError("cut short"))
    with pytest.raises(TransferError, match="cut short"):
        Transport(attempts=3, backoff=0).retry(attempt, (TransferError,))
    assert len(calls) == 3


def test_give_up_names_the_error_raised_at_the_end():
    attempt, calls = flaky(5, TransferError("cut short"))
    with pytest.raises(TransferError, match="config: cut short"):
        Transport(attempts=2, backoff=0).retry(
            attempt, (TransferError,), lambda err: TransferError(f"config: {err.message}"))
    assert len(calls) == 2


def test_another_error_is_not_retried():
    attempt, calls = flaky(5, ValueError("bug"))
    with pytest.raises(ValueError):
        Transport(attempts=3, backoff=0).retry(attempt, (TransferError,))
    assert len(calls) == 1
