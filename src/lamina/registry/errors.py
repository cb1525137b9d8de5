"""Registry failures a user can act on; each names the reference or registry at fault."""
from __future__ import annotations

from ..errors import LaminaError


class RegistryError(LaminaError):
    """A registry refused, failed or answered something lamina cannot use."""


class RemoteNotFoundError(RegistryError):
    """No such repository, tag, manifest or blob in the registry."""


class UnauthorizedError(RegistryError):
    """The registry wants credentials, or refused the ones given."""


class RateLimitedError(RegistryError):
    """429 Too Many Requests, still so after the bounded retries."""


class UnavailableError(RegistryError):
    """The registry cannot be reached, or answers 5xx, still so after the bounded retries."""


class TransferError(RegistryError):
    """A download or upload cut short or damaged on the way (worth another attempt)."""


def naming(err: BaseException, reference: str) -> BaseException:
    """``err`` with its message led by ``reference`` (the image the user named), unless it
    names it already; the same class, hint and attributes. Other exceptions as they are."""
    if isinstance(err, LaminaError) and reference not in err.message:
        named = type(err).__new__(type(err))
        named.__dict__.update(err.__dict__)
        named.message = f"{reference}: {err.message}"
        named.args = (named.message,)
        return named
    return err
