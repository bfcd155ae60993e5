"""The audit ledger: written by services in their transaction, hash-chained, append-only, verifiable."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from apps.audit.chain import GENESIS_HASH, hash_of
from apps.audit.models import AppendOnlyError, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.services import model_update
from apps.credentials.material import generate_key_material
from apps.credentials.services import signing_key_generate
from apps.identities import services as identity_services
from apps.policies import services as policy_services
from tests.audit.conftest import tamper

pytestmark = pytest.mark.django_db

ALICE = Actor("user", "alice", request_id="req-1", client_ip="::ffff:192.0.2.10")


def _three_events() -> list[AuditEvent]:
    return [audit_record(actor=ALICE, action=f"thing.step{i}", object_type="t", object_id=i) for i in range(3)]


def test_every_service_write_records_who_what_and_from_where():
    role = policy_services.role_create(actor=ALICE, slug="airflow-admin", name="Airflow admin")
    policy_services.role_create(actor=ALICE, slug="viewer")
    event = AuditEvent.objects.get(action="role.create", object_id=str(role.pk))
    assert event.actor == "user:alice"
    assert event.object_type == "policies.role"
    assert event.before is None
    assert event.after == {"id": role.pk, "slug": "airflow-admin", "name": "Airflow admin", "description": ""}
    assert event.request_id == "req-1"
    assert event.client_ip == "192.0.2.10"  # IPv4-mapped IPv6 is recorded as the IPv4 address


def test_no_op_updates_neither_save_nor_record():
    source = identity_services.identity_source_create(actor=ALICE, name="Local", slug="local", kind="local")
    stamp = source.updated_at
    identity_services.identity_source_update(source=source, actor=ALICE, data={"name": "Local"})
    source.refresh_from_db()
    assert source.updated_at == stamp
    assert not AuditEvent.objects.filter(action="identitysource.update").exists()


def test_updates_record_only_what_changed():
    app = policy_services.application_create(actor=ALICE, name="Airflow", slug="airflow")
    policy_services.application_update(application=app, actor=ALICE, data={"owner": "group:default/data"})
    policy_services.application_update(application=app, actor=ALICE, data={"owner": "group:default/data"})
    updates = AuditEvent.objects.filter(action="application.update")
    assert updates.count() == 1
    assert (updates[0].before, updates[0].after) == ({"owner": ""}, {"owner": "group:default/data"})


def test_secrets_never_reach_the_audit_log():
    source = identity_services.identity_source_create(
        actor=ALICE, name="Okta", slug="okta", kind="okta", base_url="https://acme.okta.com", credential="ssws-0123"
    )
    identity_services.identity_source_update(source=source, actor=ALICE, data={"credential": "ssws-4567"})
    logged = json.dumps(list(AuditEvent.objects.values("before", "after")))
    assert "ssws-" not in logged
    update = AuditEvent.objects.get(action="identitysource.update")
    # The change itself is visible (different fingerprints); the values are not.
    assert set(update.after) == {"credential"}
    assert update.before["credential"].startswith("******** (fingerprint ")
    assert update.after["credential"].startswith("******** (fingerprint ")
    assert update.before["credential"] != update.after["credential"]


def test_a_change_to_a_secret_named_plain_field_alone_is_saved_and_audited_masked():
    gateway = policy_services.gateway_create(
        actor=ALICE, name="edge", kind="haproxy", listen_address="127.0.0.1:8080", public_hostnames=["a.example.test"]
    )
    key = signing_key_generate(gateway=gateway, actor=ALICE)
    other_pem = generate_key_material(key.algorithm).public_key_pem

    _, changed = model_update(instance=key, actor=ALICE, data={"public_key_pem": other_pem})

    key.refresh_from_db()
    assert changed and key.public_key_pem == other_pem
    update = AuditEvent.objects.get(action="signingkey.update")
    assert set(update.after) == {"public_key_pem"}
    assert update.before["public_key_pem"] != update.after["public_key_pem"]
    assert update.after["public_key_pem"].startswith("******** (fingerprint ")


def test_a_failed_write_leaves_no_audit_row():
    before = AuditEvent.objects.count()
    with pytest.raises(Exception, match="slug"):
        policy_services.role_create(actor=ALICE, slug="Not A Slug")
    assert AuditEvent.objects.count() == before


def test_rows_chain_each_to_the_previous_hash():
    first, second, third = _three_events()
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert all(hash_of(AuditEvent.objects.get(pk=e.pk)) == e.hash for e in (first, second, third))
    assert audit_chain_verify().intact


def test_the_orm_refuses_updates_and_deletes():
    event = _three_events()[0]
    event.action = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


def test_postgresql_refuses_updates_and_deletes_that_bypass_the_orm():
    event = _three_events()[0]
    for sql in ("UPDATE audit_auditevent SET action = 'x' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])


def test_altered_content_is_detected_at_the_altered_row():
    _, second, _ = _three_events()
    tamper("UPDATE audit_auditevent SET actor = 'user:mallory' WHERE id = %s", [second.pk])
    result = audit_chain_verify()
    assert (result.first_broken_id, result.checked) == (second.pk, 1)
    assert "content does not match its hash" in result.problem


def test_altered_payload_is_detected_even_with_a_recomputed_hash():
    _, second, third = _three_events()
    tamper('UPDATE audit_auditevent SET after = \'{"role": "admin"}\', hash = %s WHERE id = %s', ["f" * 64, second.pk])
    result = audit_chain_verify()
    # Either the row's own hash or the next row's link breaks: never silently intact.
    assert result.first_broken_id in {second.pk, third.pk}


def test_a_removed_row_is_detected_at_its_successor():
    _, second, third = _three_events()
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [second.pk])
    result = audit_chain_verify()
    assert result.first_broken_id == third.pk
    assert "removed or reordered" in result.problem


def test_verify_audit_command_reports_intact_and_broken_chains(capsys):
    *_, third = _three_events()
    call_command("verify_audit")
    assert "audit chain intact: 3 events verified" in capsys.readouterr().out
    tamper("UPDATE audit_auditevent SET object_id = '99' WHERE id = %s", [third.pk])
    with pytest.raises(CommandError, match=rf"audit chain broken at event #{third.pk}: content does not match"):
        call_command("verify_audit")


def test_export_audit_writes_json_lines_since_a_moment(tmp_path, capsys):
    first, second, third = _three_events()
    tamper("UPDATE audit_auditevent SET occurred_at = occurred_at - interval '3 days' WHERE id = %s", [first.pk])
    since = (third.occurred_at - timedelta(days=1)).isoformat()
    call_command("export_audit", since=since)
    lines = capsys.readouterr().out.strip().splitlines()
    exported = [json.loads(line) for line in lines]
    assert [row["id"] for row in exported] == [second.pk, third.pk]
    assert exported[0]["hash"] == second.hash and exported[0]["prev_hash"] == first.hash

    output = tmp_path / "audit.jsonl"
    call_command("export_audit", output=str(output))
    assert len(output.read_text().splitlines()) == 3
    with pytest.raises(CommandError, match="not an ISO date"):
        call_command("export_audit", since="last tuesday")
