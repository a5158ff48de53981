"""What a request body may hold: the fields a serializer knows, and no NUL character."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework.exceptions import ValidationError

from controlplane.catalog.validators import contains_nul

NUL_MESSAGE = "Text cannot contain a NUL character (\\u0000)."


def _entries(data: Mapping) -> list[tuple[str, object]]:
    # A form-encoded body may repeat a field: every value counts.
    if hasattr(data, "lists"):
        return [(name, values) for name, values in data.lists()]
    return list(data.items())


class StrictBody:
    """Mixed into every serializer that writes (before serializers.Serializer).

    A misspelt field ({"thresold": 1}) is refused rather than silently ignored, which
    would store a default instead of the value meant. Read-only fields are known: a
    client may send back what it read. A NUL anywhere, even deep inside a JSON object,
    is refused naming the field, because PostgreSQL cannot store it.
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            known = set(self.fields)
            errors: dict[str, list[str]] = {}
            for name, value in _entries(data):
                if name not in known:
                    writable = sorted(n for n, f in self.fields.items() if not f.read_only)
                    errors[name] = [f"Unknown field. The fields are: {', '.join(writable)}."]
                elif contains_nul(value):
                    errors[name] = [NUL_MESSAGE]
            if errors:
                raise ValidationError(errors)
        return super().to_internal_value(data)
