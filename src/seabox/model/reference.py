"""Image references: parsing and normalising names like `busybox` exactly as Docker does."""

from __future__ import annotations

import re
from dataclasses import dataclass

from seabox.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_LEGACY_REGISTRY = "index.docker.io"
_OFFICIAL_NAMESPACE = "library/"
_MAX_NAME_LENGTH = 255

# The grammar of github.com/distribution/reference (regexp.go), written out piece by piece.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE_RE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
_DOMAIN_RE = re.compile(_DOMAIN)
_ID_RE = re.compile(r"[a-f0-9]{64}")
# go-digest accepts only these algorithms, each with a fixed-length lowercase hex encoding.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class ImageRef:
    """A fully normalised image reference; `tag` is None only when pulling by digest alone."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def repo(self) -> str:
        """The canonical repository name without tag or digest, e.g. docker.io/library/busybox."""
        return f"{self.registry}/{self.repository}"

    @property
    def name(self) -> str:
        """The canonical reference, e.g. docker.io/library/busybox:latest."""
        return self.repo + _suffix(self.tag, self.digest)

    @property
    def familiar(self) -> str:
        """The short form `docker images` shows, e.g. busybox:latest or 127.0.0.1:5000/app:1."""
        if self.registry != DEFAULT_REGISTRY:
            repo = self.repo
        elif self.repository.startswith(_OFFICIAL_NAMESPACE) and self.repository.count("/") == 1:
            repo = self.repository.removeprefix(_OFFICIAL_NAMESPACE)
        else:
            repo = self.repository
        return repo + _suffix(self.tag, self.digest)


def _suffix(tag: str | None, digest: str | None) -> str:
    return (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _invalid(ref: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid reference format {ref!r}: {why}")


def _registry_prefix(name: str) -> str | None:
    """The registry host a name starts with, if any, decided as Docker's splitDockerDomain does."""
    first, slash, _rest = name.partition("/")
    if slash and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        return first
    return None


def _split_registry(name: str) -> tuple[str, str]:
    """Split a name into registry and repository, filling in Docker's defaults."""
    host = _registry_prefix(name)
    registry, repository = (host, name[len(host) + 1 :]) if host else (DEFAULT_REGISTRY, name)
    if registry == _LEGACY_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = _OFFICIAL_NAMESPACE + repository
    return registry, repository


def _only_case_is_wrong(ref: str) -> bool:
    """True if ref would parse with its repository path (not its registry or tag) lowercased."""
    name = ref.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name[: name.rfind(":")]
    host = _registry_prefix(name)
    start = len(host) + 1 if host else 0
    candidate = ref[:start] + name[start:].lower() + ref[len(name) :]
    return candidate != ref and _REFERENCE_RE.fullmatch(candidate) is not None


def _check_digest(ref: str, digest: str) -> None:
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        raise _invalid(ref, f"unsupported digest algorithm {algorithm!r}")
    if len(encoded) != length or encoded.lower() != encoded:
        raise _invalid(ref, f"{algorithm} digest must be {length} lowercase hex characters")


def parse_reference(ref: str) -> ImageRef:
    """Parse and normalise an image reference; raise InvalidArgument naming it when malformed."""
    if not ref:
        raise _invalid(ref, "empty reference")
    if _ID_RE.fullmatch(ref):
        raise _invalid(ref, "cannot specify 64-byte hexadecimal strings as a repository name")
    match = _REFERENCE_RE.fullmatch(ref)
    if match is None:
        if _only_case_is_wrong(ref):
            raise _invalid(ref, "repository name must be lowercase")
        raise _invalid(ref, "not a valid image name, tag or digest")
    name, tag, digest = match["name"], match["tag"], match["digest"]
    if len(name) > _MAX_NAME_LENGTH:
        raise _invalid(ref, f"repository name longer than {_MAX_NAME_LENGTH} characters")
    registry, repository = _split_registry(name)
    if not _DOMAIN_RE.fullmatch(registry):
        raise _invalid(ref, f"{registry!r} is not a valid registry host")
    if digest is not None:
        _check_digest(ref, digest)
    elif tag is None:
        tag = DEFAULT_TAG
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)
