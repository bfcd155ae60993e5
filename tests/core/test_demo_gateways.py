"""``make demo``'s gateways: ``seed_demo --gateways-dir`` puts a first release in place on the real
binaries, ``run_gateways`` runs both proxies on it, and a deploy an editor requests and an admin
approves (the two-person rule) goes live on them."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.core.actors import Actor
from apps.core.demo import demo_logins_reset, demo_seed
from apps.gateways.choices import DeploymentState
from apps.gateways.deploy_requests import deploy_request_approve, deploy_request_create
from apps.gateways.live import free_loopback_port
from apps.gateways.models import Deployment
from apps.gateways.probe import ProbeTarget, probe_until
from apps.policies.models import AccessRule, Gateway
from apps.policies.services import access_rule_update, gateway_update, snapshot_build

pytestmark = pytest.mark.slow

ACTOR = Actor.system("test")
PROJECT_DIR = Path(__file__).resolve().parents[2]
STARTED_TIMEOUT_SECONDS = 30


@pytest.fixture
def demo(settings):
    """The demo story with its gateways moved to free loopback ports (make demo's 8081/8082 may be taken)."""
    settings.DEBUG = True
    demo_seed(actor=ACTOR)
    for gateway in Gateway.objects.all():
        gateway_update(gateway=gateway, actor=ACTOR, data={"listen_address": f"127.0.0.1:{free_loopback_port()}"})


@pytest.fixture
def gateways_dir():
    """Short enough for HAProxy's master socket path (97 characters; pytest's tmp_path can be longer)."""
    directory = Path(tempfile.mkdtemp(prefix="ph-demo-"))
    yield directory
    shutil.rmtree(directory)


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_puts_a_first_release_in_place_on_each_demo_gateway(demo, gateways_dir):
    output = _seed("--gateways-dir", str(gateways_dir))

    for gateway in Gateway.objects.all():
        assert gateway.deploy_directory == str(gateways_dir / gateway.name)
        assert f"Gateway {gateway.name} ({gateways_dir / gateway.name}): first release installed" in output
        live = Deployment.objects.get(gateway=gateway)
        assert live.state == DeploymentState.LIVE
        assert (gateways_dir / gateway.name / "current").resolve() == gateways_dir / gateway.name / "releases" / str(
            live.pk
        )

    again = _seed("--gateways-dir", str(gateways_dir))
    assert again.count("a release is already in place") == 2
    assert Deployment.objects.count() == 2


@pytest.mark.django_db
def test_a_missing_proxy_binary_is_reported_and_the_rest_of_the_demo_still_seeds(
    demo, gateways_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries"))

    output = _seed("--gateways-dir", str(gateways_dir))

    assert (
        "haproxy-edge" in output
        and "no release: haproxy is not installed (on Debian: apt-get install haproxy)" in output
    )
    assert "no release: lighttpd is not installed (on Debian: apt-get install lighttpd)" in output
    assert "Sign in at http://127.0.0.1:8000/login/ as demo " in output
    assert not Deployment.objects.exists()


@pytest.mark.django_db
def test_a_deploy_directory_too_long_for_haproxy_is_reported(demo, tmp_path):
    deep = tmp_path / ("d" * 80)

    output = _seed("--gateways-dir", str(deep))

    assert "Gateway haproxy-edge: not deployable: HAProxy's master socket" in output
    assert f"Gateway lighttpd-edge ({deep / 'lighttpd-edge'}): first release installed" in output
    assert Gateway.objects.get(name="haproxy-edge").deploy_directory == ""


@pytest.mark.django_db
def test_run_gateways_says_why_it_starts_nothing(demo, gateways_dir):
    for gateway in Gateway.objects.all():
        gateway_update(gateway=gateway, actor=ACTOR, data={"deploy_directory": str(gateways_dir / gateway.name)})
    out = StringIO()

    with pytest.raises(CommandError, match="no gateway's proxy could be started here"):
        call_command("run_gateways", stdout=out)

    assert out.getvalue().count("not started: no release in place yet: run `python manage.py deploy") == 2


def _run_gateways(log: Path) -> subprocess.Popen:
    """``manage.py run_gateways`` as make demo starts it, on this test's database."""
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "policyhub.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "manage.py", "run_gateways", "--no-color"],
            cwd=PROJECT_DIR, env=environment, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_for_lines(process: subprocess.Popen, log: Path, *expected: str) -> str:
    deadline = time.monotonic() + STARTED_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = log.read_text()
        if all(line in text for line in expected):
            return text
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"run_gateways did not report {expected}:\n{log.read_text()}")


@pytest.mark.django_db(transaction=True)
def test_run_gateways_serves_the_demo_and_an_approved_deploy_goes_live_on_it(demo, settings, gateways_dir, tmp_path):
    settings.POLICYHUB_DEPLOY_TWO_PERSON = True
    _seed("--gateways-dir", str(gateways_dir))
    logins = {login.username: login for login in demo_logins_reset(actor=ACTOR)}
    editor, admin = (get_user_model().objects.get(username=name) for name in ("demo-editor", "demo"))
    gateways = list(Gateway.objects.order_by("name"))
    log = tmp_path / "run_gateways.log"
    process = _run_gateways(log)
    try:
        started = _wait_for_lines(process, log, *(f"{g.name}: {g.kind} on {g.listen_address}" for g in gateways))
        assert "deployment" in started and logins["demo-editor"].hub_role == "editor"

        rule = AccessRule.objects.exclude(rate_limit_per_minute=None).first()
        access_rule_update(rule=rule, actor=ACTOR, data={"rate_limit_per_minute": rule.rate_limit_per_minute + 1})
        snapshot = snapshot_build(actor=ACTOR)
        request = deploy_request_create(snapshot=snapshot, gateways=gateways, user=editor, actor=ACTOR)
        deploy_request_approve(deploy_request=request, user=admin, actor=ACTOR)

        for gateway in gateways:
            deployment = Deployment.objects.filter(gateway=gateway).latest("created_at")
            assert deployment.state == DeploymentState.LIVE, deployment.messages
            target = ProbeTarget.for_listen_address(gateway.listen_address, tls=False)
            probe_until(target, deployment_id=str(deployment.pk), snapshot=snapshot.sha256, timeout=15)
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    assert returncode == 0, log.read_text()
    assert "stopping haproxy-edge, lighttpd-edge" in log.read_text()
