"""``--nats-creds FILE``: a NATS credentials file, or a bare user nkey seed.

A ``.creds`` file (as ``nsc`` writes it) holds a user JWT and the user's
nkey seed; a file with only a seed (``SU...``) authenticates by nkey. The
seed signs the server's nonce at every connect (:mod:`nkeys`, the NATS
project's own Ed25519 encoding and signing).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path


class CredsError(ValueError):
    """The file is missing, unreadable or holds no seed."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user's seed (and JWT, in operator mode)."""

    seed: bytes = field(repr=False)  # a secret: never in a log line
    jwt: str | None = field(default=None, repr=False)

    def sign(self, nonce: str) -> dict[str, str]:
        """What ``CONNECT`` carries to answer ``nonce``."""
        import nkeys

        pair = nkeys.from_seed(self.seed)
        try:
            signed = {"sig": base64.urlsafe_b64encode(pair.sign(nonce.encode())).decode()
                      .rstrip("=")}
            if self.jwt is not None:
                signed["jwt"] = self.jwt
            else:
                signed["nkey"] = pair.public_key.decode()
            return signed
        finally:
            pair.wipe()


def load(path: Path) -> Credentials:
    """Read ``path``.

    Raises:
        CredsError: naming the file and what is wrong.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CredsError(f"--nats-creds {path}: {getattr(e, 'strerror', None) or e}") from None
    jwt = _block(text, "JWT")
    seed = _block(text, "SEED") if "BEGIN" in text else text.strip()
    if not seed or not seed.startswith("S") or len(seed.split()) != 1:
        raise CredsError(f"--nats-creds {path}: no nkey seed in it (a .creds file or SU... seed)")
    import nkeys

    try:
        nkeys.from_seed(seed.encode()).wipe()
    except Exception as e:  # nkeys raises its own errors, and binascii's, for a bad seed
        raise CredsError(f"--nats-creds {path}: the seed is invalid ({e})") from None
    return Credentials(seed.encode(), jwt)


def _block(text: str, kind: str) -> str | None:
    """The line inside ``-----BEGIN ... {kind}-----`` ... ``END``, if any."""
    inside = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("-----BEGIN") and kind in line:
            inside = True
        elif inside and line.startswith("------END"):
            return None
        elif inside and line:
            return line
    return None
