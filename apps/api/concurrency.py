"""Optimistic concurrency for editable API objects: an ``ETag`` on every read and write, and
``If-Match`` required on PUT/PATCH/DELETE, checked against the row locked for the write.

The ETag is a strong validator: the SHA-256 of the object's representation as canonical JSON, so
identical reads give identical tags and any change a client could see gives a new one. The check
and the write share one transaction under ``select_for_update``: of two editors holding the same
tag, the second waits for the first's commit, then sees a new tag and gets 412 instead of
silently overwriting.
"""

import hashlib

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.response import Response

from apps.core.canonical import canonical_json


class PreconditionRequired(exceptions.APIException):
    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = (
        "this write needs an If-Match header carrying the ETag of the object as last read "
        "(GET it first), so changes made since are not overwritten"
    )
    default_code = "precondition_required"


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "the object changed since it was read (its ETag differs): GET it again, then retry"
    default_code = "precondition_failed"


IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="The ETag of the object as last read; 428 without it, 412 when the object changed since.",
)
ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200, 201],
    description="Strong validator of this representation: send it as If-Match to change or delete the object.",
)


def etag_for(representation: dict) -> str:
    return '"' + hashlib.sha256(canonical_json(representation).encode()).hexdigest() + '"'


def _presented_tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


class OptimisticConcurrencyMixin:
    """retrieve / update / partial_update / destroy with ETag and If-Match, for a GenericViewSet.

    The view writes through its services in ``object_update(instance=, data=)`` (returns the
    instance) and ``object_delete(instance=)``; its serializer only parses and shows.
    """

    def object_update(self, *, instance, data: dict):
        raise NotImplementedError

    def object_delete(self, *, instance) -> None:
        raise NotImplementedError

    def represented(self, instance, *, status_code: int = status.HTTP_200_OK) -> Response:
        """The object as a fresh read shows it (re-read, so related rows are current), with its ETag."""
        fresh = self.get_queryset().get(pk=instance.pk)
        data = self.get_serializer(fresh).data
        return Response(data, status=status_code, headers={"ETag": etag_for(data)})

    def retrieve(self, request, *args, **kwargs):
        return self.represented(self.get_object())

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        with transaction.atomic():
            instance = self._locked_if_unchanged(request)
            serializer = self.get_serializer(instance, data=request.data, partial=partial)
            serializer.is_valid(raise_exception=True)
            instance = self.object_update(instance=instance, data=serializer.validated_data)
            return self.represented(instance)

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request, *args, **kwargs):
        with transaction.atomic():
            self.object_delete(instance=self._locked_if_unchanged(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _locked_if_unchanged(self, request):
        """The object, locked until the transaction ends, if the client's If-Match is its current ETag."""
        presented = _presented_tags(request.headers.get("If-Match", ""))
        if not presented or "*" in presented:  # '*' matches any state: it would not protect anything
            raise PreconditionRequired()
        instance = self.get_object()  # 404 and object permissions as usual
        locked = self.get_queryset().select_for_update(of=("self",)).get(pk=instance.pk)
        if etag_for(self.get_serializer(locked).data) not in presented:
            raise PreconditionFailed()
        return locked
