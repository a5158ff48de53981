"""Route templates: one `<name>` style for path() and regular-expression routes."""

from __future__ import annotations

import re

import pytest
from django.urls import include, path, re_path
from django.urls.resolvers import RegexPattern, URLResolver
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.routers import DefaultRouter, SimpleRouter

from observability.routes import route_template
from tests.observability.views import RuleViewSet, ok


@pytest.mark.parametrize(
    ("route", "template"),
    [
        # path(): converters are dropped, the rest is kept as written.
        ("items/<int:pk>/", "items/<pk>/"),
        ("runbooks/<str:slug>/revisions/<int:id>/", "runbooks/<slug>/revisions/<id>/"),
        ("orgs/<organization>/", "orgs/<organization>/"),
        ("ok/", "ok/"),
        ("", ""),
        # DRF routers, as Django joins them under path("api/v1/", include(...)).
        ("api/v1/rules/$", "api/v1/rules/"),
        ("api/v1/rules/(?P<key>[^/.]+)/$", "api/v1/rules/<key>/"),
        ("api/v1/alerts/(?P<pk>[^/.]+)/acknowledge/$", "api/v1/alerts/<pk>/acknowledge/"),
        ("api/v1/(?P<key>[^/.]+)\\.(?P<format>[a-z0-9]+)/?$", "api/v1/<key>.<format>/?"),
        # Hand-written re_path() routes.
        ("^feeds/(?P<name>\\w+)\\.xml\\Z", "feeds/<name>.xml"),
        ("admin/(?P<url>.*)$", "admin/<url>"),
        ("admin/(?P<app_label>auth|catalog)/$", "admin/<app_label>/"),
        ("^api/(?P<version>v[0-9]+)/items/<int:pk>/", "api/<version>/items/<pk>/"),
        # Groups and classes holding parentheses end where the group ends.
        ("x/(?P<a>(?:ab|c)+)/(?P<b>[)(\\]]+)/$", "x/<a>/<b>/"),
        ("x/(?P<a>[^]()]+)/y/$", "x/<a>/y/"),
        ("x/(?P<a>\\(\\))/y/$", "x/<a>/y/"),
        # What is not a named group or an escaped character stays.
        ("x/(\\d+)/(?:y|z)/?$", "x/(\\d+)/(?:y|z)/?"),
        ("(?<=a)b/$", "(?<=a)b/"),
        ("price/\\$/$", "price/$/"),
    ],
)
def test_route_templates(route, template):
    assert route_template(route) == template


def _router_routes(router) -> list[str]:
    router.register("rules", RuleViewSet, basename="rule")
    return [str(pattern.pattern) for pattern in router.urls]


@pytest.mark.parametrize("router", [SimpleRouter(), DefaultRouter()], ids=["simple", "default"])
def test_no_regular_expression_survives_a_router(router):
    templates = {route_template(route) for route in _router_routes(router)}

    assert "rules/<key>/" in templates
    for template in templates:
        assert not re.search(r"\(\?P<|[\^$\\\[\]]", template), template


def test_a_route_as_django_joins_it():
    api = URLResolver(RegexPattern(r"^api/"), [re_path(r"^rules/(?P<key>[^/.]+)/$", ok)])
    root = URLResolver(RegexPattern(r"^/"), [path("v1/", include([api]))])

    match = root.resolve("/v1/api/rules/a/")

    assert match.route == "v1/api/rules/(?P<key>[^/.]+)/$"
    assert route_template(match.route) == "v1/api/rules/<key>/"


def test_templates_are_computed_once_per_route():
    route = "cache/(?P<key>[^/.]+)/$"
    route_template(route)
    hits = route_template.cache_info().hits

    route_template(route)

    assert route_template.cache_info().hits == hits + 1


names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
literals = st.from_regex(r"[a-z0-9-]{1,8}", fullmatch=True)
bodies = st.sampled_from(["[^/.]+", "[^/]+", "\\d+", "[0-9a-f]{32}", "(?:a|b)+", "[)(]+", ".*"])


@given(st.lists(st.tuples(literals, names, bodies), min_size=1, max_size=4))
def test_every_named_group_becomes_its_name(segments):
    regex = "^" + "".join(f"{text}/(?P<{name}>{body})/" for text, name, body in segments) + "$"
    expected = "".join(f"{text}/<{name}>/" for text, name, _ in segments)

    assert route_template(regex) == expected
