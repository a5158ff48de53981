"""Every API error is JSON with a `detail` sentence a person can act on."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
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


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "Another change to the same object happened at the same time; try again."
    default_code = "conflict"


def save_or_conflict(obj, recheck, what: str):
    """Save `obj`; a unique name taken by a concurrent write between the check and
    the insert is reported like any duplicate (recheck raises), anything else as 409."""
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        recheck(obj)
        raise Conflict(f"{what} changed at the same time elsewhere; try again.") from None
    return obj


def no_endpoint_message(path: str) -> str:
    return f"No API endpoint at {path}. See /api/v1/docs/."


@csrf_exempt  # it changes nothing, and a POST to a wrong URL deserves the 404, not a 403
def endpoint_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """The last API route: with DEBUG on, Django would answer an HTML page instead.

    Matching everything, it also stops CommonMiddleware's slash-appending redirect,
    so a missing trailing slash is named in the answer instead.
    """
    message = no_endpoint_message(request.path)
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path_info + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not endpoint_not_found:
            message = f"No API endpoint at {request.path}: did you mean {request.path}/ ?"
    return json_error(404, message)
