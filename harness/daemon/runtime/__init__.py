"""refd's container runtime: real containers without containerd or runc.

One job per module, lowest first:

* ``syscalls``   -- ctypes wrappers for mount, pivot_root, unshare, setns, prctl, capset... (no policy)
* ``mountinfo``  -- parsing /proc/<pid>/mountinfo
* ``namespaces`` -- which namespaces to create or join, and joining a running container's
* ``cgroups``    -- v1/v2 cgroups: create, limits, freeze, stats, OOM, delete
* ``caps``       -- dockerd's capability defaults, CapAdd/CapDrop, applying a set
* ``users``      -- resolving ``User`` against the container's /etc/passwd and /etc/group
* ``rootfs``     -- the mount namespace: default mounts, /dev, pivot_root, masked/read-only paths
* ``process``    -- ``spawn`` and ``exec_in``: fork, namespaces, rootfs, user, caps, execve

The shim calls ``process.spawn``/``process.exec_in`` and ``cgroups`` directly; this package
imports nothing itself so that ``import harness.daemon.runtime.cgroups`` stays cheap.
"""

__all__: list[str] = []
