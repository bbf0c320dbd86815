"""Which registry hosts a pull tries (mirrors first) and the skopeo flags each host needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from seabox.config import RegistryAuth, RegistryConfig
from seabox.errors import NotFound, SeaboxError, UpstreamError
from seabox.model.reference import ImageRef
from seabox.node.images.registry_hosts import unreachable
from seabox.node.images.tools import ToolResult

log = logging.getLogger(__name__)

# What registries answer for an image that is not there. Docker Hub answers "denied" for a
# repository that does not exist, and Docker itself reports that as "not found" (404).
_NOT_FOUND_MARKERS = ("manifest unknown", "name unknown", "not found", "denied", "unauthorized")
# What skopeo says when it got no HTTP answer at all. Tenants are told only that the registry
# cannot be reached, never whether a port refused, timed out or had no route (the log has it).
_CONNECT_MARKERS = (
    "dial tcp", "lookup ", "connection refused", "no route to host", "network is unreachable",
    "i/o timeout", "deadline exceeded", "connection reset", "handshake timeout", "eof",
)  # fmt: skip


@dataclass(frozen=True)
class Source:
    """One registry host to fetch an image's repository from."""

    host: str
    repository: str
    insecure: bool
    auth: RegistryAuth | None

    def image(self, ref: ImageRef, digest: str | None = None) -> str:
        """The skopeo image name of ref on this host, pinned to digest when one is given."""
        pinned = digest or ref.digest
        suffix = f"@{pinned}" if pinned else f":{ref.tag}"
        return f"docker://{self.host}/{self.repository}{suffix}"

    def flags(self, prefix: str) -> list[str]:
        """TLS and credential flags; prefix is "" for `skopeo inspect`, "src-" for `skopeo copy`."""
        flags = [f"--{prefix}tls-verify={'false' if self.insecure else 'true'}"]
        if self.auth is None:
            # Never fall back to whatever credentials root happens to have on this host.
            flags.append(f"--{prefix}no-creds")
        else:
            flags += [f"--{prefix}creds", f"{self.auth.username}:{self.auth.password}"]
        return flags

    def error(self, ref: ImageRef, result: ToolResult) -> SeaboxError:
        """Turn a failed skopeo run against this host into NotFound or UpstreamError."""
        reason = result.reason
        if any(marker in reason.lower() for marker in _CONNECT_MARKERS):
            log.warning("registry %s cannot be reached for %s: %s", self.host, ref.familiar, reason)
            return unreachable(self.host)
        if any(marker in reason.lower() for marker in _NOT_FOUND_MARKERS):
            return NotFound(f"image {ref.familiar} not found in registry {self.host}: {reason}")
        return UpstreamError(f"cannot pull {ref.familiar} from registry {self.host}: {reason}")


def allowed_internal(config: RegistryConfig) -> set[str]:
    """Hosts a pull may reach on internal addresses: the operator's allow list and every mirror."""
    return {*config.allow_internal, *(host for hosts in config.mirrors.values() for host in hosts)}


def sources(ref: ImageRef, config: RegistryConfig) -> list[Source]:
    """The hosts to try for ref, in order: each configured mirror, then the registry itself."""
    hosts = list(dict.fromkeys([*config.mirrors.get(ref.registry, []), ref.registry]))
    return [
        Source(
            host=host,
            repository=ref.repository,
            insecure=host in config.insecure,
            auth=config.auth.get(host),
        )
        for host in hosts
    ]
