"""Canonical JSON of the contract: the exact bytes a config package is hashed
and signed over, so the host and every terminal compute the same sha256."""

from __future__ import annotations

import hashlib
import json

# Deep enough for any package; a cycle also ends here instead of looping forever.
MAX_DEPTH = 100


def check_plain(obj, *, floats: bool = False, tuples: bool = False) -> None:
    """Raise ValueError unless ``obj`` holds only str, int, bool, None, lists
    and dicts with str keys (tuples and finite floats only when allowed)."""
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError("nested too deep (or cyclic)")
        if value is None or isinstance(value, (str, int)):
            continue  # bool is an int and is allowed
        if isinstance(value, float):
            if not floats:
                raise ValueError(f"float not allowed: {value!r} (use integer cents / basis points)")
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"non-finite float: {value!r}")
            continue
        if isinstance(value, list) or (tuples and isinstance(value, tuple)):
            stack.extend((item, depth + 1) for item in value)
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"object key is not a string: {key!r}")
                stack.append((item, depth + 1))
            continue
        raise ValueError(f"not a JSON value of the contract: {type(value).__name__}")


def canonical_json(obj) -> bytes:
    """The canonical bytes of ``obj``: sorted keys, no spaces, UTF-8, no floats."""
    check_plain(obj)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate has no UTF-8 form, so it has no canonical bytes either.
        raise ValueError("string is not valid Unicode (lone surrogate)") from exc


def sha256_hex(obj) -> str:
    """Hex sha256 of ``canonical_json(obj)``: a config package's identity."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()
