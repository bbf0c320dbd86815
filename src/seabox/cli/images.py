"""Image commands: `pull` with its progress display, `images`, `rmi` and the `seabox image` group."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from seabox.cli.client import (
    Client,
    CliError,
    ago,
    connect,
    console,
    each,
    human_bytes,
    inspect_all,
    print_table,
    quoted,
    short_id,
)
from seabox.cli.command import Group, argument, flag

if TYPE_CHECKING:
    from typing import Any

    from rich.progress import Progress, TaskID

image_app = Group("image", "Manage images: pull, list, inspect, import and remove.", panel="Images")
REF_SAFE = "/:@"


class PullDisplay:
    """Rich progress rows on stderr for one pull: the image (resolving, unpacking) and one row per layer."""

    def __init__(self, progress: Progress, ref: str) -> None:
        self.progress = progress
        self.image = progress.add_task(ref, status="Waiting", total=1)
        self.layers: dict[str, TaskID] = {}

    def show(self, event: dict[str, Any]) -> None:
        status, layer, size = event.get("status", ""), event.get("layer"), event.get("size")
        if layer:
            row = self.layers.get(layer)
            if row is None:
                row = self.layers[layer] = self.progress.add_task(f"  {short_id(layer)}", status="", total=1)
            sized = f" {human_bytes(size)}" if size else ""
            done = status == "done"
            self.progress.update(row, status=("Pull complete" if done else "Downloading") + sized, completed=int(done))
            self.progress.update(self.image, status="Downloading")
        elif status == "resolving":
            self.progress.update(self.image, status=f"Resolving {event.get('detail', '')}".rstrip())
        elif status == "unpacking":
            self.progress.update(self.image, status="Unpacking")
        elif status == "complete":
            self.progress.update(self.image, status=f"Complete {short_id(event.get('detail', ''))}", completed=1)


def pull_image(api: Client, ref: str) -> dict[str, Any]:
    """Pull REF showing progress on stderr; the pulled image (an error line from the server fails the pull)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(finished_text=" "), TextColumn("{task.description}"), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console(stderr=True)) as progress:
        display = PullDisplay(progress, ref)
        for item in api.stream("POST", "/v1/images/pull", body={"image": ref}):
            if "progress" in item:
                display.show(item["progress"])
            elif "error" in item:
                raise CliError(item["error"].get("message", "pull failed"), status=item["error"].get("status"))
            elif "image" in item:
                image: dict[str, Any] = item["image"]
                return image
    raise CliError(f"the pull of {ref} ended without a result")


def create_pulling(api: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST BODY to PATH, pulling BODY's image first (once) if the server does not have it."""
    try:
        created: dict[str, Any] = api.post(path, body)
        return created
    except CliError as exc:
        if exc.status != 404 or not exc.message.startswith("no such image"):
            raise
    print(f"Unable to find image '{body['image']}' here; pulling it", file=sys.stderr, flush=True)
    pull_image(api, body["image"])
    created = api.post(path, body)
    return created


def familiar(ref: str) -> str:
    """The short form docker shows for an image reference, e.g. busybox:latest (an image id as 12 hex)."""
    from seabox.errors import SeaboxError
    from seabox.model.reference import parse_reference

    if ref.startswith("sha256:"):
        return short_id(ref)
    try:
        return parse_reference(ref).familiar
    except SeaboxError:
        return ref


def split_ref(ref: str) -> tuple[str, str]:
    """(REPOSITORY, TAG) as `docker images` shows them, e.g. ('busybox', 'latest')."""
    from dataclasses import replace

    from seabox.errors import SeaboxError
    from seabox.model.reference import parse_reference

    try:
        parsed = parse_reference(ref)
    except SeaboxError:
        return ref, "<none>"
    return replace(parsed, tag=None, digest=None).familiar, parsed.tag or "<none>"


REFS = argument("REF", "Image references or id prefixes.", many=True)


@image_app.command("pull")
def pull(ref: str = argument("REF", "Image reference, e.g. busybox or registry:5000/app:1.2.")) -> None:
    """Pull an image from its registry (the server does the pull; progress shows here)."""
    from seabox.model.reference import parse_reference

    image = pull_image(connect(), ref)
    print(f"Pulled {parse_reference(ref).name} ({short_id(image['id'])})")


@image_app.command("ls")
def ls(quiet: bool = flag("-q", "--quiet", help="Only print image ids.")) -> None:
    """List your images: one row per tag (REPOSITORY, TAG, IMAGE ID, CREATED, SIZE)."""
    images = sorted(connect().get("/v1/images"), key=lambda i: i.get("created") or "", reverse=True)
    if quiet:
        for image in images:
            print(short_id(image["id"]))
        return
    rows = [
        [*split_ref(tag), short_id(image["id"]), ago(image.get("created")), human_bytes(image["size"])]
        for image in images
        for tag in image["repo_tags"] or ["<none>"]
    ]
    print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)


@image_app.command("rm")
def rm(
    refs: list[str] = REFS,
    force: bool = flag("-f", "--force", help="Remove even if a container uses the image."),
) -> None:
    """Remove images (untag them for you; the data goes when nobody uses it)."""
    api = connect()

    def remove(ref: str) -> str:
        untagged = api.delete(f"/v1/images/{quoted(ref, REF_SAFE)}", force=force)["untagged"]
        return "\n".join(f"Untagged: {r}" for r in untagged)

    each(refs, remove)


@image_app.command("tag")
def tag(
    source: str = argument("SOURCE", "One of your images: reference or id prefix."),
    target: str = argument("TARGET", "The new name, e.g. myapp:1.0."),
) -> None:
    """Give one of your images another name (only you see it)."""
    connect().post(f"/v1/images/{quoted(source, REF_SAFE)}/tag", body={"target": target})


@image_app.command("inspect")
def inspect(refs: list[str] = REFS) -> None:
    """Show images' details as a JSON array."""
    api = connect()
    inspect_all(refs, lambda ref: api.get(f"/v1/images/{quoted(ref, REF_SAFE)}"))


@image_app.command("import")
def import_(file: str = argument("FILE", "An OCI archive or `docker save` tarball; '-' reads standard input.")) -> None:
    """Import images from an archive (streamed to the server) and print what was loaded."""
    from pathlib import Path

    api = connect()
    if file == "-":
        images = api.call("POST", "/v1/images/import", content=iter(lambda: sys.stdin.buffer.read(1 << 20), b""))
    else:
        source = Path(file)
        try:
            f = source.open("rb")
        except OSError as exc:
            raise CliError(f"cannot read {source}: {exc.strerror}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            images = api.call("POST", "/v1/images/import", content=f, headers={"Content-Length": str(size)})
    for image in images:
        for tag in image["repo_tags"]:
            print(f"Loaded image: {tag}")
        if not image["repo_tags"]:
            print(f"Loaded image ID: {image['id']}")


def register(root: Group) -> None:
    for func, name in ((pull, "pull"), (ls, "images"), (rm, "rmi"), (tag, "tag")):
        root.command(name, panel=image_app.panel)(func)
    root.add(image_app)
