"""Kernels and initramfs for the ``vm`` backend: Debian's own kernels, fetched without touching host apt.

A kernel is Debian's ``linux-image-amd64`` of a suite (``bookworm`` 6.1, ``trixie`` 6.12, ``sid`` newest),
fetched with the harness's private apt configuration (``harness.debpkg.PrivateApt``: the host's apt is
only read for the mirror URL and proxy) and unpacked with ``dpkg-deb -x`` into
``$HARNESS_CACHE/vm/kernels/<suite>-<release>/``:
``vmlinuz``, ``modules/`` (the package's module tree, xz/zstd modules decompressed so busybox's ``insmod``
and the guest's own modprobe can load them) and ``initrd.img``, a small initramfs of the host's static
busybox, the modules that booting needs (virtio, 9p, overlay) plus those a Docker daemon loads (bridge,
veth, netfilter) in dependency order, and an ``/init`` that loads them, mounts the work share and runs the
guest script the backend writes there (``harness.backends.vm``). A kernel entry is reused until
``KERNEL_RECIPE`` changes or ``--refresh`` asks for the suite's newest.

``python -m harness.vmimages fetch [bookworm|trixie|sid ...]`` fetches ahead of time; ``list`` shows the
cache.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO

from .debpkg import DebPkgError, PrivateApt, cache_base, locked
from .errors import HarnessError

__all__ = [
    "KERNELS",
    "KernelEntry",
    "VMImageError",
    "ensure_kernel",
    "kernel_suite",
    "main",
    "vm_cache",
    "write_cpio",
]

#: bump to rebuild every kernel entry's initramfs/modules (a change in how entries are made)
KERNEL_RECIPE = "2"
#: --kernel names -> Debian suite
KERNELS = {
    "bookworm": "bookworm",
    "trixie": "trixie",
    "sid": "sid",
    "6.1": "bookworm",
    "6.12": "trixie",
    "7.2": "sid",  # sid moves on: ensure_kernel refuses a sid kernel that is no longer 7.2
}
DEFAULT_KERNEL = "bookworm"
#: modules put into the initramfs (with their dependencies), loaded in order at boot; absent or built-in
#: ones are skipped. The first group boots the VM; the rest are what dockerd would modprobe.
BOOT_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "9pnet_virtio",
    "9p",
    "overlay",
    # libcrc32c (nf_tables, nf_conntrack) asks the crypto API for crc32c, which modules.dep does not say
    "crc32c_generic",
    "crc32c_intel",
)
DAEMON_MODULES = (
    "bridge",
    "br_netfilter",
    "veth",
    "nf_tables",
    "nft_compat",
    "nft_chain_nat",
    "nft_masq",
    "nf_nat",
    "nf_conntrack",
    "ip_tables",
    "ip6_tables",
    "iptable_filter",
    "iptable_nat",
    "iptable_mangle",
    "ip6table_filter",
    "ip6table_nat",
    "xt_MASQUERADE",
    "xt_addrtype",
    "xt_conntrack",
    "xt_nat",
    "xt_tcpudp",
    "xt_mark",
    "xt_comment",
    "ipt_REJECT",
    "ip6t_REJECT",
    "nft_reject_inet",
    "nft_ct",
    "tun",
    "dummy",
    "macvlan",
    "ipvlan",
    "vxlan",
    "xfrm_user",
)

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "harness initramfs: kernel $(uname -r), loading modules" > /dev/console
while read -r m; do
  insmod "/modules/$m" 2>/tmp/insmod.err || grep -q "File exists" /tmp/insmod.err || \
    echo "harness initramfs: insmod $m: $(cat /tmp/insmod.err)" > /dev/console
done < /modules.order
mkdir -p /harness/work
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 harness.work /harness/work; then
  echo "harness initramfs: cannot mount the work share" > /dev/console
  poweroff -f
fi
exec sh /harness/work/vm/init.sh
"""


class VMImageError(HarnessError):
    """A kernel could not be fetched or prepared; the message says what failed and how to fix it."""


def vm_cache() -> str:
    """``$HARNESS_CACHE/vm`` (default ``~/.cache/docker-conformance-harness/vm``)."""
    return os.path.join(cache_base(), "vm")


def kernel_suite(name: str, source: str = "--kernel") -> str:
    """The Debian suite of a ``--kernel`` value (``bookworm``, ``trixie``, ``sid``, ``6.1``, ``6.12``)."""
    try:
        return KERNELS[name.strip().lower()]
    except KeyError:
        raise VMImageError(
            f"unknown kernel {name!r} from {source}: choose from {', '.join(KERNELS)}"
        ) from None


@dataclass(frozen=True)
class KernelEntry:
    suite: str
    release: str  # uname -r in the guest, e.g. 6.1.0-41-amd64
    path: str

    @property
    def vmlinuz(self) -> str:
        return os.path.join(self.path, "vmlinuz")

    @property
    def initrd(self) -> str:
        return os.path.join(self.path, "initrd.img")

    @property
    def modules(self) -> str:
        """The module tree (``<release>/`` inside): shared read-only at the guest's /lib/modules."""
        return os.path.join(self.path, "modules")

    def meta(self) -> dict[str, object]:
        try:
            with open(os.path.join(self.path, "meta.json")) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


def _log(out: IO[str] | None, text: str) -> None:
    if out is not None:
        out.write(f"harness vm: {text}\n")
        out.flush()


# -- the suite's kernel package -----------------------------------------------------------------------------


def _kernel_package(apt: PrivateApt) -> str:
    show = apt.run("apt-cache", "depends", "linux-image-amd64", what="apt-cache depends linux-image-amd64")
    for line in show.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    raise VMImageError(f"linux-image-amd64 in {apt.suite} names no linux-image package:\n{show}")


# -- entries ----------------------------------------------------------------------------------------------


def _entries(suite: str) -> list[KernelEntry]:
    found = []
    for path in sorted(glob.glob(os.path.join(vm_cache(), "kernels", f"{suite}-*"))):
        entry = KernelEntry(suite, os.path.basename(path)[len(suite) + 1 :], path)
        meta = entry.meta()
        if meta.get("recipe") == KERNEL_RECIPE and os.path.isfile(entry.initrd):
            found.append(entry)
    return found


def ensure_kernel(name: str, out: IO[str] | None = sys.stderr, refresh: bool = False) -> KernelEntry:
    """The cached kernel entry of ``name`` (a suite or alias), fetching and preparing it when missing."""
    suite = kernel_suite(name)
    if not refresh and (have := _entries(suite)):
        return _check_version(name, have[-1])
    with locked(os.path.join(vm_cache(), "kernels", f".{suite}.lock"), out, f"fetching the {suite} kernel"):
        if not refresh and (have := _entries(suite)):
            return _check_version(name, have[-1])
        return _check_version(name, _fetch(suite, out))


def _check_version(name: str, entry: KernelEntry) -> KernelEntry:
    """A version alias (``6.1``, ``7.2``) must name the release the suite's kernel really is."""
    wanted = name.strip().lower()
    if wanted[:1].isdigit() and not re.match(re.escape(wanted) + r"[.\-+]", entry.release + "-"):
        raise VMImageError(
            f"--kernel {name} means Debian {entry.suite}'s kernel, which is {entry.release} now: "
            f"ask for --kernel {entry.suite} (or the version {'.'.join(entry.release.split('.')[:2])})"
        )
    return entry


def _fetch(suite: str, out: IO[str] | None) -> KernelEntry:
    try:
        with PrivateApt(suite, out=out) as apt:
            return _fetch_with(apt, out)
    except DebPkgError as exc:
        raise VMImageError(str(exc)) from None


def _fetch_with(apt: PrivateApt, out: IO[str] | None) -> KernelEntry:
    suite = apt.suite
    started = time.monotonic()
    apt.update()
    package = _kernel_package(apt)
    tmp = os.path.join(vm_cache(), "kernels", f".fetch-{suite}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        # sid splits the image into linux-binary-* (vmlinuz) and linux-modules-* packages
        depends = apt.run("apt-cache", "depends", package, what=f"apt-cache depends {package}")
        packages = [package] + [
            m.group(1)
            for line in depends.splitlines()
            if (m := re.match(r"\s*Depends:\s*(linux-(?:binary|modules)-\S+)", line))
        ]
        _log(out, f"downloading {' '.join(packages)} ({suite})")
        debs = [str(d) for d in apt.download([(p, apt.candidate(p)) for p in packages])]
        extract = os.path.join(tmp, "x")
        for deb in debs:
            res = subprocess.run(["dpkg-deb", "-x", deb, extract], capture_output=True, text=True)
            if res.returncode != 0:
                raise VMImageError(f"dpkg-deb -x {deb} failed (exit {res.returncode}): {res.stderr.strip()}")
        kernels = glob.glob(os.path.join(extract, "boot", "vmlinuz-*"))
        if kernels:
            release = os.path.basename(kernels[0]).removeprefix("vmlinuz-")
        else:  # sid (7.x): /usr/lib/modules/<release>/vmlinuz
            kernels = glob.glob(os.path.join(extract, "usr/lib/modules/*/vmlinuz"))
            if not kernels:
                raise VMImageError(f"{' '.join(debs)} hold no boot/vmlinuz-*")
            release = os.path.basename(os.path.dirname(kernels[0]))
        moddir = next(
            (
                d
                for d in (
                    os.path.join(extract, "lib/modules", release),
                    os.path.join(extract, "usr/lib/modules", release),
                )
                if os.path.isdir(d)
            ),
            None,
        )
        if moddir is None:
            raise VMImageError(f"{' '.join(debs)} hold no modules for {release}")
        os.rename(kernels[0], os.path.join(tmp, "vmlinuz"))
        os.makedirs(os.path.join(tmp, "modules"))
        modules = os.path.join(tmp, "modules", release)
        os.rename(moddir, modules)
        shutil.rmtree(extract)
        _log(out, f"decompressing the modules of {release}")
        _decompress_modules(modules)
        order = _module_order(modules, [*BOOT_MODULES, *DAEMON_MODULES])
        _build_initrd(os.path.join(tmp, "initrd.img"), modules, order)
        meta = {
            "recipe": KERNEL_RECIPE,
            "suite": suite,
            "package": os.path.basename(debs[0]),
            "packages": [os.path.basename(d) for d in debs],
            "release": release,
            "modules": order,
            "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.monotonic() - started, 1),
        }
        with open(os.path.join(tmp, "meta.json"), "w") as fh:
            json.dump(meta, fh, indent=1)
        final = os.path.join(vm_cache(), "kernels", f"{suite}-{release}")
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        for deb in debs:  # the unpacked entry is what is kept
            os.unlink(deb)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _log(out, f"kernel {release} ({suite}) ready in {final} ({meta['seconds']}s)")
    return KernelEntry(suite, release, final)


def _decompress_modules(moddir: str) -> None:
    """``*.ko.xz`` / ``*.ko.zst`` -> ``*.ko`` and modules.dep rewritten to match (depmod-free)."""
    for dirpath, _dirs, files in os.walk(moddir):
        for f in files:
            path = os.path.join(dirpath, f)
            if f.endswith(".ko.xz"):
                subprocess.run(["xz", "-d", "-q", path], check=True)
            elif f.endswith(".ko.zst"):
                subprocess.run(["zstd", "-d", "-q", "--rm", path], check=True)


def _modinfo_depends(path: str) -> list[str]:
    """The ``depends=`` names in a module's ``.modinfo`` strings."""
    with open(path, "rb") as fh:
        data = fh.read()
    m = re.search(rb"\0depends=([^\0]*)\0", data)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def _module_deps(moddir: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(name -> relative path, name -> direct dependency names), from the modules themselves (no depmod)."""
    by_name: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(moddir):
        for f in files:
            if f.endswith(".ko"):
                rel = os.path.relpath(os.path.join(dirpath, f), moddir)
                by_name[f.removesuffix(".ko").replace("-", "_")] = rel
    direct = {name: _modinfo_depends(os.path.join(moddir, rel)) for name, rel in by_name.items()}
    return by_name, direct


def _module_order(moddir: str, wanted: list[str]) -> list[str]:
    """Paths (relative to ``moddir``) of ``wanted`` modules and their dependencies, dependencies first.

    Also writes ``modules.dep`` (Debian's package leaves it to depmod at install time), so the guest's own
    modprobe finds the rest of the tree.
    """
    by_name, direct = _module_deps(moddir)
    order: list[str] = []

    def closure(name: str, seen: list[str]) -> None:
        for dep in direct.get(name, []):
            dep = dep.replace("-", "_")
            if dep in by_name and by_name[dep] not in seen:
                closure(dep, seen)
                seen.append(by_name[dep])

    with open(os.path.join(moddir, "modules.dep"), "w") as fh:
        for name, rel in sorted(by_name.items()):
            seen: list[str] = []
            closure(name, seen)
            fh.write(f"{rel}: {' '.join(reversed(seen))}\n")
    for name in wanted:
        name = name.replace("-", "_")
        if name in by_name:
            seen = []
            closure(name, seen)
            for rel in [*seen, by_name[name]]:
                if rel not in order:
                    order.append(rel)
    return order


def write_cpio(out: IO[bytes], entries: list[tuple[str, int, bytes]]) -> None:
    """A ``newc`` cpio archive of (name, mode, data) entries: what the kernel unpacks as initramfs."""
    ino = 1
    for name, mode, data in [*entries, ("TRAILER!!!", 0, b"")]:
        namez = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(namez), 0]
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        out.write(header + namez + b"\0" * ((-(len(header) + len(namez))) % 4))
        out.write(data + b"\0" * ((-len(data)) % 4))
        ino += 1


def _build_initrd(path: str, moddir: str, order: list[str]) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    with open(busybox, "rb") as fh:
        bb = fh.read()
    if not _is_static(busybox):
        raise VMImageError(f"{busybox} is not statically linked: apt-get install busybox-static")
    d = stat.S_IFDIR | 0o755
    entries: list[tuple[str, int, bytes]] = [
        (n, d, b"") for n in ("bin", "dev", "proc", "sys", "tmp", "modules", "harness", "newroot")
    ]
    entries.append(("bin/busybox", stat.S_IFREG | 0o755, bb))
    entries.append(("bin/sh", stat.S_IFLNK | 0o777, b"busybox"))
    entries.append(("init", stat.S_IFREG | 0o755, INIT.encode()))
    entries.append(("modules.order", stat.S_IFREG | 0o644, "".join(f"{m}\n" for m in order).encode()))
    made: set[str] = set()
    for rel in order:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            sub = "modules/" + "/".join(parts[:i])
            if sub not in made:
                made.add(sub)
                entries.append((sub, d, b""))
        with open(os.path.join(moddir, rel), "rb") as fh:
            entries.append((f"modules/{rel}", stat.S_IFREG | 0o644, fh.read()))
    with open(path, "wb") as out:
        write_cpio(out, entries)


def _is_static(path: str) -> bool:
    try:
        res = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return True
    return "not a dynamic executable" in (res.stdout + res.stderr) or res.returncode != 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.vmimages", description="vm backend kernels")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="fetch and prepare kernels (default: bookworm)")
    f.add_argument("kernels", nargs="*", default=[DEFAULT_KERNEL])
    f.add_argument("--refresh", action="store_true", help="fetch the suite's newest even when one is cached")
    sub.add_parser("list", help="show the cached kernels")
    args = p.parse_args(argv)
    try:
        if args.command == "fetch":
            for name in args.kernels:
                entry = ensure_kernel(name, refresh=args.refresh)
                print(f"{name}: {entry.release} in {entry.path}")
            return 0
        for suite in sorted(set(KERNELS.values())):
            for entry in _entries(suite):
                meta = entry.meta()
                print(f"{suite:<9} {entry.release:<24} {meta.get('package', '?')} {entry.path}")
        return 0
    except HarnessError as exc:
        sys.stderr.write(f"harness.vmimages: error: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
