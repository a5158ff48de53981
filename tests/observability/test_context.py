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


def test_request_ids_are_32_hex_digits_and_do_not_repeat():
    ids = {context.new_request_id() for _ in range(10_000)}

    assert len(ids) == 10_000
    assert all(len(i) == 32 and set(i) <= set(string.hexdigits.lower()) for i in ids)


def test_seeding_the_global_generator_does_not_repeat_request_ids():
    import random

    random.seed(7)
    first = context.new_request_id()
    random.seed(7)

    assert context.new_request_id() != first


def test_a_forked_child_does_not_repeat_its_parents_request_ids():
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id, then out without running the parent's cleanup
        os.write(write, context.new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    childs = os.read(read, 64).decode()
    os.close(read)

    assert len(childs) == 32
    assert childs != context.new_request_id()


def test_begin_replaces_the_whole_context_until_end():
    context.bind(request_id="outer", user_id="u1", organization_id="o1")

    token = context.begin(AuditContext(request_id="inner"))
    inside = context.current()
    context.end(token)

    assert inside == AuditContext(request_id="inner")
    assert context.current() == AuditContext(request_id="outer", user_id="u1", organization_id="o1")
