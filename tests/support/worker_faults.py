"""Faults a test makes a real Celery worker suffer, named in ``POLICYHUB_WORKER_FAULTS`` (comma-separated).

``tests.support.celery_worker`` has the worker import this module (``celery worker --include``) in
its main process, before the pool forks. Each fault wraps one collaborator of the pipeline the way
the in-process tests in tests/gateways/test_deploy.py monkeypatch it; everything else is real.

- ``invalid-render``: the rendered main config gets a line the proxy refuses, so validation fails.
- ``reload-refused``: the first reload after a flip fails the way a proxy refusing its new config
  does (``ReloadFailed``); the rollback's reload is the real one.
"""

import os

FAULTS_VARIABLE = "POLICYHUB_WORKER_FAULTS"


def refused_by_the_proxy(render):
    """``render`` wrapped so the main config it renders gets a line the proxy refuses."""
    from dataclasses import replace

    from apps.gateways.rendered import RenderedFile

    def broken_render(kind, request):
        rendered = render(kind, request)
        files = dict(rendered.files)
        files[rendered.main] = RenderedFile(rendered.files[rendered.main].content + b"\nthis is { not a config\n")
        return replace(rendered, files=files)

    return broken_render


def _invalid_render() -> None:
    from apps.gateways import pipeline

    pipeline.render = refused_by_the_proxy(pipeline.render)


def _reload_refused() -> None:
    from apps.gateways import pipeline
    from apps.gateways.reload import ReloadFailed

    real_reload = pipeline.reload_proxy
    refused = []

    def reload_proxy(*, kind, transport):
        if not refused:
            refused.append(transport.directory)
            raise ReloadFailed(f"{kind} refused the new config (fault injected by the test)")
        real_reload(kind=kind, transport=transport)

    pipeline.reload_proxy = reload_proxy


FAULTS = {"invalid-render": _invalid_render, "reload-refused": _reload_refused}

for _name in filter(None, os.environ.get(FAULTS_VARIABLE, "").split(",")):
    FAULTS[_name]()
