"""The object every volar command receives: the API client built from the global options."""

from __future__ import annotations

import click

from volant_core.cli.client import ApiClient

#: Decorator handing a command the :class:`ApiClient` of the current invocation.
pass_client = click.make_pass_decorator(ApiClient)
