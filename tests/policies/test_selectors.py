"""What every access check reads about snapshots: the newest one (asked for on every check, its row
kept per process) and its compiled form (one compile per snapshot, however many threads ask, kept
out of the cyclic garbage collector's scans)."""

import gc
import threading

import pytest
from django.db import connection

from apps.core.actors import Actor
from apps.policies import selectors
from apps.policies.models import AccessRule
from apps.policies.selectors import compiled_policy, snapshot_newest, snapshot_newest_cached
from apps.policies.services import snapshot_build
from tests.factories import RoleFactory, RouteFactory

ACTOR = Actor.system("test")


@pytest.mark.django_db
def test_the_newest_snapshot_is_asked_for_on_every_call_and_its_row_kept(django_assert_num_queries):
    assert snapshot_newest_cached() is None
    first = snapshot_build(actor=ACTOR)
    assert (snapshot_newest_cached().pk, snapshot_newest_cached().sha256) == (first.pk, first.sha256)

    RoleFactory(slug="brand-new")  # a different policy, so a different snapshot
    second = snapshot_build(actor=ACTOR)
    assert second.sha256 != first.sha256
    newest = snapshot_newest_cached()
    reference = snapshot_newest()
    assert (newest.pk, newest.sha256, newest.created_at) == (reference.pk, reference.sha256, reference.created_at)
    assert "content" in newest.get_deferred_fields()  # megabytes at scale: decisions read the compiled form
    with django_assert_num_queries(1):  # which snapshot is the newest; its row is not read again
        assert snapshot_newest_cached() is newest


@pytest.mark.django_db(transaction=True)  # the threads' own connections must see the snapshot
def test_threads_asking_for_a_snapshot_not_compiled_yet_compile_it_once():
    RoleFactory(slug="compiled-once")
    snapshot = snapshot_build(actor=ACTOR)
    selectors._compiled_by_sha256.cache_clear()
    start = threading.Barrier(8)
    compiled = []

    def ask() -> None:
        start.wait()
        try:
            compiled.append(compiled_policy(snapshot=snapshot))
        finally:
            connection.close()  # each thread's own

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(compiled) == 8 and all(policy is compiled[0] for policy in compiled)
    assert selectors._compiled_by_sha256.cache_info().misses == 1


@pytest.mark.django_db
def test_a_compiled_policy_is_left_out_of_the_cyclic_collectors_scans():
    RoleFactory(slug="frozen")
    route = RouteFactory()
    AccessRule.objects.create(route=route, auth_mode="public")
    policy = compiled_policy(snapshot=snapshot_build(actor=ACTOR))
    compiled_route = policy.routes[0]
    assert gc.is_tracked(compiled_route)
    assert not any(tracked is compiled_route for tracked in gc.get_objects())  # frozen: never scanned
