r"""Route templates: the ``http.route`` attribute and ``http_route`` label of a request.

Django's ``ResolverMatch.route`` is the matched pattern as written, joined across
``include()``: a ``path()`` template such as ``items/<int:pk>/``, or for ``re_path()``
(Django REST framework's routers among them) a regular expression such as
``api/v1/rules/(?P<key>[^/.]+)/$``. Both become one style, every parameter written
``<name>``:

    items/<int:pk>/                 ->  items/<pk>/
    api/v1/rules/(?P<key>[^/.]+)/$  ->  api/v1/rules/<key>/
    ^feeds/(?P<name>\w+)\.xml\Z     ->  feeds/<name>.xml

so a dashboard need not know how a route was declared, and changing a converter does
not start a new series. Anchors are dropped and escaped punctuation unescaped; other
regular-expression syntax (unnamed groups, ``/?``) is left as written.
"""

from __future__ import annotations

import re
from functools import lru_cache

# A path() parameter, `<name>` or `<converter:name>`; Django requires names to be
# identifiers, which keeps look-behinds such as `(?<=…)` from matching.
_PARAMETER = re.compile(r"<(?:[^<>:]+:)?(\w+)>")
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>")


def _group_end(pattern: str, start: int) -> int:
    """Index just past the `)` closing the group whose body starts at `start`."""
    depth, index, in_class = 1, start, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            # A `]` first in a class (after an optional `^`) is a literal.
            if pattern.startswith("^]", index + 1):
                index += 2
            elif pattern.startswith("]", index + 1):
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return len(pattern)


@lru_cache(maxsize=1024)
def route_template(route: str) -> str:
    """The template of a matched route, with every parameter written ``<name>``.

    Cached: it runs on every request, and a service has a fixed set of routes.
    """
    parts: list[str] = []
    index = 1 if route.startswith("^") else 0
    end = len(route)
    if route.endswith("\\Z") and not route.endswith("\\\\Z"):
        end -= 2
    elif route.endswith("$") and not route.endswith("\\$"):
        end -= 1
    while index < end:
        group = _NAMED_GROUP.match(route, index)
        if group is not None:
            parts.append(f"<{group.group(1)}>")
            index = _group_end(route, group.end())
            continue
        parameter = _PARAMETER.match(route, index)
        if parameter is not None:
            parts.append(f"<{parameter.group(1)}>")
            index = parameter.end()
            continue
        char = route[index]
        if char == "\\" and index + 1 < end and not route[index + 1].isalnum():
            # `\.` and the like are literal characters; `\d`, `\w` are classes: kept.
            parts.append(route[index + 1])
            index += 2
            continue
        parts.append(char)
        index += 1
    return "".join(parts)
