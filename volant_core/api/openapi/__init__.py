"""The OpenAPI document of volantd, generated from the live route table (see docs/adr/0013-openapi.md).

* :mod:`~volant_core.api.openapi.routes`: :class:`RoutedApp`, the app that records each route it mounts,
  and the mounting of plugin routes (``volant_api_routes``);
* :mod:`~volant_core.api.openapi.operations`: ``@operation``, what a responder declares beyond its
  signature and docstring (bodies, statuses, errors);
* :mod:`~volant_core.api.openapi.generator`: the document, and ``GET /openapi``;
* :mod:`~volant_core.api.openapi.export`: the committed copy, :data:`DEFAULT_OUTPUT`.

This package's own module imports nothing, so ``volar`` can name the default output cheaply.
"""

from pathlib import Path

#: Where the committed copy of the document lives (relative to the repository root).
DEFAULT_OUTPUT = Path("docs/api-reference/openapi.json")
