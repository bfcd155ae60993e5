"""Schemathesis against the live OpenAPI schema (/api/v1/schema/), in-process over WSGI, on the
suite's PostgreSQL: every operation the schema declares, with a ``service`` token and then with an
``admin`` token (writes too), must answer no 5xx and only what the schema declares for it: status
code, content type (errors are ``application/problem+json``) and body.

Nothing here lists endpoints: whatever the schema has is exercised, and the run fails unless every
operation in the served schema was really called (a broken setup cannot pass by testing nothing).
Generation is derandomized and seeded, so CI repeats the same requests: about 2,000 of them, a
minute on two busy cores (each pass's size is explained where it is configured).
"""

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.core.actors import Actor
from apps.identities.choices import SourceKind
from apps.identities.sync import sync_run_request
from apps.policies import services as policy_services
from policyhub.wsgi import application
from tests.api.conftest import bearer, gateway_with_active_key
from tests.factories import (
    ApplicationFactory,
    GroupFactory,
    IdentityFactory,
    IdentitySourceFactory,
    MembershipFactory,
    RoleFactory,
)

SCHEMA_PATH = "/api/v1/schema/?format=json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,  # the declared ones: ETag
]
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
SEED = 7_2024
ACTOR = Actor.system("schemathesis")


@pytest.fixture
def world(airflow_admin):
    """A small but complete policy: every list has rows and every detail route has real ids to hit."""
    source = airflow_admin.source
    staff = IdentityFactory(source=source, username="bob@example.test")
    IdentityFactory(source=source, username="gone@example.test", active=False)
    MembershipFactory(identity=staff, group=GroupFactory(source=source, name="staff"))
    IdentitySourceFactory(slug="space", kind=SourceKind.SPACE, base_url="https://org.jetbrains.space.example")
    viewer = RoleFactory(slug="reader")
    policy_services.role_mapping_create(actor=ACTOR, role=viewer, match_kind="identity", identity=staff)
    policy_services.role_mapping_create(
        actor=ACTOR, role=viewer, match_kind="claim", claim_name="department", claim_value="data", source=source
    )
    edge = gateway_with_active_key("edge", kind="haproxy", public_hostnames=["*.example.test"])
    gateway_with_active_key("lighttpd-edge", kind="lighttpd", public_hostnames=["files.example.test"])
    wiki = ApplicationFactory(slug="wiki", backstage_entity_ref="component:default/wiki")
    route = policy_services.route_create(
        actor=ACTOR, gateway=edge, application=wiki, host="wiki.example.test", upstream_url="http://127.0.0.1:9001"
    )
    policy_services.route_create(
        actor=ACTOR,
        gateway=edge,
        application=wiki,
        host="wiki.example.test",
        path_prefix="/admin",
        methods=["GET", "POST"],
        upstream_url="http://127.0.0.1:9001",
    )
    policy_services.access_rule_create(actor=ACTOR, route=route, auth_mode="roles", roles=[viewer])
    policy_services.access_rule_create(actor=ACTOR, route=route, auth_mode="public", allowed_cidrs=["127.0.0.0/8"])
    policy_services.snapshot_build(actor=ACTOR)
    sync_run_request(source=source, actor=ACTOR, trigger="api")
    return {"identity": airflow_admin}


def in_test_transaction(environ, start_response):
    """policyhub's WSGI application as Django's test client calls it, the end of a request leaving the
    test's database connection (and transaction) open; and each request in a savepoint that a 5xx
    rolls back, as autocommit would in production, so one failure is reported alone instead of
    aborting the transaction under every request after it."""
    statuses = []

    def starting(status, headers, exc_info=None):
        statuses.append(int(status.split()[0]))
        return start_response(status, headers, exc_info)

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    savepoint = transaction.savepoint()
    try:
        response = application(environ, starting)
        try:
            body = b"".join(response)
        finally:
            response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    if statuses and statuses[0] >= 500:
        transaction.savepoint_rollback(savepoint)
    else:
        transaction.savepoint_commit(savepoint)
    return [body]


@dataclass
class FuzzRun:
    """One pass: its token, what it found to aim at, and what it sent (checked when the pass ends)."""

    token: str
    schema: schemathesis.BaseSchema | None = None
    client: APIClient = field(default_factory=APIClient)
    calls: Counter = field(default_factory=Counter)
    statuses: defaultdict = field(default_factory=lambda: defaultdict(Counter))
    _rows: dict = field(default_factory=dict)

    def get(self, path: str):
        return self.client.get(path, headers=bearer(self.token))

    def rows(self, collection: str) -> list[dict]:
        """The objects the collection lists (first page), read once per pass; none if it lists none."""
        if collection not in self._rows:
            response = self.get(collection)
            body = response.json() if response.get("Content-Type") == "application/json" else []
            rows = body.get("results", []) if isinstance(body, dict) else body
            self._rows[collection] = [row for row in rows if isinstance(row.get("id"), int)]
        return self._rows[collection]

    def current(self, path: str) -> tuple[str | None, dict | None]:
        """The object at ``path`` now: its ETag and representation (None, None when there is none)."""
        response = self.get(path)
        return (response.get("ETag"), response.json()) if response.status_code == 200 else (None, None)


WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
# Each pass is sized to the code only it reaches. The coverage phase (deterministic boundary and
# wrong-type values for every parameter and body field) costs up to ~100 requests an operation; the
# fuzzing phase adds max-examples.


def _service_config() -> dict:
    """The reads, fully (every query filter's wrong types included). Most of its writes answer 403
    before their body is read: a couple of fuzzed cases each show that, and the admin pass (admitted
    everywhere) runs every write fully, those a service token may make included."""
    writes = {"include-method": WRITE_METHODS, "phases": {"coverage": {"enabled": False}}}
    return {"generation": {"max-examples": 10}, "operations": [{**writes, "generation": {"max-examples": 2}}]}


def _admin_config(*, refused_to_service: list[str]) -> dict:
    """The writes: valid boundary bodies from the coverage phase, wrong ones from fuzzing, with real ids
    and ETags (_aim). Its reads run the code the service pass covered, except the reads a service token
    is refused (the audit log): those as fully as the service pass reads its own."""
    reads = {"include-method": "GET", "phases": {"coverage": {"enabled": False}}}
    operations = [{**reads, "exclude-path": refused_to_service} if refused_to_service else reads]
    if refused_to_service:
        as_service_reads = {"phases": {"coverage": {"generation": {"mode": "all"}}}, "generation": {"max-examples": 10}}
        operations.append({"include-method": "GET", "include-path": refused_to_service, **as_service_reads})
    # the service pass already sent every path the methods it does not serve
    phases = {"coverage": {"generation": {"mode": "positive"}, "unexpected-methods": []}}
    return {"generation": {"max-examples": 6}, "phases": phases, "operations": operations}


def _config(pass_config: dict) -> dict:
    # Requests are made of the seeded generation and the world's objects (_aim), never of values
    # learned from earlier responses: those carry database ids, which differ with the tests run before.
    phases = {
        name: {**pass_config.get("phases", {}).get(name, {}), "extra-data-sources": {"responses": False}}
        for name in ("examples", "coverage", "fuzzing")
    }
    return {"seed": SEED, **pass_config, "phases": phases}


def _refused_to_service(client: APIClient, token: str) -> list[str]:
    """The read paths a service token may not read (403 comes before any 404, so any id will do)."""
    reads = sorted({label.split()[1] for label in _declared_operations(client) if label.startswith("GET ")})
    return [
        path for path in reads if client.get(re.sub(r"\{[^}]+\}", "0", path), headers=bearer(token)).status_code == 403
    ]


def _pass_fixture(role: str):
    @pytest.fixture
    def run(db, world, make_token):
        fuzz = FuzzRun(token=make_token(role, identity=world["identity"], name=f"schemathesis-{role}"))
        if role == "service":
            pass_config = _service_config()
        else:
            pass_config = _admin_config(refused_to_service=_refused_to_service(fuzz.client, make_token("service")))
        config = schemathesis.Config.from_dict(_config(pass_config))
        fuzz.schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, in_test_transaction, config=config)
        yield fuzz
        # A setup that tests nothing must not pass: every operation served was called, and authenticated.
        declared = _declared_operations(fuzz.client)
        assert set(fuzz.calls) == declared, f"not exercised: {sorted(declared - set(fuzz.calls))}"
        unauthenticated = sorted(label for label, seen in fuzz.statuses.items() if set(seen) <= {401})
        assert not unauthenticated, f"only ever answered 401: {unauthenticated}"
        if role == "admin":  # the writes really ran, not just their refusals
            succeeded = {label.split()[0] for label, seen in fuzz.statuses.items() if any(200 <= s < 300 for s in seen)}
            assert succeeded >= set(WRITE_METHODS), f"no write succeeded with: {set(WRITE_METHODS) - succeeded}"

    return run


def _declared_operations(client: APIClient) -> set[str]:
    """'METHOD /path' of every operation in the served schema, read independently of schemathesis."""
    paths = client.get(SCHEMA_PATH).json()["paths"]
    return {f"{method.upper()} {path}" for path, item in paths.items() for method in item if method in HTTP_METHODS}


service_run = _pass_fixture("service")
admin_run = _pass_fixture("admin")


@pytest.fixture
def service_schema(service_run):
    return service_run.schema


@pytest.fixture
def admin_schema(admin_run):
    return admin_run.schema


def _roll(case, salt: str) -> int:
    """A stable number from the case's content: reproducible choices without drawing from Hypothesis."""
    text = json.dumps(
        [
            salt,
            case.method,
            case.path_parameters,
            case.query,
            case.body if isinstance(case.body, dict | list) else None,
        ],
        sort_keys=True,
        default=str,
    )
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _aim(case, fuzz: FuzzRun) -> None:
    """Point generated requests at the world, or most would only ever meet a 404 or a 400:
    - two well-formed ids in three become the id of an object the collection lists;
    - three writes in four that carry If-Match get the object's current ETag (the rest, and the
      cases without one, keep testing 412 and 428);
    - half the bodies take some fields from a real object (the one replaced, or one of the collection
      created into): names and slugs that exist, the references between objects, duplicates.
    Every choice is made from the case as generated, so the same cases make the same choices."""
    id_roll, pick_roll, etag_roll, body_roll = (_roll(case, salt) for salt in ("id", "pick", "etag", "body"))
    # the operation's method: the coverage phase also sends methods a path does not serve
    method, path, params = case.operation.method.upper(), case.operation.path, case.path_parameters or {}
    generated = params.get("id")
    # only well-formed ids (an int, or digits where the schema says string): the others test the 404 path
    if str(generated).isdigit() and not isinstance(generated, bool) and id_roll % 3:
        rows = fuzz.rows(path.split("/{id}")[0])
        if rows:
            chosen = rows[pick_roll % len(rows)]["id"]
            params["id"] = chosen if isinstance(generated, int) else str(chosen)
    template = None
    if method in {"PUT", "PATCH", "DELETE"} and (etag_roll % 4 or body_roll % 2):
        etag, template = fuzz.current(case.formatted_path)
        if etag and "If-Match" in (case.headers or {}) and etag_roll % 4:
            case.headers["If-Match"] = etag
    elif method == "POST" and "{" not in path and fuzz.rows(path):
        template = fuzz.rows(path)[pick_roll % len(fuzz.rows(path))]
    if template and isinstance(case.body, dict) and body_roll % 2:
        # field by field, from the roll's bits: a mix of generated and real values
        case.body = {
            key: template[key] if key in template and (body_roll >> (index + 1)) & 1 else value
            for index, (key, value) in enumerate(sorted(case.body.items()))
        }


def _exercise(case, fuzz: FuzzRun) -> None:
    case.headers = {**(case.headers or {}), **bearer(fuzz.token)}
    _aim(case, fuzz)
    response = case.call()
    fuzz.calls[case.operation.label] += 1
    fuzz.statuses[case.operation.label][response.status_code] += 1
    case.validate_response(response, checks=CHECKS)


FUZZ_SETTINGS = {
    "derandomize": True,
    "database": None,
    "deadline": timedelta(seconds=5),
    "print_blob": False,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
}

service = schemathesis.pytest.from_fixture("service_schema")
admin = schemathesis.pytest.from_fixture("admin_schema")


@service.parametrize()
@settings(**FUZZ_SETTINGS)
def test_every_operation_answers_as_declared_to_a_service_token(case, service_run):
    _exercise(case, service_run)


@admin.parametrize()
@settings(**FUZZ_SETTINGS)
def test_every_operation_answers_as_declared_to_an_admin_token_writes_included(case, admin_run):
    _exercise(case, admin_run)
