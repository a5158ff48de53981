from __future__ import annotations

import contextvars
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from observability import context
from observability.context import AuditContext

SAFE = string.ascii_letters + string.digits + "._:-"


def test_bind_sets_some_ids_and_keeps_the_others():
    context.bind(request_id="r1", user_id="u1")
    context.bind(organization_id=42)

    assert context.current() == AuditContext(request_id="r1", user_id="u1", organization_id="42")


def test_bind_refuses_unknown_ids():
    with pytest.raises(TypeError, match="email"):
        context.bind(email="ada@example.com")


def test_scope_restores_what_was_there_before():
    context.bind(request_id="outer", user_id="u1")

    with context.scope(request_id="inner") as inside:
        assert inside == AuditContext(request_id="inner", user_id="u1")
        context.bind(organization_id="acme")

    assert context.current() == AuditContext(request_id="outer", user_id="u1")


def test_scope_restores_after_an_exception():
    with pytest.raises(RuntimeError), context.scope(user_id="u1"):
        raise RuntimeError

    assert context.current() == AuditContext()


def test_clear_forgets_everything():
    context.bind(request_id="r1", user_id="u1", organization_id="o1")

    context.clear()

    assert context.current() == AuditContext()


def test_contexts_do_not_leak_into_each_other():
    def work(request_id: str) -> AuditContext:
        context.bind(request_id=request_id)
        return context.current()

    first = contextvars.copy_context().run(work, "a")
    second = contextvars.copy_context().run(work, "b")

    assert (first.request_id, second.request_id) == ("a", "b")
    assert context.current().request_id is None


def test_as_dict_lists_only_the_ids_that_are_set():
    assert AuditContext(request_id="r1").as_dict() == {"request_id": "r1"}


@given(st.text(alphabet=SAFE, min_size=1, max_size=128))
def test_short_safe_request_ids_are_valid(value):
    assert context.valid_request_id(value)


@given(st.text(min_size=1, max_size=200))
def test_request_ids_with_other_characters_are_invalid(value):
    if len(value) <= 128 and all(char in SAFE for char in value):
        return
    assert not context.valid_request_id(value)


@pytest.mark.parametrize("value", [None, "", "a" * 129, "a\nb", "a b", "a\x00"])
def test_edge_request_ids_are_invalid(value):
    assert not context.valid_request_id(value)


def test_new_request_ids_are_valid_and_unique():
    ids = {context.new_request_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(context.valid_request_id(value) for value in ids)
