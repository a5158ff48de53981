"""The knowledge base's pages: the index of docs/ and one document."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from controlplane.knowledge import library, shelf


def docs_root() -> Path:
    return Path(settings.BASE_DIR) / library.ROOT


def _urls() -> library.Urls:
    return library.Urls(docs=reverse("knowledge:index"), runbooks=reverse("runbooks:index"))


@login_required
def index(request: HttpRequest) -> HttpResponse:
    entries = shelf.catalogue(docs_root(), _urls())
    folders = [(folder, list(found)) for folder, found in groupby(entries, lambda e: e.folder)]
    return render(request, "knowledge/index.html", {"folders": folders})


@login_required
def page(request: HttpRequest, address: str) -> HttpResponse:
    document = shelf.find(docs_root(), address, _urls())
    if document is None:
        raise Http404("No such document.")
    return render(request, "knowledge/page.html", {"document": document})
