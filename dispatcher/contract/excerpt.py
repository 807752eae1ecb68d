"""A bounded, redacted excerpt of bytes we did not accept: what a dead letter may carry.

A dead letter names the message it refuses, but it must never be larger than we can publish
(an 800 KB Kafka key once made a dead letter over 1 MB that the broker refused) and never
repeat a CPR number. So each of the original key and value is reduced to an ``Excerpt``: at most
``limit`` bytes of it, with every CPR-shaped number (``vocab.CPR_PATTERN``) in those bytes
replaced, plus the size and SHA-256 of the *whole* original, so the original can still be
identified and compared with what the producer sent.

Redaction, deliberately simple: the excerpt is decoded as latin-1 (one character per byte, so
nothing can fail to decode and offsets do not move), every match of ``CPR_PATTERN`` is replaced
by as many ``#`` as it had characters, and the result is encoded back. The excerpt keeps its
length and the rest of its bytes; ``redacted`` says that bytes were replaced (so the excerpt is
then *not* a prefix of the original). A CPR number cut by the ``limit`` is redacted too: the
pattern runs over ``limit`` + 11 bytes (the longest CPR, ``DDMMYY-SSSS``) before the cut, and
again after it.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dispatcher.contract.vocab import CPR_PATTERN

# Characters of the longest CPR-shaped string (DDMMYY-SSSS).
_CPR_MAX_LEN = 11
REDACTION_CHAR = "#"


@dataclass(frozen=True)
class Excerpt:
    kept: bytes  # at most ``limit`` bytes, CPR-shaped numbers replaced
    size: int  # length of the whole original
    sha256: str  # of the whole original (hex)
    truncated: bool  # ``kept`` is shorter than the original
    redacted: bool  # at least one CPR-shaped number was replaced in ``kept``


def redact_cpr(text: str) -> str:
    """``text`` with every CPR-shaped number replaced by ``#`` of the same length."""
    return CPR_PATTERN.sub(lambda m: REDACTION_CHAR * len(m.group(0)), text)


def excerpt(data: bytes, limit: int) -> Excerpt:
    """At most ``limit`` bytes of ``data``, redacted, with the size and hash of all of it."""
    window = data[: limit + _CPR_MAX_LEN].decode("latin-1")
    # Twice: over the window (a number cut by the limit), then over the cut text (cutting
    # can end a digit run, so that what was not a CPR-shaped number becomes one).
    cut = redact_cpr(redact_cpr(window)[:limit])
    return Excerpt(
        kept=cut.encode("latin-1"),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        truncated=len(cut) < len(data),
        redacted=cut != window[:limit],
    )
