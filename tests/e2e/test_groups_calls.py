"""docs/groups.md's "Drupal calls per membership operation" table, checked against the emulator's
request log (no role grants configured, so no role reads or writes)."""

from __future__ import annotations

import math

import pytest

from groups_support import (  # noqa: F401  (fixtures)
    create_group,
    gateway_log,
    get_group,
    groups_gw,
    group_body,
    is_member_lookup,
    is_member_page,
    patch_group,
    relationship_writes,
    seed_members,
)


def pages(n: int) -> int:
    return math.ceil(n / 50)


def member_reads(n: int, concurrency: int = 8) -> int:
    """Member pages a group read makes: the first page alone, then 2, then 4 pages at a time
    (at most `groups.concurrency`) while the group proves larger, so a read can go up to 3
    pages past the end."""
    needed, read, at_once = max(1, pages(n)), 0, 1
    while read < needed:
        read += at_once
        at_once = min(at_once * 2, 4, concurrency)
    return read


def changes(n: int, concurrency: int = 8) -> int:
    """Calls to change n users' memberships: a write each, and one confirming read per round
    of up to `concurrency` users (shared: one collection read per 50 of them)."""
    return n + math.ceil(n / concurrency)


@pytest.fixture
def ids(emulator):
    return seed_members(emulator, "calls", 60)


def calls_of(emulator, fn):
    emulator.clear_requests()
    fn()
    return gateway_log(emulator)


def describe(log):
    return [(q["method"], q["path"][:120]) for q in log]


def test_add_and_remove_members(groups_gw, emulator, ids):
    g = create_group(groups_gw, "Calls")["id"]
    # 1 (read the group) + 1 per 50 new members (existence check) + the changes.
    log = calls_of(emulator, lambda: patch_group(groups_gw, g, {"op": "add", "path": "members", "value": [{"value": i} for i in ids[:3]]}))
    assert len(log) == 1 + 1 + changes(3), describe(log)
    log = calls_of(emulator, lambda: patch_group(groups_gw, g, {"op": "remove", "path": f'members[value eq "{ids[0]}"]'}))
    assert len(log) <= 1 + 1 + changes(1), describe(log)
    log = calls_of(emulator, lambda: patch_group(groups_gw, g, {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}))
    assert len(log) == 1 + pages(60) + changes(60), describe(log)


def test_create(groups_gw, emulator, ids):
    # 1 per 50 members (check) + 1 (name check) + 1 (create) + the changes.
    log = calls_of(emulator, lambda: create_group(groups_gw, "Created", ids[:2]))
    assert len(log) == 1 + 1 + 1 + changes(2), describe(log)
    log = calls_of(emulator, lambda: create_group(groups_gw, "Empty"))
    assert len(log) == 1 + 1, describe(log)


@pytest.mark.parametrize("n", [1, 60])
def test_get_group(groups_gw, emulator, ids, n):
    g = create_group(groups_gw, "Read me", ids[:n])["id"]
    # 1 + the member pages (⌈members/50⌉, read 1, 2, then 4 at a time); 2 with
    # excludedAttributes=members (term + service-account check).
    log = calls_of(emulator, lambda: get_group(groups_gw, g))
    lookups = [q for q in log if is_member_lookup(q)]
    assert len(log) == 1 + member_reads(n), (len(log), len(lookups), describe(log))
    log = calls_of(emulator, lambda: get_group(groups_gw, g, excludedAttributes="members"))
    assert len(log) == 2, describe(log)
    assert not [q for q in log if is_member_lookup(q)], describe(log)


def test_list_groups_reads_members_per_group(groups_gw, emulator, ids):
    for i in range(5):
        create_group(groups_gw, f"Listed {i}", ids[:1])
    log = calls_of(emulator, lambda: groups_gw.scim("GET", "/Groups"))
    lookups = [q for q in log if is_member_lookup(q)]
    # One member page per small group (docs/groups.md's 1 + ⌈members/50⌉ per group read).
    assert len(lookups) == 5, (len(lookups), describe(log))


def test_replace_members_and_delete(groups_gw, emulator, ids):
    g = create_group(groups_gw, "Replace me", ids[:2])["id"]
    # Replace: the add/remove formula + ⌈members/50⌉ member pages.
    log = calls_of(
        emulator,
        lambda: patch_group(groups_gw, g, {"op": "replace", "path": "members", "value": [{"value": ids[1]}, {"value": ids[2]}]}),
    )
    writes = relationship_writes(log)
    assert len(writes) == 2, describe(log)
    member_pages = [q for q in log if is_member_lookup(q)]
    assert len(member_pages) == pages(2), describe(log)
    # DELETE: 1 + ⌈members/50⌉ + the changes + 1 (delete) + 1 (sweep for references left
    # by concurrent adds).
    log = calls_of(emulator, lambda: groups_gw.scim("DELETE", f"/Groups/{g}"))
    member_pages = [q for q in log if is_member_page(q)]
    assert len(member_pages) == pages(2), describe(log)
    assert len(relationship_writes(log)) == 2
    assert len(log) == 1 + pages(2) + changes(2) + 1 + 1, describe(log)
