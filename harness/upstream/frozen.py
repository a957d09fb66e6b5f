"""moby's "frozen images", made offline: the images its integration suite expects every daemon to hold.

moby's ``testutil/environment`` checks for ``busybox:latest``, ``busybox:glibc``, ``hello-world:frozen``,
``debian:bookworm-slim``, ``hello-world:amd64`` and ``hello-world:arm64`` before any test runs, and pulls the
missing ones from Docker Hub, which is not reachable here. The harness loads them first, built from:

- ``busybox:latest``: Debian's ``busybox-static`` rootfs (``harness.images``, the harness's test image) with
  the accounts of Docker's busybox image (``daemon``, ``staff``, ``wheel``, ... which tests run as or add) and
  ``adduser``/``addgroup``, which Debian builds busybox without and two tests' Dockerfiles run: small shell
  scripts doing what busybox's applets do for the options those tests pass (:data:`USER_TOOLS`);
- ``hello-world:frozen`` (this machine's architecture), ``:amd64`` and ``:arm64``: a static ``/hello``
  binary printing hello-world's greeting, built from the few lines of Go in :data:`HELLO_SOURCE` with the
  same Debian Go toolchain as the test binaries (``harness.upstream.build``);
- ``busybox:glibc`` and ``debian:bookworm-slim``: stand-ins, the busybox rootfs under their name with a
  ``org.dockerconformance.stand-in`` label. No test of the packages the harness runs uses their contents
  against the daemon under test (the one that does, ``TestBuildUserNamespaceValidateCapabilitiesAreV2``,
  starts a dockerd of its own and is skipped).

Every layer and config is byte-for-byte deterministic (sorted entries, zero mtimes and owners, a fixed
``created``), so each image has the same ID on every target, as the suite's comparisons of IDs expect.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "FROZEN_TAGS",
    "HELLO_SOURCE",
    "STAND_IN_LABEL",
    "USER_TOOLS",
    "FrozenImage",
    "frozen_images",
    "go_arch",
    "hello_layer",
    "save_archive",
    "with_user_tools",
]

FROZEN_TAGS = (
    "busybox:latest",
    "busybox:glibc",
    "hello-world:frozen",
    "debian:bookworm-slim",
    "hello-world:amd64",
    "hello-world:arm64",
)
STAND_IN_LABEL = "org.dockerconformance.stand-in"
_EPOCH = "1970-01-01T00:00:00Z"
_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: the harness's own hello program (hello-world's greeting, abridged), built static for each architecture
#: /usr/sbin/adduser and /usr/sbin/addgroup of the frozen busybox (the options busybox's applets take that
#: moby's tests use: ``addgroup -g GID NAME``, ``addgroup USER GROUP``, ``adduser -D [-H] [-u UID] [-G GROUP]
#: [-h HOME] [-s SHELL] NAME``)
USER_TOOLS = {
    # the accounts of Docker's busybox image (buildroot's skeleton)
    "etc/passwd": """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
""",
    "etc/group": """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
""",
    "usr/sbin/adduser": """\
#!/bin/sh
# adduser as busybox's applet does it, for the options moby's tests use (conformance harness; Debian's
# busybox-static has no adduser applet)
set -e
home= shell=/bin/sh group= uid= nohome= gecos=
while getopts "h:g:s:G:u:k:DHS" opt; do
  case $opt in
    h) home=$OPTARG ;; g) gecos=$OPTARG ;; s) shell=$OPTARG ;; G) group=$OPTARG ;; u) uid=$OPTARG ;;
    H) nohome=1 ;; D|S|k) ;;
    *) echo "usage: adduser [-DH] [-h HOME] [-g GECOS] [-s SHELL] [-G GROUP] [-u UID] USER" >&2; exit 1 ;;
  esac
done
shift $((OPTIND - 1))
user=$1
[ -n "$user" ] || { echo "adduser: no user name" >&2; exit 1; }
if grep -q "^$user:" /etc/passwd; then echo "adduser: user '$user' in use" >&2; exit 1; fi
if [ -z "$uid" ]; then
  uid=1000
  while cut -d: -f3 /etc/passwd | grep -qx "$uid"; do uid=$((uid + 1)); done
fi
if [ -n "$group" ]; then
  gid=$(grep "^$group:" /etc/group | cut -d: -f3)
  [ -n "$gid" ] || { echo "adduser: unknown group $group" >&2; exit 1; }
else
  gid=$uid
  while cut -d: -f3 /etc/group | grep -qx "$gid"; do gid=$((gid + 1)); done
  echo "$user:x:$gid:" >> /etc/group
fi
home=${home:-/home/$user}
echo "$user:x:$uid:$gid:$gecos:$home:$shell" >> /etc/passwd
if [ -z "$nohome" ]; then mkdir -p "$home" && chown "$uid:$gid" "$home"; fi
""",
    "usr/sbin/addgroup": """\
#!/bin/sh
# addgroup as busybox's applet does it, for the options moby's tests use (conformance harness; Debian's
# busybox-static has no addgroup applet)
set -e
gid=
while getopts "g:S" opt; do
  case $opt in
    g) gid=$OPTARG ;; S) ;;
    *) echo "usage: addgroup [-g GID] [USER] GROUP" >&2; exit 1 ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -eq 2 ]; then
  grep -q "^$2:" /etc/group || { echo "addgroup: unknown group $2" >&2; exit 1; }
  sed -i "/^$2:/{s/:\\$/:$1/;t;s/\\$/,$1/}" /etc/group
  exit 0
fi
group=$1
[ -n "$group" ] || { echo "addgroup: no group name" >&2; exit 1; }
if grep -q "^$group:" /etc/group; then echo "addgroup: group '$group' in use" >&2; exit 1; fi
if [ -z "$gid" ]; then
  gid=1000
  while cut -d: -f3 /etc/group | grep -qx "$gid"; do gid=$((gid + 1)); done
fi
echo "$group:x:$gid:" >> /etc/group
""",
}

HELLO_SOURCE = """\
// Command hello prints the greeting of Docker's hello-world image; the conformance harness builds it
// statically for the hello-world images of moby's integration suite.
package main

import "os"

const greeting = `
Hello from Docker!
This message shows that your installation appears to be working correctly.

`

func main() {
	if _, err := os.Stdout.WriteString(greeting); err != nil {
		os.Exit(1)
	}
}
"""


def go_arch(machine: str | None = None) -> str:
    """This machine's (or ``machine``'s) architecture in Go's and the image config's spelling."""
    m = (machine or platform.machine()).lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}.get(m, m)


@dataclass(frozen=True)
class FrozenImage:
    """One image: its tags, its single layer (an uncompressed tar) and what goes into its config."""

    tags: tuple[str, ...]
    layer: bytes
    architecture: str
    cmd: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    created_by: str = ""

    def config(self) -> bytes:
        diff_id = "sha256:" + hashlib.sha256(self.layer).hexdigest()
        cfg: dict[str, object] = {"Cmd": list(self.cmd), "Env": [_PATH_ENV]}
        if self.labels:
            cfg["Labels"] = dict(sorted(self.labels.items()))
        doc = {
            "architecture": self.architecture,
            "os": "linux",
            "created": _EPOCH,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": _EPOCH, "created_by": self.created_by or "conformance harness"}],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @property
    def id(self) -> str:
        """The image ID every daemon gives it (the digest of its config)."""
        return "sha256:" + hashlib.sha256(self.config()).hexdigest()


def _info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def hello_layer(binary: bytes) -> bytes:
    """A layer holding only ``/hello`` (as hello-world's does)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("hello", tarfile.REGTYPE, 0o755, len(binary)), io.BytesIO(binary))
    return buf.getvalue()


def with_user_tools(layer: bytes) -> bytes:
    """The busybox rootfs layer with :data:`USER_TOOLS` added (entries in the same deterministic form)."""
    buf = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(layer)) as src,
        tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out,
    ):
        for member in src.getmembers():
            if member.name in USER_TOOLS:
                continue
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
        for name, text in sorted(USER_TOOLS.items()):
            raw = text.encode()
            mode = 0o755 if text.startswith("#!") else 0o644
            out.addfile(_info(name, tarfile.REGTYPE, mode, len(raw)), io.BytesIO(raw))
    return buf.getvalue()


def frozen_images(
    busybox_layer: bytes, hello: Mapping[str, bytes], native: str | None = None
) -> list[FrozenImage]:
    """The six frozen images from the busybox rootfs layer and the hello binaries by architecture
    (``{"amd64": ..., "arm64": ...}``; this machine's must be among them)."""
    native = native or go_arch()
    busybox_layer = with_user_tools(busybox_layer)
    if native not in hello:
        raise ValueError(f"no hello binary for this machine's architecture {native} (have {sorted(hello)})")
    images = [
        FrozenImage(("busybox:latest",), busybox_layer, native, ("sh",), created_by="busybox-static rootfs"),
        *(
            FrozenImage(
                (tag,),
                busybox_layer,
                native,
                ("sh",),
                {STAND_IN_LABEL: f"busybox-static rootfs standing in for {tag}"},
                "busybox-static rootfs",
            )
            for tag in ("busybox:glibc", "debian:bookworm-slim")
        ),
        FrozenImage(
            ("hello-world:frozen",), hello_layer(hello[native]), native, ("/hello",), created_by="hello"
        ),
    ]
    for arch in ("amd64", "arm64"):
        if arch not in hello:
            raise ValueError(f"no hello binary for {arch} (have {sorted(hello)})")
        images.append(
            FrozenImage(
                (f"hello-world:{arch}",), hello_layer(hello[arch]), arch, ("/hello",), created_by="hello"
            )
        )
    return images


def save_archive(images: Sequence[FrozenImage]) -> bytes:
    """One ``docker save`` tarball (the legacy layout every daemon loads) holding ``images``."""
    files: dict[str, bytes] = {}
    manifest = []
    for image in images:
        config = image.config()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        layer_dir = hashlib.sha256(image.layer).hexdigest()
        files[config_name] = config
        files[f"{layer_dir}/layer.tar"] = image.layer
        manifest.append(
            {"Config": config_name, "RepoTags": list(image.tags), "Layers": [f"{layer_dir}/layer.tar"]}
        )
    files["manifest.json"] = json.dumps(manifest, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in sorted({name.split("/", 1)[0] for name in files if "/" in name}):
            tar.addfile(_info(directory, tarfile.DIRTYPE, 0o755))
        for name in sorted(files):
            tar.addfile(_info(name, tarfile.REGTYPE, 0o644, len(files[name])), io.BytesIO(files[name]))
    return buf.getvalue()
