"""Function calls without containers: header filtering and the header -> environment mapping, the call
gateway's limits and timeouts with a fake executor, and the store's secret lookup and call records
(admission itself: test_call_admission.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel, ValidationError

from seabox.config import FunctionsConfig, QuotasConfig
from seabox.errors import (
    CallTimeout, Conflict, InvalidArgument, PayloadTooLarge, ReplyTooLarge, TooManyRequests, validation_error,
)
from seabox.model.container import ContainerCreate
from seabox.model.function import MAX_BODY, Function, FunctionSpec, FunctionUpdate
from seabox.model.tenant import Tenant
from seabox.services.function_calls import CallGateway, forwarded
from seabox.services.function_exec import Call, Reply
from seabox.services.function_stdio import header_env
from seabox.services.functions import check_spec
from seabox.store.db import open_engine
from seabox.store.functions import FunctionStore
from seabox.store.repo import Store
from tests.unit.test_store import ROOMY


def test_hop_by_hop_and_credential_headers_are_dropped_and_repeats_joined() -> None:
    headers = [("X-Api-Key", "k"), ("Authorization", "Bearer k"), ("Connection", "close"), ("Cookie", "s=1"),
               ("X-Foo", "a"), ("x-foo", "b"), ("Content-Type", "text/plain")]
    assert forwarded(headers) == {"x-foo": "a, b", "content-type": "text/plain"}


def test_headers_are_bounded() -> None:
    with pytest.raises(Exception, match="at most 64 headers"):
        forwarded([(f"X-H{i}", "v") for i in range(65)])
    with pytest.raises(Exception, match="bytes"):
        forwarded([(f"X-H{i}", "v" * 1000) for i in range(20)])


def _tenant() -> Tenant:
    from datetime import UTC, datetime

    return Tenant(id="t1", name="t", index=1, created_at=datetime.now(UTC))


def _fn(**spec: object) -> Function:
    return Function(id="f1", tenant="t1", spec=FunctionSpec(name="f", image="busybox", **spec), secret="s",
                    created_at=time.time())


def test_headers_become_openfaas_style_environment() -> None:
    call = Call("c", _tenant(), _fn(), b"", {"x-foo-bar": "1", "content-type": "a/b", "bad name": "x"}, 0.0,
                method="PUT", query="a=b")
    assert header_env(call) == ["Http_Method=PUT", "Http_Path=/", "Http_Query=a=b", "Http_X_Foo_Bar=1",
                                "Http_Content_Type=a/b"]


@pytest.fixture
def store(db_url: str) -> FunctionStore:
    """A function store on a new database, once per engine (SQLite and PostgreSQL)."""
    engine = open_engine(db_url)
    Store(engine).create_tenant("t")
    return FunctionStore(engine)


def _tenant_of(store: FunctionStore) -> Tenant:
    return Store(store.engine).tenant_by_name("t")


def test_secrets_open_only_their_function_and_rotate(store: FunctionStore) -> None:
    tenant = _tenant_of(store)
    fn = store.create(tenant.id, FunctionSpec(name="f", image="busybox"), ROOMY["functions"])
    assert store.by_secret(fn.secret) == fn
    assert store.by_secret(fn.secret + "x") is None
    new = store.update(fn, fn.spec, refresh=True)
    assert new.generation == 2 and new.secret != fn.secret
    assert store.by_secret(fn.secret) is None and store.by_secret(new.secret) == new
    with pytest.raises(Conflict):
        store.create(tenant.id, FunctionSpec(name="f", image="busybox"), ROOMY["functions"])


class FakeExecutor:
    def __init__(self, reply: Reply, delay: float = 0.0) -> None:
        self.reply, self.delay, self.calls = reply, delay, 0

    async def run(self, call: Call) -> Reply:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.reply


def _gateway(store: FunctionStore, executor: FakeExecutor, **cfg: object) -> CallGateway:
    return CallGateway(FunctionsConfig(**cfg), store, {"stdio": executor}, "server-1")  # type: ignore[arg-type]


async def test_the_gateway_refuses_a_body_over_1_mib_before_running_anything(store: FunctionStore) -> None:
    tenant = _tenant_of(store)
    fn = store.create(tenant.id, FunctionSpec(name="f", image="busybox"), ROOMY["functions"])
    executor = FakeExecutor(Reply(200, b"ok"))
    gateway = _gateway(store, executor)
    with pytest.raises(PayloadTooLarge):
        await gateway.call(tenant, fn, b"x" * (MAX_BODY + 1), {}, sync=True)
    assert executor.calls == 0 and store.active_counts(fn.id) == {"queued": 0, "running": 0}


async def test_an_oversized_reply_is_a_509_and_a_slow_one_a_504(store: FunctionStore) -> None:
    tenant = _tenant_of(store)
    fn = store.create(tenant.id, FunctionSpec(name="f", image="busybox", timeout=1), ROOMY["functions"])
    with pytest.raises(ReplyTooLarge):
        await _gateway(store, FakeExecutor(Reply(200, b"x" * (MAX_BODY + 1)))).call(tenant, fn, b"", {}, sync=True)
    slow = _gateway(store, FakeExecutor(Reply(200, b"late"), delay=5))
    t0 = time.monotonic()
    with pytest.raises(CallTimeout):
        await slow.call(tenant, fn, b"", {}, sync=True)
    assert time.monotonic() - t0 < 2
    assert store.active_counts(fn.id) == {"queued": 0, "running": 0}


async def test_an_async_result_is_answered_once(store: FunctionStore) -> None:
    tenant = _tenant_of(store)
    fn = store.create(tenant.id, FunctionSpec(name="f", image="busybox"), ROOMY["functions"])
    gateway = _gateway(store, FakeExecutor(Reply(201, b"made", {"X-A": "1"})))
    call_id = await gateway.call(tenant, fn, b"in", {}, sync=False)
    assert isinstance(call_id, str)
    record = await gateway.result(tenant, call_id, wait=5)
    assert (record.status, record.result_status, record.result_body, record.result_headers) == \
        ("done", 201, b"made", {"X-A": "1"})
    with pytest.raises(Exception, match="no such call"):
        await gateway.result(tenant, call_id, wait=0)


async def test_calls_of_a_server_that_stopped_are_failed_and_expired_ones_dropped(store: FunctionStore) -> None:
    tenant = _tenant_of(store)
    fn = store.create(tenant.id, FunctionSpec(name="f", image="busybox"), ROOMY["functions"])
    gone, _ = store.add_call(fn, False, 0, "dead-server", lease=1, ttl=100, tenant_limit=10, queue_size=10)
    done, _ = store.add_call(fn, False, 0, "live", lease=100, ttl=1, tenant_limit=10, queue_size=10)
    store.call_ended(done, "done", result_status=200, body=b"", headers={}, error=None, container=None,
                     log_tail=None, read=False)
    assert store.prune(time.time() + 2) == (1, 1)
    record = store.get_call(tenant.id, gone)
    assert record.status == "failed" and "stopped" in (record.error or "")


def test_a_public_url_needs_the_right_secret_and_name(store: FunctionStore) -> None:
    from seabox.errors import NotFound
    from seabox.services.functions import FunctionService

    tenant = _tenant_of(store)
    fn = store.create(tenant.id, FunctionSpec(name="f", image="busybox"), ROOMY["functions"])
    service = FunctionService(store, None, None, {}, QuotasConfig())  # type: ignore[arg-type]
    assert service.public("f", fn.secret) == fn
    for name, secret in (("g", fn.secret), ("f", fn.secret[:-1]), ("f", "")):
        with pytest.raises(NotFound, match="no such function"):
            service.public(name, secret)


async def test_unread_async_results_are_bounded(store: FunctionStore) -> None:
    tenant = _tenant_of(store)
    fn = store.create(tenant.id, FunctionSpec(name="f", image="busybox"), ROOMY["functions"])
    gateway = _gateway(store, FakeExecutor(Reply(200, b"ok")), max_results=2)
    first = await gateway.call(tenant, fn, b"", {}, sync=False)
    await gateway.call(tenant, fn, b"", {}, sync=False)
    with pytest.raises(TooManyRequests, match="max_results"):
        await gateway.call(tenant, fn, b"", {}, sync=False)
    assert isinstance(await gateway.call(tenant, fn, b"", {}, sync=True), Reply)  # sync results are not kept
    assert isinstance(first, str)
    await gateway.result(tenant, first, wait=5)  # read once: room for another
    assert isinstance(await gateway.call(tenant, fn, b"", {}, sync=False), str)
    await gateway.close()


def test_only_call_urls_are_served_without_a_key() -> None:
    from seabox.api.auth import is_public

    assert is_public("/call/f/secret") and is_public("/call/f/secret/sync")
    assert not is_public("/v1/funcs/f/call") and not is_public("/callx/f") and not is_public("/v1.47/call/f/s")


@pytest.mark.parametrize(("change", "field"), [({"min_warm": 1}, "min_warm"), ({"port": 9000}, "port")])
def test_http_only_options_on_a_stdio_function_are_refused_naming_them(change: dict[str, int], field: str) -> None:
    executors = {"stdio": FakeExecutor(Reply(200, b"")), "http": FakeExecutor(Reply(200, b""))}
    with pytest.raises(InvalidArgument) as exc:
        check_spec(FunctionSpec(name="f", image="busybox", **change), executors)  # type: ignore[arg-type]
    assert exc.value.field == field and "--mode http" in exc.value.message
    check_spec(FunctionSpec(name="f", image="busybox", mode="http", **change), executors)  # type: ignore[arg-type]


def env_problem(model: type[BaseModel], request: dict[str, object], entry: str) -> InvalidArgument | None:
    """The 400 the API answers for REQUEST to MODEL with the env [ENTRY], or None when it is accepted."""
    try:
        model.model_validate({**request, "env": [entry]})
    except ValidationError as exc:
        return validation_error(exc)
    return None


REQUESTS: list[tuple[type[BaseModel], dict[str, object]]] = [
    (FunctionSpec, {"name": "f", "image": "busybox"}),  # func create
    (FunctionUpdate, {}),  # func update
]


@pytest.mark.parametrize("entry", ["A B=1", "A\tB=1", " A=1", "=x", "A=1\0"])
def test_an_env_entry_a_container_refuses_is_refused_for_a_function_naming_env(entry: str) -> None:
    container = env_problem(ContainerCreate, {"image": "busybox"}, entry)
    assert container is not None and container.field == "env"
    for model, request in REQUESTS:
        problem = env_problem(model, request, entry)
        assert problem is not None, (model.__name__, entry)
        assert (problem.status, problem.field, problem.message) == (400, "env", container.message)


@pytest.mark.parametrize("entry", ["A=", "a.b-c=x y", "1=2", "K=a=b", "A", "\u00c4=\u00fc"])
def test_an_env_entry_a_container_accepts_is_accepted_for_a_function(entry: str) -> None:
    assert env_problem(ContainerCreate, {"image": "busybox"}, entry) is None
    assert all(env_problem(model, request, entry) is None for model, request in REQUESTS)
