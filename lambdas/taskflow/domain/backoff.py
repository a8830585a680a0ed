"""Exponential backoff with jitter for failed attempts, expressed as an SQS visibility timeout."""

from __future__ import annotations

import random
from typing import Final

SQS_MAX_VISIBILITY_SECONDS: Final = 43_200  # 12 hours
_MAX_EXPONENT: Final = 30  # beyond this the cap always wins; keeps the integers small


def retry_delay_seconds(
    receive_count: int,
    *,
    base_seconds: int,
    cap_seconds: int,
    max_receive_count: int,
    rng: random.Random,
) -> int:
    """Seconds until the message may be received again after failed receive number `receive_count`.

    base * 2^(receive_count - 1) plus a jitter drawn from 0..base, the sum capped by `cap_seconds`
    (and SQS's 12 h). 0 on the final receive (receive_count >= max_receive_count): the message
    is due for the DLQ, and visibility 0 lets SQS move it there on the next poll.
    Example, base 2: receive 1 -> 2..4 s, receive 2 -> 4..6 s, receive 3 -> 8..10 s.
    """
    if receive_count >= max_receive_count:
        return 0
    exponent = min(max(receive_count - 1, 0), _MAX_EXPONENT)
    delay = (base_seconds << exponent) + rng.randint(0, base_seconds)
    return min(delay, cap_seconds, SQS_MAX_VISIBILITY_SECONDS)
