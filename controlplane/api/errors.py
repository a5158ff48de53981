"""Every API error is JSON with a `detail` sentence a person can act on."""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def _sentences(errors, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        out = []
        for field, value in errors.items():
            name = f"{prefix}{field}" if field != "non_field_errors" else prefix.rstrip(".")
            out += _sentences(value, f"{name}." if name else "")
        return out
    if isinstance(errors, list):
        return [s for item in errors for s in _sentences(item, prefix)]
    label = prefix.rstrip(".")
    return [f"{label}: {errors}" if label else str(errors)]


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "detail": "Invalid input. " + " ".join(_sentences(exc.detail)),
            "errors": exc.detail
            if isinstance(exc.detail, dict)
            else {"non_field_errors": exc.detail},
        }
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response


def json_error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)
