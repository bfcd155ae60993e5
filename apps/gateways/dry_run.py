"""A deploy that stops before the push: render, validate and prove, and say how the files differ from what is live.

Nothing live changes and no key moves: the config is rendered with the keys as they are now,
staged beside the releases under a scratch name, validated there with the gateway's binaries,
removed, proven on a scratch proxy here, and compared with the live release's files read through
the gateway's transport. In files holding key material every shared secret is replaced by a
placeholder naming its kid; private keys, and secret-holding files policyhub cannot vouch for,
are compared by hash only.
"""

import base64
import difflib
import hashlib
import secrets
from dataclasses import dataclass, replace

from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.credentials.choices import SigningAlgorithm
from apps.credentials.models import SigningKey
from apps.gateways.models import Deployment
from apps.gateways.proof import gateway_prove
from apps.gateways.rendered import RenderedConfig
from apps.gateways.renderers import render
from apps.gateways.revocations import revocation_list_path, revocation_list_refresh
from apps.gateways.selectors import gateway_sign_in_settings, render_request_for
from apps.gateways.transports import Transport, transport_for
from apps.gateways.validate import ValidationResult, validate
from apps.gateways.verify import ProofResult
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.selectors import snapshot_newest

DRY_RUN_DEPLOYMENT_ID = "dry-run"
SECRET_MODE = 0o600
PRIVATE_KEY_MARKER = b"PRIVATE KEY-----"


@dataclass(frozen=True)
class FileChange:
    name: str
    change: str  # added | removed | changed
    diff: tuple[str, ...]  # unified diff lines, secrets replaced by placeholders; empty when hidden

    @property
    def hidden(self) -> bool:
        """Compared by hash only: a private key, or a secret-holding file edited on the gateway."""
        return self.change != "removed" and not self.diff


@dataclass(frozen=True)
class DryRun:
    gateway: str
    snapshot: str
    live_release: str | None
    validation: ValidationResult
    proof: ProofResult | None  # None when the config did not validate
    changes: tuple[FileChange, ...]

    @property
    def ok(self) -> bool:
        return self.validation.ok and self.proof is not None and self.proof.ok


def _vouched_hashes(gateway: Gateway, release: str | None) -> dict[str, str]:
    if not release or not release.isdigit():
        return {}
    deployment = Deployment.objects.filter(gateway=gateway, pk=int(release)).first()
    return deployment.file_hashes if deployment else {}


def _live_files(transport: Transport, release: str | None) -> dict[str, bytes]:
    if release is None:
        return {}
    root = transport.release_path(release)
    return {name: transport.read_file(f"{root}/{name}") for name in transport.file_hashes(release)}


def _redactions(gateway: Gateway) -> list[tuple[bytes, bytes]]:
    """(secret as a rendered file spells it, placeholder) for every shared secret the gateway has
    had, and its sign-in state key: renderers write them raw (Lua) or base64 (HAProxy maps)."""
    pairs = []
    for kid, material in SigningKey.objects.filter(gateway=gateway, algorithm=SigningAlgorithm.HS256).values_list(
        "kid", "private_material"
    ):
        secret = material.reveal().encode()
        placeholder = f"<secret of {kid}>".encode()
        pairs += [(secret, placeholder), (base64.b64encode(secret), placeholder)]
    if sign_in := gateway_sign_in_settings(gateway=gateway):  # HAProxy's config holds it, in base64
        pairs.append((sign_in.state_key.reveal().encode(), b"<sign-in state key>"))
    return pairs


def _shown(content: bytes, redactions: list[tuple[bytes, bytes]]) -> str | None:
    """A secret-holding file's text with its secrets replaced, or None when it cannot be shown
    (a private key, or a file this function cannot vouch for)."""
    if PRIVATE_KEY_MARKER in content:
        return None
    for secret, placeholder in redactions:
        content = content.replace(secret, placeholder)
    return content.decode(errors="replace")


def _changes(
    rendered: RenderedConfig, live: dict[str, bytes], vouched: dict[str, str], redactions: list, roots: tuple[str, str]
) -> tuple[FileChange, ...]:
    """The rendered files against the live ones. ``vouched``: name -> sha256 policyhub rendered for
    the live release; a secret-holding live file that differs from it (edited on the gateway) may
    hold secrets policyhub does not know, so it is compared by hash only."""
    scratch, live_root = roots
    changes = []
    for name in sorted(set(rendered.files) | set(live)):
        new = rendered.files.get(name)
        # the scratch copy names its own directory where the live one names its release's
        new_content = new.content.replace(scratch.encode(), live_root.encode()) if new else None
        old_content = live.get(name)
        if new_content == old_content:
            continue
        change = "added" if old_content is None else "removed" if new_content is None else "changed"
        if new is None:  # a removal needs no diff
            changes.append(FileChange(name, change, ()))
            continue
        secret = new.mode == SECRET_MODE or (old_content is not None and name not in vouched)
        old_text = (old_content or b"").decode(errors="replace")
        new_text = new_content.decode(errors="replace")
        if secret:
            trusted = old_content is None or hashlib.sha256(old_content).hexdigest() == vouched.get(name)
            old_text = _shown(old_content or b"", redactions) if trusted else None
            new_text = _shown(new_content, redactions)
            if old_text is None or new_text is None:
                changes.append(FileChange(name, change, ()))
                continue
        diff = difflib.unified_diff(
            old_text.splitlines(), new_text.splitlines(), fromfile=f"live/{name}", tofile=f"new/{name}", lineterm=""
        )
        changes.append(FileChange(name, change, tuple(diff)))
    return tuple(changes)


def deployment_dry_run(
    *, gateway: Gateway, actor: Actor, snapshot: PolicySnapshot | None = None, full_proof: bool = False
) -> DryRun:
    """What deploying ``snapshot`` (default: the newest) to ``gateway`` would change, validated on the
    target and proven as the deploy would prove it (``full_proof``: every class)."""
    if not gateway.deploy_directory:
        message = "%(gateway)s has no deploy directory: there is nothing rendered to compare with."
        raise ValidationError(message, code="not_deployable", params={"gateway": gateway.name})
    snapshot = snapshot or snapshot_newest()
    if snapshot is None:
        raise ValidationError("There is no policy snapshot to deploy yet; build one first.", code="no_snapshot")
    # staged beside the releases under a name no deployment has, validated there, and removed
    scratch = f"{DRY_RUN_DEPLOYMENT_ID}-{secrets.token_hex(4)}"
    transport = transport_for(gateway)
    try:
        live_release = transport.active()
        live = _live_files(transport, live_release)
        live_root = transport.release_path(live_release) if live_release else ""
        request = render_request_for(gateway=gateway, snapshot=snapshot, deployment_id=DRY_RUN_DEPLOYMENT_ID)
        request = replace(
            request,
            install_directory=transport.release_path(scratch),
            revocation_list=revocation_list_path(gateway=gateway, transport=transport),
        )
        rendered = render(gateway.kind, request)
        try:
            transport.stage(scratch, rendered)
            revocation_list_refresh(gateway=gateway, transport=transport)
            validation = validate(rendered, directory=transport.release_path(scratch), run=transport.run)
        finally:
            transport.discard(scratch)
        roots = (transport.release_path(scratch), live_root)
    finally:
        transport.close()
    changes = _changes(rendered, live, _vouched_hashes(gateway, live_release), _redactions(gateway), roots)
    proof = (
        gateway_prove(gateway=gateway, snapshot=snapshot, actor=actor, differential=not full_proof, seed=scratch)
        if validation.ok
        else None
    )
    return DryRun(
        gateway=gateway.name,
        snapshot=snapshot.sha256,
        live_release=live_release,
        validation=validation,
        proof=proof,
        changes=changes,
    )
