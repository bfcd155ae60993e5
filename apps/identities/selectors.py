"""Reads for identities."""

from django.db.models import Q

from apps.identities.models import Identity


def identity_get_by_reference(*, reference: str) -> Identity | None:
    """Find one identity by primary key, username, e-mail or subject ('<source>:<external id>')."""
    identities = Identity.objects.select_related("source")
    if reference.isdigit():
        return identities.filter(pk=int(reference)).first()
    slug, _, external_id = reference.partition(":")
    query = Q(username=reference) | Q(email__iexact=reference)
    if external_id:
        query |= Q(source__slug=slug, external_id=external_id)
    matches = list(identities.filter(query)[:2])
    return matches[0] if len(matches) == 1 else None
