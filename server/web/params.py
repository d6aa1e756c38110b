"""Parsing of query parameters shared by API views."""
from __future__ import annotations

import datetime as dt

from server.web.api import ApiError


def parse_instant(raw: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(f"{name} must be an RFC 3339 instant", code="invalid_input", status=400, field=name) from None
    if value.tzinfo is None:
        raise ApiError(f"{name} needs a time zone offset", code="invalid_input", status=400, field=name)
    return value.astimezone(dt.timezone.utc)


def parse_day(raw: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(f"{name} must be YYYY-MM-DD", code="invalid_input", status=400, field=name) from None
