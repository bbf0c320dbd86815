"""One HTTP/1.1 exchange over a TCP stream to a container: a function call as a request, its response as a Reply."""

from __future__ import annotations

import h11

from seabox.errors import InvalidArgument, ReplyTooLarge, UpstreamError
from seabox.model.function import MAX_BODY
from seabox.protocol.streams import TcpStream
from seabox.services.function_exec import Call, Reply

MAX_HEAD = 64 << 10  # bytes of a response's status line and headers
# set here, not by the caller; the rest are hop-by-hop (RFC 9110 7.6.1) and not answered on
OWN_HEADERS = frozenset({"host", "content-length", "connection", "expect", "transfer-encoding", "te", "upgrade"})
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "trailer", "upgrade"})


def request_bytes(conn: h11.Connection, call: Call) -> bytes:
    """CALL as one HTTP/1.1 request on CONN to / (and its query) with its body, closing the connection after it."""
    target = "/" + (f"?{call.query}" if call.query else "")
    headers = [("host", "function"), ("content-length", str(len(call.body))), ("connection", "close")]
    headers += [(k, v) for k, v in call.headers.items() if k.lower() not in OWN_HEADERS]
    try:
        return b"".join((conn.send(h11.Request(method=call.method, target=target, headers=headers)) or b"",
                         conn.send(h11.Data(data=call.body)) or b"", conn.send(h11.EndOfMessage()) or b""))
    except h11.LocalProtocolError as exc:
        raise InvalidArgument(f"the call cannot be sent as HTTP: {exc}", field="headers") from None


async def exchange(stream: TcpStream, call: Call, what: str) -> Reply:
    """Send CALL over STREAM and parse the response (WHAT names the function in errors); 509 past MAX_BODY."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    await stream.write(request_bytes(conn, call))
    response: h11.Response | None = None
    body = bytearray()
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.read())
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise ReplyTooLarge(f"{what} answered more than {MAX_BODY} bytes (1 MiB)")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
    except h11.RemoteProtocolError as exc:
        raise UpstreamError(f"{what} answered no valid HTTP response: {exc}") from None
    if response is None:
        raise UpstreamError(f"{what} closed the connection without an HTTP response")
    headers: dict[str, str] = {}
    for raw_name, raw_value in response.headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name not in HOP_BY_HOP:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Reply(status=response.status_code, body=bytes(body), headers=headers)
