"""Who may use the API: CORS, the client-address allowlist and the API key, as Falcon middleware.

Each job is one middleware class, in this order (see :func:`security_middleware`,
ADR 11 and ADR 25):

1. :class:`HostCheck` (always; ``VOLANT_API_HOSTS`` adds names): 421 for a foreign ``Host``;
2. :class:`Cors` (``VOLANT_CORS_ORIGINS``): answers browser preflights;
3. :class:`OriginCheck` (always): 403 for a change asked by a page outside ``VOLANT_CORS_ORIGINS``;
4. :class:`AddressAllowlist` (``VOLANT_API_ALLOW_CIDR``, ``VOLANT_TRUSTED_PROXIES``): 403;
5. :class:`ApiKeyAuth` (``VOLANT_API_KEY`` or ``VOLANT_API_KEY_FILE``): 401.

The others are installed only when their setting is given. The last two let a Prometheus scrape
from ``VOLANT_METRICS_ADDRESSES`` through (:class:`ScrapeAccess`, ADR 39).

The body-size limit of :mod:`volant_core.api.app` runs after them. Refusals are
:class:`~volant_core.errors.VolantError` subclasses, so they get the usual error body.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Sequence

import falcon

from volant_core.errors import ForbiddenError, MisdirectedError, UnauthorizedError
from volant_core.settings import IPNetwork, Settings, is_loopback

#: Paths answered without an API key: load balancers and supervisors probe them.
OPEN_PATHS = frozenset({"/healthz"})

#: The path of the Prometheus metrics (docs/adr/0039-metrics-and-cli-startup.md).
METRICS_PATH = "/metrics"

#: Header carrying the API key (``Authorization: Bearer <key>`` works too).
KEY_HEADER = "X-Volant-API-Key"

#: Query parameter the Go original read the key from; refused, as URLs end up in logs.
QUERY_KEY_PARAM = "api_key"

#: CORS answers: what a browser may send, and which response headers its scripts may read.
CORS_ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_ALLOW_HEADERS = f"{KEY_HEADER}, Authorization, Content-Type"
CORS_EXPOSE_HEADERS = "X-Total-Count, Location"
#: Seconds a browser may cache a preflight answer.
CORS_MAX_AGE = "600"

#: A ``Host`` header value: a name or ``[IPv6 address]``, then maybe a port.
_HOST = re.compile(r"(?:\[(?P<address>[^\]]+)\]|(?P<name>[^:\[\]]+))(?::\d+)?")

_QUERY_KEY = re.compile(rf"([?&]{QUERY_KEY_PARAM}=)[^&\s]*")

#: A client address, IPv4 or IPv6.
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def redact_query_key(text: str) -> str:
    """``text`` (a request line, a URL) with the value of any ``api_key=`` query parameter hidden."""
    return _QUERY_KEY.sub(r"\1<redacted>", text)


def origin_allowed(origin: str, origins: Sequence[str]) -> bool:
    """Whether a browser page from ``origin`` may use the API; ``origins`` as settings keep
    ``VOLANT_CORS_ORIGINS`` (lower case, no trailing ``/``; ``*`` for any).
    """
    return "*" in origins or origin.lower().rstrip("/") in origins


class Cors:
    """CORS for browser clients from the origins in ``VOLANT_CORS_ORIGINS`` (``*``: any origin).

    A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
    is answered 204 here, before the allowlist and the key check: browsers send
    it without credentials. An allowed origin gets ``Access-Control-Allow-Origin``
    on every answer, errors included, so a page can read why it was refused;
    other origins get no CORS headers. No ``Allow-Credentials``: the key travels
    in a header, never in a cookie.
    """

    def __init__(self, origins: Sequence[str]) -> None:
        self._any = "*" in origins
        self._origins = tuple(origins)

    def _allow_origin(self, req: falcon.Request) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``req``, or None for no CORS headers."""
        origin = req.get_header("Origin")
        if origin is None or not origin_allowed(origin, self._origins):
            return None
        return "*" if self._any else origin

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer a preflight at once: 204, with the allowed methods and headers for an allowed origin."""
        if req.method != "OPTIONS" or not req.get_header("Access-Control-Request-Method"):
            return
        if self._allow_origin(req) is not None:
            resp.set_header("Access-Control-Allow-Methods", CORS_ALLOW_METHODS)
            resp.set_header("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS)
            resp.set_header("Access-Control-Max-Age", CORS_MAX_AGE)
        resp.status = falcon.HTTP_204
        resp.complete = True

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        """Add the origin headers to every answer for an allowed origin."""
        if not self._any:
            resp.append_header("Vary", "Origin")
        allowed = self._allow_origin(req)
        if allowed is not None:
            resp.set_header("Access-Control-Allow-Origin", allowed)
            resp.set_header("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS)


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header value (port and IPv6 brackets dropped, lower case, no
    trailing dot); a value that is not ``name[:port]`` or ``[address][:port]`` comes back whole.
    """
    value = host_header.strip().lower()
    match = _HOST.fullmatch(value)
    if match is None:
        return value
    return (match["address"] or match["name"]).rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    """Only requests whose ``Host`` volantd answers to get through; 421 for the others.

    Accepted: ``localhost``, any IP address (the listen address among them), and the
    names in ``VOLANT_API_HOSTS``. A page on another site that points its own DNS name
    at 127.0.0.1 (DNS rebinding) makes the browser send that name, so it cannot read
    volantd's answers; a name cannot be rebound when it is an address, or ``localhost``,
    which browsers resolve themselves. A request without ``Host`` (HTTP/1.0, never a
    browser) passes.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self._names = frozenset(names)

    def allowed(self, host_header: str) -> bool:
        """Whether volantd answers requests carrying ``Host: host_header``."""
        name = host_name(host_header)
        return name in self._names or is_loopback(name) or _is_address(name)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Refuse the request with 421 when its ``Host`` is not one volantd answers to."""
        host = req.env.get("HTTP_HOST")
        if host is not None and not self.allowed(host):
            raise MisdirectedError(
                f"Host {host!r} is not a name of this volantd; reach it by address or localhost, "
                "or add the name to VOLANT_API_HOSTS (comma-separated)",
                field="Host",
            )


#: Methods a browser sends cross-origin without a preflight only when they change nothing.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class OriginCheck:
    """Requests that may change something (not GET, HEAD or OPTIONS) carrying an ``Origin``
    outside ``VOLANT_CORS_ORIGINS`` get 403.

    Browsers send ``Origin`` on every cross-origin request, and a page may POST with no body
    (start, stop, an action) without a preflight; volantd serves no pages of its own, so such a
    request comes from another site's page. Programs send no ``Origin`` and are not affected.
    """

    def __init__(self, origins: Sequence[str]) -> None:
        self._origins = tuple(origins)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Refuse a change asked by a web page from an origin not listed."""
        origin = req.get_header("Origin")
        if req.method in SAFE_METHODS or origin is None or origin_allowed(origin, self._origins):
            return
        raise ForbiddenError(
            f"a web page from {origin} may not change anything here; "
            "list its origin in VOLANT_CORS_ORIGINS to allow it",
            field="Origin",
        )


def _parse_address(text: str) -> IPAddress:
    """``text`` as an IP address (an IPv4-mapped IPv6 address as IPv4); ValueError if it is none."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> IPAddress:
    """The address a request counts as coming from.

    ``peer`` is the TCP peer. Its ``X-Forwarded-For`` (``forwarded_for``) is read
    only while the hop in hand is a trusted proxy: walking the chain from the
    right, the first address outside ``trusted`` is the client (if all are
    trusted, the left-most one). So a client cannot choose its address by
    sending the header itself. ValueError when a hop read is not an IP address.
    """
    hops = [*(forwarded_for.split(",") if forwarded_for else []), peer]
    for hop in reversed(hops):
        address = _parse_address(hop)
        if not any(address in network for network in trusted):
            return address
    return address


class ScrapeAccess:
    """Which requests are Prometheus scrapes that need neither the API key nor the allowlist:
    ``GET /metrics`` from a client in ``VOLANT_METRICS_ADDRESSES`` (found as
    :func:`client_address` finds it, behind ``VOLANT_TRUSTED_PROXIES``). Nothing else is opened.
    """

    def __init__(self, scrapers: Sequence[IPNetwork], trusted_proxies: Sequence[IPNetwork]) -> None:
        self._scrapers = tuple(scrapers)
        self._trusted = tuple(trusted_proxies)

    def allows(self, req: falcon.Request) -> bool:
        """Whether ``req`` is a metrics scrape from an address allowed to scrape without a key."""
        if not self._scrapers or req.method != "GET" or req.path != METRICS_PATH:
            return False
        try:
            address = client_address(
                req.env.get("REMOTE_ADDR", ""), req.get_header("X-Forwarded-For"), self._trusted
            )
        except ValueError:
            return False
        return any(address in network for network in self._scrapers)


class AddressAllowlist:
    """Only clients in ``VOLANT_API_ALLOW_CIDR`` get through; 403 for the others.

    The client is the TCP peer (WSGI ``REMOTE_ADDR``, which Falcon's
    ``req.remote_addr`` also reads but replaces with 127.0.0.1 when missing; a
    missing peer is refused here), or, behind proxies listed in
    ``VOLANT_TRUSTED_PROXIES``, the address :func:`client_address` finds in
    ``X-Forwarded-For``. ``X-Real-IP`` and ``Forwarded`` are ignored. Every path
    is filtered, ``/healthz`` included; only the scrapes ``scrape`` allows pass.
    """

    def __init__(
        self, allowed: Sequence[IPNetwork], trusted_proxies: Sequence[IPNetwork], scrape: ScrapeAccess
    ) -> None:
        self._allowed = tuple(allowed)
        self._trusted = tuple(trusted_proxies)
        self._scrape = scrape

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Refuse the request with 403 unless its client address is allowed."""
        if self._scrape.allows(req):
            return
        try:
            address = client_address(
                req.env.get("REMOTE_ADDR", ""), req.get_header("X-Forwarded-For"), self._trusted
            )
        except ValueError:
            raise ForbiddenError("access denied: cannot tell the client address") from None
        if not any(address in network for network in self._allowed):
            raise ForbiddenError(f"access denied: {address} is not in VOLANT_API_ALLOW_CIDR")


def presented_key(req: falcon.Request) -> str | None:
    """The key ``req`` carries in ``X-Volant-API-Key`` or, failing that, ``Authorization: Bearer``."""
    key = req.get_header(KEY_HEADER)
    if key is not None:
        return key
    scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ApiKeyAuth:
    """Every request but those to :data:`OPEN_PATHS` and the scrapes ``scrape`` allows must carry
    the API key; 401 otherwise.

    The key is compared with :func:`hmac.compare_digest` (constant time). A key
    in the query string (``?api_key=``, as the Go original allowed) is refused
    whatever the headers say, so clients move to the header.
    """

    def __init__(self, key: str, scrape: ScrapeAccess) -> None:
        self._key = key.encode()
        self._scrape = scrape

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Refuse the request with 401 unless it carries the right key in a header."""
        if req.path in OPEN_PATHS or self._scrape.allows(req):
            return
        problem = self._problem(req)
        if problem is not None:
            resp.set_header("WWW-Authenticate", 'Bearer realm="volant"')
            raise UnauthorizedError(problem)

    def _problem(self, req: falcon.Request) -> str | None:
        """Why ``req`` is not authenticated, or None when it is."""
        if QUERY_KEY_PARAM in falcon.uri.parse_query_string(req.query_string, keep_blank=True):
            return (
                "API keys are not accepted in the query string (URLs end up in logs); "
                f"send it in the {KEY_HEADER} header or as Authorization: Bearer"
            )
        key = presented_key(req)
        if key is None:
            return f"missing API key; send it in the {KEY_HEADER} header or as Authorization: Bearer"
        if not hmac.compare_digest(key.encode(), self._key):
            return "invalid API key"
        return None


#: One access-control middleware.
Middleware = HostCheck | Cors | OriginCheck | AddressAllowlist | ApiKeyAuth


def security_middleware(settings: Settings) -> list[Middleware]:
    """The access-control middleware ``settings`` ask for, in the order they must run."""
    chain: list[Middleware] = [HostCheck(settings.api_hosts)]
    if settings.cors_origins:
        chain.append(Cors(settings.cors_origins))
    chain.append(OriginCheck(settings.cors_origins))
    scrape = ScrapeAccess(settings.metrics_addresses, settings.trusted_proxies)
    if settings.api_allow_cidr:
        chain.append(AddressAllowlist(settings.api_allow_cidr, settings.trusted_proxies, scrape))
    if settings.api_key:
        chain.append(ApiKeyAuth(settings.api_key, scrape))
    return chain
