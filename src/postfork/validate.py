"""Numeric settings, defined once: what a pool option, a URL option, an environment variable, a
CLI flag or a profiling setting accepts, and the one message that says so when it does not."""

from __future__ import annotations

import dataclasses
import math

from .errors import ConfigError

INF = float("inf")


@dataclasses.dataclass(frozen=True)
class Number:
    """A kind of number: integer or real, bounded below and above (open or closed)."""

    description: str
    integer: bool = False
    low: float = 0.0
    low_open: bool = True  # the bound itself is excluded
    high: float = INF
    high_open: bool = True

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if math.isnan(value) or value in (INF, -INF):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def check(self, name: str, value: object) -> float:
        """``value`` itself (a Python number) or ConfigError naming ``name``."""
        if not self.accepts(value):
            raise ConfigError(f"{name} must be {self.description}, got {value!r}")
        return value  # type: ignore[return-value]

    def parse(self, text: str) -> float:
        """``text`` as a number of this kind, or ValueError saying what was expected (callers
        add the name: argparse prefixes its own)."""
        try:
            value: float = int(text) if self.integer else float(text)
        except ValueError:
            value = math.nan
        if not self.accepts(value):
            raise ValueError(f"must be {self.description}, got {text!r}")
        return value

    def parse_setting(self, name: str, text: str) -> float:
        try:
            return self.parse(text.strip())
        except ValueError as exc:
            raise ConfigError(f"{name} {exc}") from None


POSITIVE_SECONDS = Number("a positive number of seconds")
POSITIVE_NUMBER = Number("a positive number")
NON_NEGATIVE_NUMBER = Number("a number >= 0", low_open=False)
POSITIVE_INTEGER = Number("a positive integer", integer=True)
NON_NEGATIVE_INTEGER = Number("a whole number", integer=True, low_open=False)
FRACTION = Number("a fraction in [0, 1)", low_open=False, high=1.0)
PROBABILITY = Number("a number from 0 to 1", low_open=False, high=1.0, high_open=False)
