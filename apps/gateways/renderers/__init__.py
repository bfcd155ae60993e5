"""Renderers by proxy kind."""

from apps.gateways.rendered import RenderedConfig
from apps.gateways.renderers.base import Renderer, RenderRequest

_RENDERERS: dict[str, Renderer] = {}


def register(renderer: Renderer) -> Renderer:
    _RENDERERS[renderer.kind] = renderer
    return renderer


def render(kind: str, request: RenderRequest) -> RenderedConfig:
    try:
        renderer = _RENDERERS[kind]
    except KeyError:
        raise LookupError(f"no renderer for gateway kind {kind!r}") from None
    return renderer.render(request)
