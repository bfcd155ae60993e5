"""Renderers with a bug, for tests proving that the equivalence proof catches it."""

import dataclasses

from apps.policies.snapshot import CompiledPolicy


def without_deny_rules(render, gateway: str):
    """``render`` that forgets every deny rule of ``gateway``'s routes."""

    def broken_render(kind, request):
        routes = tuple(dataclasses.replace(route, deny_rules=()) for route in request.policy.routes)
        indexes = {gateway: type(request.policy.index).of(routes)}
        policy = dataclasses.replace(request.policy, gateway_indexes=indexes)
        return render(kind, dataclasses.replace(request, policy=policy))

    return broken_render


def rendering_policy(render, policy: CompiledPolicy):
    """``render`` that renders ``policy`` (an earlier one, say) whatever it is asked for."""

    def broken_render(kind, request):
        return render(kind, dataclasses.replace(request, policy=policy))

    return broken_render
