"""Views for the middleware tests: each does one thing the tests look for."""

import logging
import os
import time

from django.contrib.auth import get_user_model
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotFound,
    HttpResponseServerError,
    JsonResponse,
)
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import ViewSet

from observability import context
from observability.jobs import job_run

logger = logging.getLogger("tests.observability")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return HttpResponseNotFound("not found")


def server_error(request: HttpRequest) -> HttpResponse:
    return HttpResponseServerError("server error")


def forbidden(request: HttpRequest) -> HttpResponse:
    # Returned, not raised: Django logs it after the middleware chain has finished.
    return HttpResponseForbidden("no")


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view failed")


def item(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(f"item {pk}")


def feed(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(f"<feed>{name}</feed>", content_type="application/xml")


def logs(request: HttpRequest) -> HttpResponse:
    logger.warning("signed in as %s", request.user.pk, extra={"user": request.user})
    return HttpResponse("logged")


def scoped(request: HttpRequest, organization: str) -> HttpResponse:
    # What an API's organisation scoping does once it knows the caller's organisation.
    context.bind(organization_id=organization)
    return HttpResponse("scoped")


def pid(request: HttpRequest) -> JsonResponse:
    # Slow enough that concurrent requests have to be shared between workers.
    time.sleep(float(request.GET.get("sleep", "0")))
    return JsonResponse({"pid": os.getpid()})


def job(request: HttpRequest) -> HttpResponse:
    with job_run("tests.job"):
        pass
    return HttpResponse("ran")


class UsernameAuthentication(BaseAuthentication):
    """Bearer <username>: token authentication without the tokens."""

    def authenticate(self, request):
        scheme, _, username = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer":
            return None
        return get_user_model().objects.get(username=username), None


class Whoami(APIView):
    authentication_classes = [UsernameAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"id": request.user.pk})


class RuleViewSet(ViewSet):
    """A router's detail route: a regular expression with a named group."""

    lookup_field = "key"
    authentication_classes = []
    permission_classes = [AllowAny]

    def retrieve(self, request, key=None):
        return Response({"key": key})
