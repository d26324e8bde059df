"""Managers' passwords: scrypt hashes with a per-user salt, checked in constant time.

A stored hash reads `scrypt$<n>$<r>$<p>$<salt>$<digest>` (base64 salt and digest), so the
cost can be raised later without breaking the hashes already stored. A password is never
logged, echoed or kept: only its hash leaves this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# hashlib.scrypt with n=2**14, r=8, p=1 (16 MiB, some tens of ms): the plan's cost.
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
DIGEST_BYTES = 32
# scrypt needs 128 * r * n bytes; OpenSSL's default ceiling is 32 MiB, so say it outright.
_MAXMEM = 64 * 1024 * 1024

MIN_LENGTH = 8
# A bound on what is hashed: a megabyte "password" posted to the login form is refused
# the same way as a wrong one, not hashed.
MAX_LENGTH = 1024


class PasswordError(ValueError):
    """A password the policy refuses; the message says why (English: the CLI's words)."""


def check_policy(password: str) -> None:
    """PasswordError unless `password` is acceptable for a new account or a change."""
    if not password:
        raise PasswordError("the password is empty")
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"the password has fewer than {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"the password has more than {MAX_LENGTH} characters")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=length
    )


def hash_password(password: str) -> str:
    """The storable hash of `password` with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P, DIGEST_BYTES)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, compared in constant time. A malformed stored
    hash or an over-long password is False after the same work as a real check."""
    try:
        scheme, n_text, r_text, p_text, salt_text, digest_text = stored.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_text, validate=True)
        expected = base64.b64decode(digest_text, validate=True)
        usable = (
            scheme == "scrypt"
            and 2**10 <= n <= 2**17
            and n & (n - 1) == 0
            and 1 <= r <= 16
            and 1 <= p <= 4
            and 128 * r * n <= _MAXMEM // 2
            and 16 <= len(expected) <= 64
        )
    except ValueError:
        usable = False
    if not usable:
        # A damaged row or a cost out of bounds: spend a real check's time on the dummy.
        n, r, p, salt, expected = N, R, P, _DUMMY_SALT, _DUMMY_DIGEST
    candidate = password if len(password) <= MAX_LENGTH else password[:MAX_LENGTH]
    digest = _scrypt(candidate, salt, n, r, p, len(expected))
    return hmac.compare_digest(digest, expected) and usable and len(password) <= MAX_LENGTH


# What an unknown user's password is checked against: the same work and the same answer
# as a wrong password, so timing does not tell which usernames exist.
_DUMMY_SALT = secrets.token_bytes(SALT_BYTES)
_DUMMY_DIGEST = secrets.token_bytes(DIGEST_BYTES)
DUMMY_HASH = f"scrypt${N}${R}${P}${_b64(_DUMMY_SALT)}${_b64(_DUMMY_DIGEST)}"


def burn(password: str) -> bool:
    """A check against no account (unknown user): a real check's work, always False."""
    verify_password(password, DUMMY_HASH)
    return False
