"""Relaying an API request to kestrel and its answer back, both bodies streamed as they come.

The agent proxy (``/api/v1/vms/{name}/agent/{path}``) sends kestrel the path
exactly as the client encoded it, the request body as it is read from the
client, and hands the answer's body to the server chunk by chunk (which writes
each one as it comes), so neither body is ever held whole in volantd.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from collections.abc import Callable, Iterator

import falcon

from volant_core.agent_client import CHUNK_SIZE, AgentResponse, AgentStream
from volant_core.api.workload import HOP_BY_HOP_HEADERS, HOP_HEADERS, relay, relay_head
from volant_core.api.wsgi_bridge import HANGUP_KEY, RAW_TARGET_KEY, ClientHangup
from volant_core.errors import AgentError, ValidationError

log = logging.getLogger(__name__)

#: Request headers never forwarded to the guest agent: hop-by-hop ones, and ours (credentials).
DROPPED_REQUEST_HEADERS = HOP_HEADERS | {
    "host",
    "accept-encoding",
    "expect",
    "x-volant-api-key",
    "authorization",
}
#: What precedes ``{name}/agent/...`` in the proxy's path.
_VMS_PREFIX = "/api/v1/vms/"
#: Characters of a decoded path segment sent on as they are (RFC 3986 pchar, and ``/``).
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
#: Characters of a raw request target sent on as they are: printable ASCII but space (the rest,
#: which a client should not have sent raw, is percent-encoded).
_TARGET_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))
#: Most bytes of an answer's body read at once to be relayed: each chunk is handed between
#: threads and written on its own, so a large body costs fewer hand-overs in larger chunks
#: (a read returns as soon as anything arrived; a Unix socket holds ~200 KiB).
RELAY_CHUNK_SIZE = 256 * 1024
#: Answers whose ``Content-Length`` is at most this are read at once when their body follows their
#: head closely, and answered whole: no stream to hand between threads, no hang-up to watch.
SMALL_ANSWER = CHUNK_SIZE
#: Longest pause (seconds) in such a body before it is relayed as a stream after all. kestrel
#: writes a head and its body apart: the body usually follows within microseconds.
SMALL_ANSWER_PAUSE_S = 0.002


def agent_target(req: falcon.Request, name: str, path: str) -> str:
    """The request target for kestrel: what the client wrote after ``/api/v1/vms/{name}/agent``,
    percent-encoding and query string kept (``a%2Fb`` stays one segment).

    volantd's server keeps the raw target in ``REQUEST_URI``; under a server
    that does not, the decoded ``path`` is encoded again (``%2F`` then reads as ``/``).
    """
    raw = req.env.get(RAW_TARGET_KEY, "")
    raw_path, mark, query = raw.partition("?")
    if raw_path.startswith(_VMS_PREFIX):
        raw_name, _, rest = raw_path[len(_VMS_PREFIX) :].partition("/")
        if urllib.parse.unquote(raw_name) == name and rest.startswith("agent/"):
            target = rest[len("agent") :] + mark + query
            return urllib.parse.quote(target, safe=_TARGET_SAFE, encoding="latin-1")
    target = "/" + urllib.parse.quote(path.lstrip("/"), safe=_PATH_SAFE)
    return target + "?" + req.query_string if req.query_string else target


def forwarded_headers(req: falcon.Request) -> dict[str, str]:
    """The request's headers kestrel gets: all but :data:`DROPPED_REQUEST_HEADERS` and those the
    ``Connection`` header names (hop-by-hop too, RFC 9110 section 7.6.1).

    Raises 400 for a header value holding CR, LF or NUL: a line break in a value would start a
    header, or a request, of the sender's choosing on kestrel's side (request smuggling). The
    server in front (uvicorn's parser) refuses most of them already; this holds under any server.
    """
    connection = req.get_header("Connection") or ""
    dropped = DROPPED_REQUEST_HEADERS | {token.strip().lower() for token in connection.split(",")}
    forwarded = {}
    for name, value in req.headers.items():
        if any(char in value for char in "\r\n\0"):
            raise falcon.HTTPBadRequest(
                title="Bad header",
                description=f"header {name}: a value may not hold CR, LF or NUL; send it on one line",
            )
        if name.lower() not in dropped:
            forwarded[name] = value
    return forwarded


def request_body(req: falcon.Request) -> Iterator[bytes] | None:
    """The request body as it is read from the client (``Content-Length`` bytes); None without one.

    Raises 411 for a body sent with a ``Transfer-Encoding`` (chunked): the
    server does not decode it, the body must come with its ``Content-Length``.
    """
    if req.get_header("Transfer-Encoding"):
        raise falcon.HTTPLengthRequired(
            description="the agent proxy needs the request body's Content-Length: "
            "send the body with its length instead of Transfer-Encoding: chunked"
        )
    length = req.content_length
    return _chunks(req.bounded_stream.read, length) if length else None


def relay_stream(answer: AgentStream, req: falcon.Request, resp: falcon.Response) -> None:
    """Answer ``resp`` with ``answer``: its status, end-to-end headers (``Content-Length`` too) and
    its body as it arrives, for as long as the guest and the client keep the stream open.

    The body has no idle limit: when the client of ``req`` hangs up while the
    guest is quiet, the stream is broken off at once (volantd's server tells,
    through :data:`HANGUP_KEY`). The agent connection is given back when the
    server closes the body (at its end, or when the client went away).

    A small answer (``Content-Length`` at most :data:`SMALL_ANSWER`) whose body
    follows its head without a pause over :data:`SMALL_ANSWER_PAUSE_S` is read
    at once and answered whole; what came before such a pause is sent first.
    """
    early = b""
    if answer.length is not None and 0 < answer.length <= SMALL_ANSWER:
        early = answer.take_arrived(SMALL_ANSWER_PAUSE_S)
        if answer.length == 0:  # all of it: the connection is back in the agent client's pool
            relay(AgentResponse(answer.status, answer.headers, early), resp)
            return
    relay_head(answer.status, answer.headers, resp, HOP_BY_HOP_HEADERS)
    hangup = req.env.get(HANGUP_KEY)
    if not isinstance(hangup, ClientHangup):
        hangup = None  # another WSGI server: the per-chunk timeout stays
    else:
        answer.set_idle_timeout(None)
    resp.stream = _RelayedBody(answer, hangup, early)


class _RelayedBody:
    """An agent answer's body for the WSGI server: chunks as they arrive, ``close()`` to give back
    its connection. A body the agent breaks off, or whose client hangs up, just ends early (logged).
    """

    def __init__(self, answer: AgentStream, hangup: ClientHangup | None, early: bytes = b"") -> None:
        """Relay ``answer``'s body, after ``early`` (what of it was read already)."""
        self._answer = answer
        self._hangup = hangup
        self._early = early

    def __iter__(self) -> Iterator[bytes]:
        if self._early:
            yield self._early
        watch = self._hangup.watch(self._hung_up) if self._hangup is not None else contextlib.nullcontext()
        try:
            with watch:
                yield from self._answer.chunks(RELAY_CHUNK_SIZE)
        except AgentError as exc:
            log.warning("relayed answer cut short: %s", exc.message)

    def _hung_up(self) -> None:
        log.info("client hung up during a relayed answer: breaking it off")
        self._answer.interrupt()

    def close(self) -> None:
        """Give back the agent connection (closed if the body was not read to its end)."""
        self._answer.close()


def _chunks(read: Callable[[int], bytes], length: int) -> Iterator[bytes]:
    """``length`` bytes as ``read`` returns them; 422 when they end before."""
    left = length
    while left:
        chunk = read(min(left, CHUNK_SIZE))
        if not chunk:
            raise ValidationError(
                f"body: the client sent {length - left} of the {length} bytes of Content-Length",
                field="body",
            )
        left -= len(chunk)
        yield chunk
