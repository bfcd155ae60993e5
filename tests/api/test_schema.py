"""The OpenAPI schema is a tested artifact: it generates without a single warning and validates."""

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_schema_generates_without_warnings_and_validates(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    audit = {f"/api/v1/audit-events{suffix}" for suffix in ("", "/{id}", "/export", "/verify")}
    policies = {
        f"/api/v1/{resource}{suffix}"
        for resource in ("roles", "role-mappings", "applications", "gateways", "routes", "access-rules", "snapshots")
        for suffix in ("", "/{id}")
    }
    identities = {
        f"/api/v1/{resource}{suffix}"
        for resource in ("identity-sources", "identities", "groups", "sync-runs")
        for suffix in ("", "/{id}")
    } | {"/api/v1/identity-sources/{id}/sync"}
    access = {
        "/api/v1/decisions/check",
        "/api/v1/applications/{id}/access",
        "/api/v1/identities/{id}/access",
        "/api/v1/backstage/entities/{kind}/{namespace}/{name}",
    }
    deployments = {f"/api/v1/deployments{suffix}" for suffix in ("", "/{id}", "/deploy")}
    assert set(schema["paths"]) == {
        "/api/v1/tokens",
        "/api/v1/tokens/exchange",
        "/.well-known/jwks.json",
        *audit,
        *policies,
        *identities,
        *access,
        *deployments,
    }
    assert schema["paths"]["/api/v1/tokens"]["post"]["security"] == [
        {"ServiceToken": []},
        {"BackstageJWT": []},
        {"cookieAuth": []},
    ]
    schemes = schema["components"]["securitySchemes"]
    assert (schemes["ServiceToken"]["scheme"], schemes["BackstageJWT"]["bearerFormat"]) == ("bearer", "JWT")
    assert (schemes["cookieAuth"]["in"], schemes["cookieAuth"]["name"]) == ("cookie", "sessionid")
    assert set(schema["paths"]["/api/v1/tokens"]["post"]["responses"]) == {"200", "400", "401", "403", "404", "409"}
    problem = schema["paths"]["/api/v1/decisions/check"]["post"]["responses"]["400"]["content"]
    assert problem["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem"


def test_the_schema_and_its_docs_are_served(client):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/tokens" in schema.content
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs.content  # no CDN
    assert b"<script>" not in docs.content  # its set-up is a script file: the CSP allows no inline script
    assert "'unsafe-inline'" not in docs["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    assert client.get("/api/v1/docs/?script=").status_code == 200
    redoc = client.get("/api/v1/redoc/")
    assert redoc.status_code == 200
    assert b"drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in redoc.content
    assert client.get("/api/schema/").content == schema.content
