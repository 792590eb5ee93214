"""Argument types that check ranges at parse time, so a bad value is one `argument --flag: ...` line, exit code 2."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number(cast: type = float, *, min: float | None = None, above: float | None = None,
           max: float | None = None, what: str = "") -> Callable[[str], float]:
    """An argparse type: `cast(text)`, finite, >= `min`, > `above`, <= `max`; else a one-line usage error."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if cast is int else 'a number'}"
                                             f"{what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number{what}, got {text!r}")
        if min is not None and value < min:
            raise argparse.ArgumentTypeError(f"must be {min:g} or more{what}, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}{what}, got {text}")
        if max is not None and value > max:
            raise argparse.ArgumentTypeError(f"must be {max:g} or less{what}, got {text}")
        return value
    parse.__name__ = cast.__name__  # argparse names the type in its own messages
    return parse


count = number(int, min=1)  # batch sizes, workers, clip counts
index = number(int, min=0)  # face ids, shifts
rate = number(float, above=0, max=1000, what=" (frames per second)")
db = number(float, min=-60, max=60, what=" (dB)")
positive = number(float, above=0)  # lengths, sizes, days
fraction = number(float, min=0, max=1)  # shares
