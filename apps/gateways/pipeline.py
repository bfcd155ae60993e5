"""The deploy pipeline: one deployment's steps, in order, each timed and recorded on its row.

render -> validate -> prove -> push -> reload -> probe -> live. The new release is staged and
validated with the real binary where it will run (lighttpd names its files by absolute path, so
they must be checked in place); nothing the proxy loads changes before ``push`` flips ``current``.
A failure before the flip ends ``failed``; a failure after it puts the previous release back,
reloads, probes that the previous deployment answers again, and ends ``rolled_back``. Whatever
happens, ``finally`` removes a release that did not go live.
"""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.db import transaction
from django.utils import timezone

from apps.core.actors import Actor
from apps.core.services import model_update
from apps.credentials.choices import KeyPurpose
from apps.credentials.rotate import rotation_complete, rotation_prepare
from apps.gateways.choices import DeploymentState
from apps.gateways.live_sample import live_sample_prove
from apps.gateways.models import Deployment
from apps.gateways.probe import ProbeTarget, probe_until
from apps.gateways.proof import gateway_prove
from apps.gateways.reload import reload_proxy
from apps.gateways.rendered import RenderedConfig
from apps.gateways.renderers import render
from apps.gateways.revocations import revocation_list_path, revocation_list_refresh
from apps.gateways.selectors import gateway_serves_tls, render_request_for
from apps.gateways.transports import Transport, transport_for
from apps.gateways.validate import validate

StepListener = Callable[[dict], None]


class StepFailed(Exception):
    """A step's readable reason for stopping the deployment."""


@dataclass
class _Run:
    deployment: Deployment
    actor: Actor
    transport: Transport
    rendered: RenderedConfig | None = None
    tls: bool = False
    flipped: bool = False  # ``current`` names this deployment's release
    previous_release: str | None = None
    full_proof: bool = False  # prove every class even when the live release allows a differential proof


def message_entry(level: str, text: str) -> dict:
    """One entry of a deployment's ``messages``."""
    return {"at": timezone.now().isoformat(), "level": level, "text": text}


def _record(run: _Run, *, state: str | None = None, step: dict | None = None, message=None, **fields) -> None:
    """Append to the row and save it through the audited update: every change is in the audit log.
    A run saves its whole row: nobody else writes a row in the pipeline (see ``_claim``)."""
    deployment = run.deployment
    data = dict(fields)
    if state is not None:
        data["state"] = state
    if step is not None:
        data["steps"] = [*deployment.steps, step]
    if message is not None:
        data["messages"] = [*deployment.messages, message_entry(*message)]
    model_update(instance=deployment, actor=run.actor, data=data)


# Steps: each returns the message recorded when it succeeds, or raises ---------------------------


def _render(run: _Run) -> str:
    deployment = run.deployment
    rotation_prepare(gateway=deployment.gateway, actor=run.actor)  # this release publishes the 'next' keys
    request = render_request_for(
        gateway=deployment.gateway, snapshot=deployment.snapshot, deployment_id=str(deployment.pk)
    )
    request = replace(
        request,
        install_directory=run.transport.release_path(deployment.release),
        revocation_list=revocation_list_path(gateway=deployment.gateway, transport=run.transport),
    )
    run.rendered = render(deployment.gateway.kind, request)
    run.tls = bool(request.certificates)
    accepted_kids = {
        KeyPurpose.EDGE_TOKEN: sorted(key.kid for key in request.keys),
        KeyPurpose.SIGNED_LINK: sorted(key.kid for key in request.link_keys),
        KeyPurpose.IDENTITY_ASSERTION: [request.assertion_key.kid] if request.assertion_key else [],
    }
    hashes = {name: hashlib.sha256(file.content).hexdigest() for name, file in run.rendered.files.items()}
    _record(run, rendered_sha256=run.rendered.sha256(), file_hashes=hashes, accepted_kids=accepted_kids)
    return f"rendered {len(hashes)} files, sha256 {deployment.rendered_sha256[:12]}"


def _validate(run: _Run) -> str:
    release = run.deployment.release
    run.transport.stage(release, run.rendered)
    revocation_list_refresh(gateway=run.deployment.gateway, transport=run.transport)
    result = validate(run.rendered, directory=run.transport.release_path(release), run=run.transport.run)
    if not result.ok:
        raise StepFailed("invalid config: " + "; ".join(f"{p.check}: {p.message}" for p in result.problems))
    return f"staged release {release} and validated it with {run.rendered.kind}"


def _prove(run: _Run) -> str:
    deployment = run.deployment
    result = gateway_prove(
        gateway=deployment.gateway,
        snapshot=deployment.snapshot,
        actor=run.actor,
        differential=not run.full_proof,
        seed=str(deployment.pk),
    )
    proof = {"basis": result.basis, "scope": result.scope.describe(), "requests": result.requests}
    _record(run, proof=proof if result.ok else {**proof, "basis": ""})
    if not result.ok:
        found = [p.message for p in result.problems] + [m.describe() for m in result.mismatches[:5]]
        raise StepFailed(f"the proof failed ({len(result.mismatches)} mismatches): " + "; ".join(found))
    return f"proof passed: {result.requests} requests, 0 mismatches ({result.scope.describe()})"


def _push(run: _Run) -> str:
    run.previous_release = run.transport.activate(run.deployment.release)
    run.flipped = True
    return f"current -> release {run.deployment.release} (was {run.previous_release or 'none'})"


def _reload(run: _Run) -> str:
    reload_proxy(kind=run.deployment.gateway.kind, transport=run.transport)
    return f"{run.deployment.gateway.kind} reloaded"


def _probe(run: _Run) -> str:
    deployment = run.deployment
    target = ProbeTarget.for_listen_address(
        deployment.gateway.listen_address, tls=run.tls, gateway_host=run.transport.host
    )
    waited = probe_until(target, deployment_id=str(deployment.pk), snapshot=deployment.snapshot.sha256)
    sample = live_sample_prove(
        gateway=deployment.gateway,
        snapshot=deployment.snapshot,
        target=target,
        kids=deployment.accepted_kids.get(KeyPurpose.EDGE_TOKEN, ()),
    )
    if sample.mismatches:
        found = "; ".join(mismatch.describe() for mismatch in sample.mismatches[:5])
        raise StepFailed(f"the live gateway disagrees with the policy ({len(sample.mismatches)} mismatches): {found}")
    return (
        f"{target.host}:{target.port} answers deployment {deployment.pk} after {waited:.2f}s; "
        f"live sample: {sample.requests} requests, 0 mismatches"
    )


STEPS = (
    ("render", DeploymentState.RENDERING, _render),
    ("validate", DeploymentState.VALIDATING, _validate),
    ("prove", DeploymentState.PROVING, _prove),
    ("push", DeploymentState.PUSHING, _push),
    ("reload", DeploymentState.RELOADING, _reload),
    ("probe", DeploymentState.PROBING, _probe),
)


def _run_step(run: _Run, name: str, state: str, step: Callable[[_Run], str], listener: StepListener | None) -> str:
    """Run one step; returns "" on success, else the reason it failed."""
    _record(run, state=state)
    started_at, started = timezone.now(), time.monotonic()
    try:
        text, reason = step(run), ""
    except Exception as error:  # every failure must end the row readably and roll back
        detail = str(error) if isinstance(error, StepFailed) else f"{type(error).__name__}: {error}"
        text = reason = f"{name}: {detail}"
    entry = {"step": name, "started_at": started_at.isoformat(), "seconds": round(time.monotonic() - started, 3),
             "ok": not reason}  # fmt: skip
    _record(run, step=entry, message=("error" if reason else "info", text))
    if listener is not None:
        listener({**entry, "text": text})
    return reason


def _roll_back(run: _Run, reason: str) -> None:
    """Put the previous release back and prove it answers again; ``failed`` if that is impossible."""
    previous_release = run.previous_release
    if previous_release is None:
        _finish(run, DeploymentState.FAILED, f"{reason}; no previous release to roll back to")
        return
    previous = (
        Deployment.objects.filter(pk=int(previous_release)).select_related("snapshot").first()
        if previous_release.isdigit()
        else None
    )
    try:
        run.transport.activate(previous_release)
        run.flipped = False
        reload_proxy(kind=run.deployment.gateway.kind, transport=run.transport)
        if previous is not None:
            target = ProbeTarget.for_listen_address(
                run.deployment.gateway.listen_address, tls=run.tls, gateway_host=run.transport.host
            )
            probe_until(target, deployment_id=previous_release, snapshot=previous.snapshot.sha256)
    except Exception as error:  # the row must say the gateway needs a human
        _finish(run, DeploymentState.FAILED, f"{reason}; rolling back to release {previous_release} failed: {error}")
        return
    _finish(run, DeploymentState.ROLLED_BACK, f"{reason}; rolled back to release {previous_release}")


def _rotate(run: _Run) -> str:
    """Keys move on only once the release publishing them is live; a failure here leaves the
    deployment live and the keys where they were (the next deploy rotates them)."""
    if not run.deployment.accepted_kids:
        return "keys not rotated: the deployment does not record which keys its release accepts"
    live_kids = {purpose: set(kids) for purpose, kids in run.deployment.accepted_kids.items()}
    try:
        changes = rotation_complete(gateway=run.deployment.gateway, actor=run.actor, live_kids=live_kids)
    except Exception as error:  # the config is live whatever happens to the keys
        return f"keys not rotated: {type(error).__name__}: {error}"
    return "keys: " + ("; ".join(changes) or "nothing to rotate")


def _finish(run: _Run, state: str, text: str) -> None:
    _record(run, state=state, finished_at=timezone.now(), message=("info" if state == "live" else "error", text))


def _clean_up(run: _Run) -> None:
    """A release that is not live goes; its file hashes stay on the row."""
    if run.flipped:
        return
    try:
        run.transport.discard(run.deployment.release)
    except Exception as error:  # cleanup must not hide the outcome
        _record(run, message=("warning", f"could not remove release {run.deployment.release}: {error}"))


def _claim(run: _Run) -> None:
    """Take a queued row out of the queue in one locked transaction: a request joining the queued
    deployment (``services.deployment_request`` locks the row too) lands either before, and this run
    deploys its snapshot, or after, and finds the row started. The run's own copy of the row is read
    under that lock, so its later whole-row saves undo nobody's write."""
    deployment = run.deployment
    with transaction.atomic():
        deployment.refresh_from_db(from_queryset=Deployment.objects.select_for_update())
        _record(run, state=DeploymentState.RENDERING)


def _steps_to_run(run: _Run) -> tuple:
    """Every step for a queued deployment. One found in between was interrupted (its worker died;
    the caller holds the lock now): after its flip only reload and probe remain, with the previous
    release to roll back to; before it, everything runs again (staging replaces a half-staged release)."""
    deployment = run.deployment
    if deployment.state == DeploymentState.QUEUED:
        _claim(run)
        return STEPS
    if run.transport.active() != deployment.release:
        _record(run, message=("warning", f"resuming an interrupted deployment (was {deployment.state}) from the start"))
        return STEPS
    run.flipped = True
    run.previous_release = deployment.previous.release if deployment.previous else None
    run.tls = gateway_serves_tls(gateway=deployment.gateway)
    _record(run, message=("warning", f"resuming an interrupted deployment (was {deployment.state}) after its flip"))
    return STEPS[[name for name, _state, _step in STEPS].index("reload") :]


def _install_steps(run: _Run) -> tuple:
    """A gateway's first release: everything up to the flip, for a proxy that is not running yet."""
    live = run.transport.active()
    if live is not None:
        raise StepFailed(f"the gateway already has a live release ({live}): deploy to it instead")
    return STEPS[: [name for name, _state, _step in STEPS].index("push") + 1]


def deployment_pipeline_run(
    *,
    deployment: Deployment,
    actor: Actor,
    listener: StepListener | None = None,
    install: bool = False,
    full_proof: bool = False,
) -> Deployment:
    """Run the steps of a queued or interrupted deployment; the caller holds the gateway's deploy
    lock (and no transaction: each step's record commits on its own). ``install``: the gateway's
    first release, for a proxy that will be started on it (nothing to reload or probe yet);
    ``full_proof``: prove every class, never only the difference from the live release."""
    run = _Run(deployment, actor, transport_for(deployment.gateway), full_proof=full_proof)
    try:
        try:
            steps = _install_steps(run) if install else _steps_to_run(run)
        except StepFailed as error:
            _finish(run, DeploymentState.FAILED, f"{error}; nothing was changed")
            return deployment
        for name, state, step in steps:
            reason = _run_step(run, name, state, step, listener)
            if reason and run.flipped:
                _roll_back(run, reason)
                return deployment
            if reason:
                _finish(run, DeploymentState.FAILED, f"{reason}; the live release was not touched")
                return deployment
        snapshot = deployment.snapshot.sha256[:12]
        started = " (installed: start the proxy on it as README's Deploying section says)" if install else ""
        text = f"live: release {deployment.release}, snapshot {snapshot}{started}; {_rotate(run)}"
        _finish(run, DeploymentState.LIVE, text)
        return deployment
    finally:
        _clean_up(run)
        run.transport.close()
