"""The HTTP/1.1 exchange of an http-mode call: the request a replica gets, the reply parsed back, the 1 MiB bound."""

from __future__ import annotations

import pytest

from seabox.errors import InvalidArgument, ReplyTooLarge, UpstreamError
from seabox.model.function import MAX_BODY, Function, FunctionSpec
from seabox.model.tenant import Tenant
from seabox.services.function_exec import Call
from seabox.services.http_forward import exchange


class FakeStream:
    """A TcpStream whose peer answers ANSWER in chunks of CHUNK bytes, then closes."""

    def __init__(self, answer: bytes, chunk: int = 7) -> None:
        self.sent = b""
        self._answer = answer
        self._chunk = chunk

    async def read(self, n: int = 65536) -> bytes:
        data, self._answer = self._answer[:min(n, self._chunk)], self._answer[min(n, self._chunk):]
        return data

    async def write(self, data: bytes) -> None:
        self.sent += data

    def close_write(self) -> None: ...

    def close(self) -> None: ...


def _call(body: bytes = b"hello", headers: dict[str, str] | None = None, method: str = "POST", query: str = "") -> Call:
    fn = Function(id="f" * 32, tenant="t", spec=FunctionSpec(name="fn", image="busybox", mode="http"), secret="s",
                  created_at=0.0)
    tenant = Tenant.model_construct(id="t", name="t", index=1)
    return Call("c" * 32, tenant, fn, body, headers or {}, 0.0, method=method, query=query)


async def test_the_call_goes_as_one_request_and_the_response_comes_back() -> None:
    stream = FakeStream(b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                        b"Content-Length: 5\r\nConnection: close\r\n\r\nworld")
    reply = await exchange(stream, _call(headers={"x-greeting": "hi", "expect": "100-continue", "host": "evil"},
                                         method="PUT", query="a=1"), "function fn")
    assert (reply.status, reply.body) == (201, b"world")
    assert reply.headers == {"content-type": "text/plain", "set-cookie": "a=1, b=2"}
    head, _, body = stream.sent.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"PUT /?a=1 HTTP/1.1" and body == b"hello"
    assert b"x-greeting: hi" in lines and b"host: function" in lines and b"content-length: 5" in lines
    assert not any(line.startswith((b"expect", b"host: evil")) for line in lines)


async def test_a_body_until_the_connection_closes_and_a_chunked_one_are_read_whole() -> None:
    closing = await exchange(FakeStream(b"HTTP/1.1 200 OK\r\n\r\nuntil the end"), _call(), "fn")
    assert closing.body == b"until the end"
    chunked = await exchange(FakeStream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
                             _call(), "fn")
    assert chunked.body == b"abc" and "transfer-encoding" not in chunked.headers


async def test_a_reply_over_1_mib_is_refused_with_509() -> None:
    big = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MAX_BODY + 1)
    with pytest.raises(ReplyTooLarge) as err:
        await exchange(FakeStream(big, chunk=65536), _call(), "function fn")
    assert err.value.status == 509
    exact = await exchange(FakeStream(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * MAX_BODY, chunk=65536), _call(), "fn")
    assert len(exact.body) == MAX_BODY


@pytest.mark.parametrize("answer", [b"", b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * (70 << 10)])
async def test_no_valid_response_is_a_502(answer: bytes) -> None:
    with pytest.raises(UpstreamError):
        await exchange(FakeStream(answer, chunk=65536), _call(), "function fn")


async def test_a_header_http_cannot_carry_is_a_400() -> None:
    with pytest.raises(InvalidArgument):
        await exchange(FakeStream(b""), _call(headers={"x-bad": "a\r\nb"}), "fn")
