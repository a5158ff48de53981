"""The identity of an alert instance: its rule plus the label set it fires for."""

import hashlib
import json
from collections.abc import Mapping


def fingerprint(rule_key: str, labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit id for one label set of one rule.

    The pairs are sorted so dict order does not matter, and encoded as JSON so
    that no two different label sets can produce the same bytes (a plain
    "a=b,c" join would confuse {"a": "b,c"} with {"a": "b", "c": ""}).
    """
    pairs = sorted((str(name), str(value)) for name, value in labels.items())
    encoded = json.dumps([rule_key, pairs], separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:16]
