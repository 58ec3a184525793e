"""The route table: every route the app mounts, recorded as it is mounted, plugin routes included.

:class:`RoutedApp` is the Falcon app of volantd. Its ``add_route`` records each
route (template, resource, suffix, tags) before Falcon compiles it, so nothing
can be served without being in :attr:`RoutedApp.routes`, the table the OpenAPI
document is generated from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon
from falcon.routing.util import SuffixedMethodNotFoundError

from volant_core.descriptors import RouteDescriptor
from volant_core.plugins import Plugins

#: Hook through which plugins mount routes.
ROUTES_HOOK = "volant_api_routes"
#: Tag of routes outside ``/api/v1/<group>`` (``/healthz``, ``/openapi``).
SYSTEM_TAG = "system"
_API_PREFIX = "/api/v1/"


@dataclass(frozen=True)
class MountedRoute:
    """One ``add_route`` call: ``suffix`` picks the ``on_<method>_<suffix>`` responders."""

    template: str
    resource: object
    suffix: str | None
    tags: tuple[str, ...]


def default_tags(template: str) -> tuple[str, ...]:
    """The resource group of a route: the segment after ``/api/v1/``, else ``system``."""
    if template.startswith(_API_PREFIX):
        return (template[len(_API_PREFIX) :].split("/")[0],)
    return (SYSTEM_TAG,)


class RoutedApp(falcon.App):
    """A :class:`falcon.App` that keeps the table of the routes it serves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._router = kwargs.setdefault("router", falcon.routing.CompiledRouter())
        super().__init__(*args, **kwargs)
        self.routes: list[MountedRoute] = []

    def add_route(self, uri_template: str, resource: object, **kwargs: Any) -> None:
        """Mount ``resource`` as Falcon does and record it; ``tags=(...)`` overrides the
        group taken from the path. Mounting a template again replaces it, as in Falcon.
        """
        tags = tuple(kwargs.pop("tags", ())) or default_tags(uri_template)
        super().add_route(uri_template, resource, **kwargs)
        route = MountedRoute(uri_template, resource, kwargs.get("suffix"), tags)
        self.routes = [r for r in self.routes if r.template != uri_template] + [route]

    def answers_on_loop(self, path: str) -> bool:
        """Whether the resource routed to ``path`` says that none of its responders blocks (a
        true ``answers_on_loop`` attribute): the server then calls the app for it on its event
        loop, sparing the hand-over to a thread and back (ADR 24).
        """
        found = self._router.find(path)
        return found is not None and getattr(found[0], "answers_on_loop", False) is True


def mount_plugin_routes(app: RoutedApp, plugins: Plugins) -> None:
    """Mount the routes plugins registered through ``volant_api_routes``.

    A plugin whose routes clash with mounted ones (the same template, or one
    Falcon refuses beside them) is marked failed (keeping nothing it registered)
    and none of its routes are mounted; the core's routes are never replaced.
    """
    by_owner: dict[str, list[RouteDescriptor]] = {}
    for owner, route in plugins.registries.routes:
        by_owner.setdefault(owner, []).append(route)
    for owner, routes in by_owner.items():
        problem = _clash(app, routes)
        if problem is not None:
            plugins.fail(owner, f"{ROUTES_HOOK}: {problem}")
            continue
        for route in routes:
            app.add_route(route.path, route.resource, suffix=route.suffix, tags=route.tags or (owner,))


def _clash(app: RoutedApp, routes: list[RouteDescriptor]) -> str | None:
    """Why ``routes`` cannot be mounted beside the app's, or None: a template taken already, or
    one Falcon refuses (tried on a scratch router, so a refused plugin mounts nothing).
    """
    scratch = falcon.routing.CompiledRouter()
    for mounted in app.routes:
        scratch.add_route(mounted.template, mounted.resource, suffix=mounted.suffix)
    taken = {mounted.template for mounted in app.routes}
    for route in routes:
        if route.path in taken:
            return f"{route.path} is mounted already; pick another path"
        taken.add(route.path)
        try:
            scratch.add_route(route.path, route.resource, suffix=route.suffix)
        except (ValueError, SuffixedMethodNotFoundError) as err:  # ValueError: UnacceptableRouteError
            return f"{route.path}: {err}"
    return None
