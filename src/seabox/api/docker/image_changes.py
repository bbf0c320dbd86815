"""Docker's image config edits for `docker commit` and `docker import`: `--change` Dockerfile lines and the commit body's Config."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from typing import Any

from seabox.errors import InvalidArgument
from seabox.protocol.images import ImageConfig

# What --change may say, as Docker allows it for commit and import (builder/dockerfile's commit set).
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "WORKDIR", "VOLUME", "STOPSIGNAL")
# The commit body's Config fields Seabox applies; any other field set in the body is refused.
_BODY_FIELDS = {"Cmd": "cmd", "Entrypoint": "entrypoint", "Env": "env", "WorkingDir": "working_dir",
                "User": "user", "Labels": "labels", "ExposedPorts": "exposed_ports", "Volumes": "volumes",
                "StopSignal": "stop_signal"}
# Fields docker clients send in a commit body with their zero values; meaningful only for a container.
_CONTAINER_ONLY = {"Hostname", "Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
                   "StdinOnce", "Image", "NetworkDisabled", "MacAddress", "OnBuild", "Shell", "Healthcheck",
                   "ArgsEscaped", "StopTimeout"}


def _words(value: str, instruction: str) -> list[str]:
    """A JSON array (exec form) or, for CMD and ENTRYPOINT, a shell command (shell form, run by /bin/sh -c)."""
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(w, str) for w in parsed):
            return parsed
        raise InvalidArgument(f"change {instruction} {value!r}: not a JSON array of strings", field="changes")
    if instruction in ("CMD", "ENTRYPOINT"):
        return ["/bin/sh", "-c", value]
    return value.split()


def _pairs(value: str, instruction: str) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: `k=v k2="v 2"`, or the old single `k v` form."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise InvalidArgument(f"change {instruction} {value!r}: {exc}", field="changes") from None
    if words and "=" not in words[0]:
        return [(words[0], value.split(None, 1)[1] if len(words) > 1 else "")]
    out = []
    for word in words:
        key, eq, val = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"change {instruction} {value!r}: {word!r} is not KEY=VALUE", field="changes")
        out.append((key, val))
    return out


def _port(word: str) -> str:
    number, _, proto = word.partition("/")
    if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
        raise InvalidArgument(f"change EXPOSE {word!r}: not a port[/tcp|udp|sctp]", field="changes")
    return f"{int(number)}/{proto or 'tcp'}"


def apply_changes(config: ImageConfig, changes: list[str]) -> ImageConfig:
    """CONFIG with each Dockerfile line of CHANGES applied in order; a 400 naming `changes` for any other line."""
    out = replace(config, env=list(config.env), labels=dict(config.labels), exposed_ports=list(config.exposed_ports),
                  volumes=list(config.volumes))
    for line in changes:
        instruction, _, value = line.strip().partition(" ")
        instruction, value = instruction.upper(), value.strip()
        if instruction not in CHANGE_INSTRUCTIONS:
            raise InvalidArgument(f"changes: {line!r} is refused: only {', '.join(CHANGE_INSTRUCTIONS)} can be "
                                  "changed on commit or import", field="changes")
        if not value:
            raise InvalidArgument(f"change {instruction} needs an argument", field="changes")
        if instruction == "CMD":
            out.cmd = _words(value, instruction)
        elif instruction == "ENTRYPOINT":
            out.entrypoint, out.cmd = _words(value, instruction), None
        elif instruction == "ENV":
            for key, val in _pairs(value, instruction):
                out.env = [e for e in out.env if e.partition("=")[0] != key] + [f"{key}={val}"]
        elif instruction == "LABEL":
            out.labels.update(_pairs(value, instruction))
        elif instruction == "EXPOSE":
            out.exposed_ports = sorted({*out.exposed_ports, *(_port(w) for w in value.split())})
        elif instruction == "VOLUME":
            out.volumes = sorted({*out.volumes, *_words(value, instruction)})
        elif instruction == "USER":
            out.user = value
        elif instruction == "WORKDIR":
            out.working_dir = value if value.startswith("/") else f"{out.working_dir.rstrip('/')}/{value}"
        else:
            out.stop_signal = value
    return out


def apply_body(config: ImageConfig, body: dict[str, Any]) -> ImageConfig:
    """CONFIG with the commit body's Config fields that are set replacing its own, as `docker commit` does: Env,
    Labels, ExposedPorts and Volumes are merged (the body's entries first), the others replaced."""
    out = replace(config)
    for key, value in body.items():
        if key in _CONTAINER_ONLY or value in (None, "", [], {}, False, 0):
            continue
        name = _BODY_FIELDS.get(key)
        if name is None:
            raise InvalidArgument(f"commit config field {key} is not supported: give it as a --change, or leave "
                                  "it out", field=key)
        if key in ("ExposedPorts", "Volumes"):
            if not isinstance(value, dict):
                raise InvalidArgument(f"commit config {key} must be an object", field=key)
            value = sorted({*getattr(out, name), *(_port(p) if key == "ExposedPorts" else p for p in value)})
        elif key in ("Cmd", "Entrypoint", "Env"):
            if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
                raise InvalidArgument(f"commit config {key} must be a list of strings", field=key)
        elif key == "Labels":
            if not isinstance(value, dict):
                raise InvalidArgument("commit config Labels must be an object", field=key)
            value = {**out.labels, **{str(k): str(v) for k, v in value.items()}}
        elif not isinstance(value, str):
            raise InvalidArgument(f"commit config {key} must be a string", field=key)
        if key == "Env":
            given = {e.partition("=")[0] for e in value}
            value = [*value, *(e for e in out.env if e.partition("=")[0] not in given)]
        setattr(out, name, value)
    return out
