"""Renderers by proxy kind: each module in ``_MODULES`` registers one renderer when imported."""

import importlib
from functools import cache

from apps.gateways.rendered import RenderedConfig
from apps.gateways.renderers.base import Renderer, RenderRequest

_MODULES = ("haproxy", "lighttpd")
_RENDERERS: dict[str, Renderer] = {}


def register(renderer: Renderer) -> Renderer:
    _RENDERERS[renderer.kind] = renderer
    return renderer


@cache
def _load_all() -> None:
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")


def renderer_for(kind: str) -> Renderer:
    _load_all()
    try:
        return _RENDERERS[kind]
    except KeyError:
        raise LookupError(f"no renderer for gateway kind {kind!r}") from None


def render(kind: str, request: RenderRequest) -> RenderedConfig:
    return renderer_for(kind).render(request)
