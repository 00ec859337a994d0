"""Opaque match ids: stable for one partner, different for each, meaningless to anyone else.

A match id is one AES block, encrypting (image id, partner id) under a key derived from the
registry's pepper. It needs no table, cannot be linked across partners (the same image gives
unrelated ids to A and B), and the registry can read it back when a partner reports feedback,
checking that it was issued to that partner.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings

_PREFIX = "m_"


def _cipher() -> Cipher[modes.ECB]:
    return _cipher_of(settings.KEY_PEPPER)


@functools.lru_cache(maxsize=4)
def _cipher_of(pepper: str) -> Cipher[modes.ECB]:
    """The cipher of a pepper, derived once (every match of an answer has an id to encrypt)."""
    key = hmac.new(pepper.encode(), b"rempart match ids v1", hashlib.sha256).digest()
    # One block of a pseudo-random permutation: ECB over a single block is exactly that.
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305


def match_id_encode(*, image_id: int, partner_id: int) -> str:
    block = struct.pack(">QQ", image_id, partner_id)
    encryptor = _cipher().encryptor()
    token = encryptor.update(block) + encryptor.finalize()
    return _PREFIX + base64.b32encode(token).decode().rstrip("=").lower()


def match_id_decode(match_id: str, *, partner_id: int) -> int | None:
    """The image id of a match id issued to ``partner_id``, or None."""
    if not isinstance(match_id, str) or not match_id.startswith(_PREFIX) or len(match_id) != 28:
        return None
    try:
        token = base64.b32decode(match_id[len(_PREFIX) :].upper() + "======")
    except ValueError:
        return None
    if len(token) != 16:
        return None
    decryptor = _cipher().decryptor()
    image_id, owner = struct.unpack(">QQ", decryptor.update(token) + decryptor.finalize())
    return image_id if owner == partner_id else None
