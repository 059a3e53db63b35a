"""The one check of every thread count a user passes (search, sessions, decoding).

A thread count is a positive int up to MAX_THREADS. The cap is far above any machine
cliprt targets, but it turns a typo (threads=5000, 10**6, 2**31) into an InputError
instead of thousands of OS threads, a hang, or a pybind TypeError.
"""

from __future__ import annotations

import operator

from cliprt.errors import InputError

__all__ = ["MAX_THREADS", "check_threads"]

MAX_THREADS = 256


def check_threads(threads: object, *, name: str = "threads", none: str = "") -> int | None:
    """Returns `threads` as an int in [1, MAX_THREADS], or None where None is allowed.

    Args:
        threads: the value to check (any int-like but bool; numpy ints are fine).
        name: the argument's name, for the message.
        none: what None means (e.g. "every core"); empty: None is refused.

    Raises:
        InputError: not an int, a bool, < 1 or > MAX_THREADS.
    """
    if threads is None and none:
        return None
    value = None
    if not isinstance(threads, bool):
        try:
            value = operator.index(threads)  # type: ignore[arg-type]
        except TypeError:
            value = None
    if value is None or not 1 <= value <= MAX_THREADS:
        also = f", or None ({none})" if none else ""
        raise InputError(
            f"{name} must be a positive integer, at most {MAX_THREADS}{also}, got {threads!r}; "
            "pass the number of threads to use, e.g. the number of cores (os.cpu_count())"
        )
    return value
