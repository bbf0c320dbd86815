"""The /v1 OpenAPI document, generated from the pydantic models at the API edge."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from seabox import __version__
from seabox.api.v1.containers import ExecRequest
from seabox.api.v1.security_groups import ContainerUpdate
from seabox.model.container import Container, ContainerCreate
from seabox.model.cron import Cron, CronCreate, CronRun
from seabox.model.event import Event
from seabox.model.fip import Fip, FipAllocate, FipAttach, FipDetach, FipName
from seabox.model.function import Function, FunctionSpec, FunctionStatus, FunctionUpdate
from seabox.model.image import Image, PullRequest, TagRequest
from seabox.model.quota import QuotaUse
from seabox.model.security_group import SecurityGroup, SecurityGroupSpec
from seabox.model.service import Service, ServiceCreate, ServiceFip, ServiceScale, ServiceUpdate
from seabox.model.volume import Volume, VolumeCreate

# (method, path, summary, request model, response model, response is a list)
OPERATIONS: list[tuple[str, str, str, type[BaseModel] | None, type[BaseModel] | None, bool]] = [
    ("get", "/v1/containers", "List containers (all=true includes stopped ones)", None, Container, True),
    ("post", "/v1/containers", "Create a container (start=true also starts it)", ContainerCreate, Container, False),
    ("get", "/v1/containers/{ref}", "Inspect a container by name, id or id prefix", None, Container, False),
    ("post", "/v1/containers/{ref}/start", "Start a container", None, Container, False),
    ("post", "/v1/containers/{ref}/stop", "Stop (signal, then SIGKILL after t seconds)", None, Container, False),
    ("post", "/v1/containers/{ref}/restart", "Restart a container", None, Container, False),
    ("post", "/v1/containers/{ref}/kill", "Send a signal (signal=KILL)", None, Container, False),
    ("post", "/v1/containers/{ref}/wait", "Wait until the container stops; returns its exit code", None, None, False),
    ("post", "/v1/containers/{ref}/rename", "Rename (name=NEW)", None, Container, False),
    ("delete", "/v1/containers/{ref}", "Remove (force=true kills a running one)", None, None, False),
    ("get", "/v1/containers/{ref}/logs", "Logs as NDJSON (follow, tail, since)", None, None, False),
    ("post", "/v1/containers/{ref}/exec", "Run a command; NDJSON output then exit_code", ExecRequest, None, False),
    ("get", "/v1/containers/{ref}/stats", "CPU and memory use", None, None, False),
    ("get", "/v1/containers/{ref}/top", "Processes in the container", None, None, False),
    ("get", "/v1/images", "List images", None, Image, True),
    ("post", "/v1/images/pull", "Pull an image; NDJSON progress", PullRequest, None, False),
    ("post", "/v1/images/import", "Import an OCI archive or docker save tarball (raw body)", None, Image, True),
    ("get", "/v1/images/{ref}", "Inspect an image", None, Image, False),
    ("post", "/v1/images/{ref}/tag", "Give an image another name (yours only)", TagRequest, Image, False),
    ("delete", "/v1/images/{ref}", "Untag / remove an image", None, None, False),
    ("get", "/v1/volumes", "List volumes", None, Volume, True),
    ("post", "/v1/volumes", "Create a volume", VolumeCreate, Volume, False),
    ("get", "/v1/volumes/{name}", "Inspect a volume", None, Volume, False),
    ("delete", "/v1/volumes/{name}", "Remove a volume (refused while in use)", None, None, False),
    ("get", "/v1/fips", "List floating IPs (dangling=true: only unattached ones)", None, Fip, True),
    ("post", "/v1/fips", "Allocate floating IPs (count; pick: dangling ones first); 403 past the quota",
     FipAllocate, Fip, True),
    ("get", "/v1/fips/{ref}", "Inspect a floating IP by address or name", None, Fip, False),
    ("post", "/v1/fips/{ref}/attach", "Attach to a container (force: move it from another)", FipAttach, Fip, False),
    ("post", "/v1/fips/detach", "Detach the floating IP of a container", FipDetach, Fip, False),
    ("post", "/v1/fips/{ref}/name", "Name a floating IP", FipName, Fip, False),
    ("delete", "/v1/fips/{ref}", "Release a floating IP (refused while attached)", None, None, False),
    ("post", "/v1/containers/{ref}/update", "Change a container's size, restart policy or security groups, live", ContainerUpdate, Container, False),
    ("get", "/v1/security-groups", "List security groups", None, SecurityGroup, True),
    ("post", "/v1/security-groups", "Create a security group (JSON, or YAML with Content-Type application/yaml)",
     SecurityGroupSpec, SecurityGroup, False),
    ("get", "/v1/security-groups/{name}", "Inspect a security group", None, SecurityGroup, False),
    ("put", "/v1/security-groups/{name}", "Replace a security group's description and rules", SecurityGroupSpec,
     SecurityGroup, False),
    ("delete", "/v1/security-groups/{name}", "Remove a security group (refused while in use)", None, None, False),
    ("get", "/v1/services", "List services", None, Service, True),
    ("post", "/v1/services", "Create a load-balanced service (its replicas start in the background)", ServiceCreate,
     Service, False),
    ("get", "/v1/services/{name}", "Inspect a service and its replicas", None, Service, False),
    ("post", "/v1/services/{name}/scale", "Set the number of replicas", ServiceScale, Service, False),
    ("post", "/v1/services/{name}/update", "Roll out another image, one replica at a time", ServiceUpdate, Service,
     False),
    ("post", "/v1/services/{name}/fip", "Attach a floating IP to the service", ServiceFip, Service, False),
    ("delete", "/v1/services/{name}/fip", "Detach the service's floating IP", None, Service, False),
    ("delete", "/v1/services/{name}", "Remove a service and its replicas (keep=true keeps them as containers)", None,
     None, False),
    ("get", "/v1/crons", "List crons", None, Cron, True),
    ("post", "/v1/crons", "Create a cron (schedule: 5 cron fields, or 6 with seconds first; tz: an IANA zone)",
     CronCreate, Cron, False),
    ("get", "/v1/crons/{name}", "Inspect a cron (next run, last result)", None, Cron, False),
    ("delete", "/v1/crons/{name}", "Remove a cron, its history and its running containers", None, None, False),
    ("get", "/v1/crons/{name}/history", "The cron's last runs, oldest first (tail=N, at most 100)", None, CronRun, True),
    ("post", "/v1/crons/{name}/run", "Fire the cron now (a run of its own, outside the schedule)", None, CronRun, False),
    ("post", "/v1/crons/{name}/suspend", "Stop firing the cron until resumed", None, Cron, False),
    ("post", "/v1/crons/{name}/resume", "Fire again from now on (no catch-up of the suspended time)", None, Cron, False),
    ("get", "/v1/funcs", "List functions (each with its call_path)", None, Function, True),
    ("post", "/v1/funcs", "Create a function (its image must be pulled or imported first)", FunctionSpec, Function,
     False),
    ("get", "/v1/funcs/{name}", "Inspect a function (call_path: its public call URL)", None, Function, False),
    ("patch", "/v1/funcs/{name}", "Update a function (refresh: a new call secret)", FunctionUpdate, Function, False),
    ("delete", "/v1/funcs/{name}", "Remove a function (409 while a call runs)", None, None, False),
    ("post", "/v1/funcs/{name}/call", "Call (raw body up to 1 MiB); sync=1: the reply, else 202 {CallId}", None, None,
     False),
    ("get", "/v1/funcs/calls/{call_id}", "An async call's result, answered once (wait=1: until it ends)", None, None,
     False),
    ("get", "/v1/funcs/{name}/logs", "Output of the latest calls as NDJSON (call=ID: one call; follow)", None, None,
     False),
    ("get", "/v1/funcs/{name}/status", "Calls queued and running, warm replicas", None, FunctionStatus, False),
    ("get", "/v1/events", "Lifecycle events as NDJSON (since, until, follow)", None, Event, True),
    ("get", "/v1/sizes", "The size table", None, None, False),
    ("get", "/v1/info", "Tenant and server information", None, None, False),
    ("get", "/v1/quota", "Your quotas: each key's limit and use (past a limit a request gets a 403 naming it)", None,
     QuotaUse, True),
]


def build_openapi() -> dict[str, Any]:
    models = {m for op in OPERATIONS for m in (op[3], op[4]) if m is not None}
    _, defs = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                 ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    error = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for method, path, summary, req, resp, many in OPERATIONS:
        op: dict[str, Any] = {"summary": summary, "responses": {"default": error}}
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
        if req is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{req.__name__}"}}},
            }
        schema: dict[str, Any] = {"$ref": f"#/components/schemas/{resp.__name__}"} if resp else {}
        if resp and many:
            schema = {"type": "array", "items": schema}
        op["responses"]["200"] = {"description": "ok", "content": {"application/json": {"schema": schema}}}
        paths.setdefault(path, {})[method] = op
    schemas = dict(defs.get("$defs", {}))
    schemas["Error"] = {
        "type": "object",
        "properties": {"message": {"type": "string"}, "field": {"type": "string"}},
        "required": ["message"],
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Seabox API", "version": __version__},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }
