"""Names of the files gridverify keeps beside an output (temporary files, locks,
progress files): ``.NAME.SOMETHING`` must stay within a file name's 255 bytes
whatever the length of ``NAME``."""

from __future__ import annotations

import hashlib
import os

#: the longest file name (bytes) of the file systems gridverify writes to
NAME_MAX = 255


def sidecar_stem(name: str, room: int) -> str:
    """``name`` as it stands in a file name that adds ``room`` bytes to it: itself when
    that fits :data:`NAME_MAX`, else its start and a digest of the whole (distinct
    names stay distinct, the same name always gives the same stem)."""
    raw = os.fsencode(name)
    if len(raw) + room <= NAME_MAX:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:12]
    keep = max(0, NAME_MAX - room - len(digest) - 1)
    start = raw[:keep].decode("utf-8", errors="ignore")  # a character cut in two: dropped
    return f"{start}~{digest}"
