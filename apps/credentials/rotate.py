"""Key rotation on every deploy (shared/DESIGN.md, "Rotation on each deploy"), for every purpose.

1. Before rendering (``rotation_prepare``): each purpose has a 'next' key, so the deploy publishes
   it beside the active one.
2. After that deploy is live (``rotation_complete``): a 'next' key the live config carries starts
   signing (the minter switches only to a key proven live); the key it replaces turns 'retiring'
   and stays accepted until everything it signed has expired (``retirement_overlap``); retiring
   keys the live config no longer carries (left out because their overlap had passed) become
   'retired'; and a new 'next' key is made for the following deploy.

The identity-assertion key goes through the same steps, but the proxy signs with it rather than
verifying with it: a release carries only its 'next' key (selectors.assertion_signing_key), so
the key it replaces is in no live config and is retired in the same step that activates the new one.
"""

from collections.abc import Mapping

from django.db import transaction

from apps.core.actors import Actor
from apps.core.services import model_update
from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.models import SigningKey
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.policies.models import Gateway


def rotation_prepare(*, gateway: Gateway, actor: Actor) -> None:
    for purpose in KeyPurpose:
        if not SigningKey.objects.filter(gateway=gateway, purpose=purpose, state=KeyState.NEXT).exists():
            signing_key_generate(gateway=gateway, actor=actor, purpose=purpose)


@transaction.atomic
def rotation_complete(*, gateway: Gateway, actor: Actor, live_kids: Mapping[str, set[str]]) -> list[str]:
    """``live_kids``: purpose -> the kids the now-live config accepts. Returns what changed, readably."""
    changes = []
    for purpose in KeyPurpose:
        published = live_kids.get(purpose, set())
        keys = SigningKey.objects.select_for_update().filter(gateway=gateway, purpose=purpose)
        for key in keys.filter(state=KeyState.NEXT, kid__in=published):
            signing_key_activate(key=key, actor=actor)
            changes.append(f"{key.kid} now signs {purpose}s")
        for key in keys.filter(state=KeyState.RETIRING).exclude(kid__in=published):
            model_update(instance=key, actor=actor, data={"state": KeyState.RETIRED})
            changes.append(f"{key.kid} retired")
        if not keys.filter(state=KeyState.NEXT).exists():
            changes.append(f"{signing_key_generate(gateway=gateway, actor=actor, purpose=purpose).kid} is next")
    return changes
