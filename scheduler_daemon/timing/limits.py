"""Bounds that keep every parse and search cheap, whatever the input."""

from __future__ import annotations

MAX_EXPRESSION_LENGTH = 256
MAX_TIMEZONE_LENGTH = 64
DEFAULT_MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 3650 * 86400
# The Gregorian calendar repeats every 400 years, so any (month, day, weekday) combination
# that can ever occur occurs within this horizon: a search that finds nothing is final.
SEARCH_HORIZON_YEARS = 400
MAX_FIRE_COUNT = 100_000
COUNT_CAP = 100_000
