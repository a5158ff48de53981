"""Reading request bodies."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Rules and sources nest two levels at most; this leaves room and stops bodies that
# would exhaust Python's recursion in the parser or in any check walking the data.
MAX_DEPTH = 32


def depth(value) -> int:
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            items = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in items)
    return deepest


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.") from None
        if depth(data) > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
        return data
