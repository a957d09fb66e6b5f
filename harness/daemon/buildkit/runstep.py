"""RUN steps of refd's Dockerfile frontend: a step container on refd's runtime, with BuildKit's mounts.

``RUN --mount=`` types: ``secret`` (the client's secret as a read-only file, ``/run/secrets/<id>`` by
default), ``cache`` (a directory kept across builds, an ``exec.cachemount`` record), ``bind`` (from
the context, a stage or an image; read-only unless ``rw``, whose writes are thrown away), ``tmpfs``,
``ssh`` (a socket relaying to the client's agent over ``SSH/ForwardAgent``); ``--network``. The
mount points the runtime had to make are not part of the layer. A non-zero exit fails the build
with BuildKit's text (``process "..." did not complete successfully: exit code: N``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from ..builder import instructions as ins
from ..builder.metadata import resolve_cmd
from ..builder.stream import BuildError
from ..errors import ApiError
from .cache import Record
from .control import BuildFailed
from .layers import LayerSteps
from .stage import StageState, StepImage, cache_key, display_name, history_entry, run_command_string

if TYPE_CHECKING:
    from ..containers.model import Container
    from .progress import Step
    from .session import Session

__all__ = ["RunSteps", "mount_options"]


class RunSteps(LayerSteps):
    # -- RUN ------------------------------------------------------------------------------------------
    async def _run(
        self, stages: list[ins.Stage], st: StageState, cmd: ins.RunCommand, env: dict[str, str]
    ) -> None:
        state = st.state
        assert state is not None
        rc = state.run_config
        args = _run_args(cmd, rc)
        run_env = list(rc.get("Env") or [])
        build_args = state.build_args.filter_allowed(run_env)
        name = st.prefix(display_name(cmd, env) + _heredoc_summary(cmd))
        mounts = [mount_options(text) for text in cmd.mounts]
        mount_keys = [{k: v for k, v in m.items() if k != "required"} for m in mounts]
        key = cache_key(
            st.key,
            "run",
            args,
            run_env + build_args,
            str(rc.get("WorkingDir") or ""),
            str(rc.get("User") or ""),
            cmd.network,
            mount_keys,
            self._mount_sources(stages, mounts),
        )
        step = self.progress.step(name)
        history = "RUN " + run_command_string(args, build_args) + " # buildkit"
        if await self._cached(st, key, step):
            record = self.cache.records[st.record]
            st.history.append(history_entry(history, empty=not record.own_layer, layer_ns=record.created))
            return
        step.start()
        try:
            layered = await self._execute(
                stages, st, args, run_env + build_args, cmd, mounts, key, name, step
            )
        except BuildFailed as exc:
            step.done(str(exc))
            raise
        step.done()
        st.history.append(history_entry(history, empty=not layered, layer_ns=self._made(st)))

    def _host_config(self, cmd: ins.RunCommand) -> dict[str, Any]:
        """The step container's host config: RUN's network, and the build's options (buildx's
        ``--network``, ``--add-host``, ``--shm-size``, ``--ulimit``, ``--cgroup-parent``)."""
        network = cmd.network
        if network == "default":
            network = self.attrs.get("force-network-mode") or "default"
        host: dict[str, Any] = {
            "NetworkMode": {"default": "bridge", "none": "none", "host": "host"}.get(network, "bridge"),
            "LogConfig": {"Type": "none", "Config": {}},
            "Mounts": [],
            "Tmpfs": {},
        }
        hosts = [h.strip() for h in self.attrs.get("add-hosts", "").split(",") if h.strip()]
        if hosts:
            host["ExtraHosts"] = [h.replace("=", ":", 1) if ":" not in h else h for h in hosts]
        if self.attrs.get("shm-size", "").isdigit():
            host["ShmSize"] = int(self.attrs["shm-size"])
        if self.attrs.get("cgroup-parent"):
            host["CgroupParent"] = self.attrs["cgroup-parent"]
        ulimits = []
        for text in (u.strip() for u in self.attrs.get("ulimit", "").split(",") if u.strip()):
            name, _, limits = text.partition("=")
            soft, _, hard = limits.partition(":")
            if soft.lstrip("-").isdigit():
                ulimits.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
        if ulimits:
            host["Ulimits"] = ulimits
        return host

    def _mount_sources(self, stages: list[ins.Stage], mounts: list[dict[str, str]]) -> list[str]:
        keys = []
        for m in mounts:
            ref = m.get("from", "")
            if ref:
                index = self._stage_index(stages, ref, len(stages))
                keys.append(self.stage_results[index].key if index is not None else ref)
        return keys

    async def _execute(
        self,
        stages: list[ins.Stage],
        st: StageState,
        args: list[str],
        env: list[str],
        cmd: ins.RunCommand,
        mounts: list[dict[str, str]],
        key: str,
        name: str,
        step: Step,
    ) -> bool:
        from ..builder.run import run_container

        state = st.state
        assert state is not None
        rc = state.run_config
        host = self._host_config(cmd)
        cleanups: list[Any] = []
        stubs: list[str] = []
        try:
            workdir = str(rc.get("WorkingDir") or "/")
            for m in mounts:
                await self._mount(stages, _absolute_target(m, workdir), host, env, cleanups, stubs, args)
            body = {
                "Cmd": args,
                "Entrypoint": None,
                "Env": env,
                "WorkingDir": rc.get("WorkingDir") or "",
                "User": rc.get("User") or "",
                "Labels": {},
                "HostConfig": host,
            }
            view = st.step_image()
            view.config = {"config": {"Env": env}, "rootfs": {"type": "layers"}}
            try:
                c, _ = self.daemon.containers.create(body, "", image=view)
            except ApiError as exc:
                raise BuildFailed(exc.message) from None
            try:
                code = await run_container(
                    self.daemon, c, lambda t: step.log(1, t.encode()), lambda t: step.log(2, t.encode())
                )
                if code != 0:
                    raise BuildFailed(
                        f'process "{" ".join(args)}" did not complete successfully: exit code: {code}'
                    )
                description = "mount / from exec " + " ".join(args)
                _, layered = await asyncio.to_thread(self._commit_container, st, c, key, description, stubs)
                return layered
            finally:
                with contextlib.suppress(ApiError):
                    await self.daemon.containers.remove(c, force=True, volumes=True)
        except BuildError as exc:
            raise BuildFailed(exc.message) from None
        finally:
            for cleanup in reversed(cleanups):
                with contextlib.suppress(Exception):
                    result = cleanup()
                    if asyncio.iscoroutine(result):
                        await result

    def _commit_container(
        self, st: StageState, c: Container, key: str, name: str, stubs: list[str]
    ) -> tuple[Record, bool]:
        from ..images.commit import container_diff

        store = self.store
        if stubs:
            root = store.layers.mount_rootfs(c.id)
            try:
                _remove_stubs(root, stubs, st.step_image(), store)
            finally:
                store.layers.unmount_rootfs(c.id)
        return self._commit(st, key, name, lambda out: container_diff(store.layers, c.id, out))

    async def _mount(
        self,
        stages: list[ins.Stage],
        m: dict[str, str],
        host: dict[str, Any],
        env: list[str],
        cleanups: list[Any],
        stubs: list[str],
        run_args: list[str],
    ) -> None:
        from ..images.commit import ScratchLayer

        kind = m.get("type", "bind")
        target = m.get("target") or m.get("dst") or m.get("destination") or ""
        if kind == "secret":
            secret_id = m.get("id") or os.path.basename(target)
            target = target or f"/run/secrets/{secret_id}"
            data = await self.session.secret(secret_id)
            if data is None:
                if m.get("required", "false") in ("", "true"):
                    raise BuildFailed(f"secret {secret_id}: not found")
                return
            path = os.path.join(tempfile.mkdtemp(dir=self.tmp), "secret")
            with open(path, "wb") as fh:
                fh.write(data)
            os.chmod(path, int(m.get("mode", "0400"), 8))
            with contextlib.suppress(ValueError, OSError):
                owner = (int(m.get("uid", "0")), int(m.get("gid", "0")))
                idmap = getattr(self.daemon, "idmap", None)
                if idmap is not None:  # --userns-remap: the container's ids are the host's shifted ones
                    owner = idmap.to_host(*owner)
                os.chown(path, *owner)
            host["Mounts"].append({"Type": "bind", "Source": path, "Target": target, "ReadOnly": True})
            stubs.append(target)
        elif kind == "cache":
            if not target:
                raise BuildFailed("mount target is required for cache mounts")
            cache_id = m.get("id") or target
            record = await asyncio.to_thread(
                self.cache.directory,
                "exec.cachemount",
                f"cached mount {target} from exec {' '.join(run_args)}",
                cache_key("cachemount", cache_id),
            )
            record.in_use += 1
            cleanups.append(lambda: setattr(record, "in_use", record.in_use - 1))
            idmap = getattr(self.daemon, "idmap", None)
            if idmap is not None and os.stat(record.path).st_uid == 0:  # new: the remapped root's to write
                os.chown(record.path, *idmap.root)
            host["Mounts"].append({"Type": "bind", "Source": record.path, "Target": target})
            stubs.append(target)
        elif kind == "tmpfs":
            if not target:
                raise BuildFailed("mount target is required for tmpfs mounts")
            size = m.get("size") or m.get("tmpfs-size")
            host["Tmpfs"][target] = f"size={size}" if size else ""
            stubs.append(target)
        elif kind == "bind":
            if not target:
                raise BuildFailed("mount target is required for bind mounts")
            ref = m.get("from", "")
            if ref:
                index = self._stage_index(stages, ref, len(stages))
                if index is not None:
                    other = self.stage_results[index]
                    view = StepImage(other.chain, other.diff_ids, {})
                else:
                    image = await self._resolve_image(ref)
                    view = StepImage(image.top_chain, list(image.diff_ids), {})
                layer = await asyncio.to_thread(ScratchLayer, self.store, view if view.top_chain else None)  # type: ignore[arg-type]
                cleanups.append(lambda: asyncio.to_thread(layer.release))
                root = layer.root
            else:
                root = self.context_dir
            from ..scope import follow_in_scope

            try:  # symlinks resolved inside the context or stage: a bind never reaches the host's files
                source = follow_in_scope(root, m.get("source", m.get("src", "")))
            except OSError as exc:
                raise BuildFailed(f"invalid mount source {m.get('source')!r}: {exc}") from None
            if not os.path.exists(source):
                raise BuildFailed(f'failed to compute cache key: "/{m.get("source", "")}": not found')
            rw = m.get("rw", m.get("readwrite", "false")) in ("", "true")
            if rw:  # writes are thrown away, as BuildKit's readwrite bind mounts are
                copy_dir = tempfile.mkdtemp(dir=self.tmp)
                dest = os.path.join(copy_dir, "m")
                await asyncio.to_thread(_copy_any, source, dest)
                source = dest
            host["Mounts"].append({"Type": "bind", "Source": source, "Target": target, "ReadOnly": not rw})
            stubs.append(target)
        elif kind == "ssh":
            ssh_id = m.get("id") or "default"
            target = target or "/run/buildkit/ssh_agent.0"
            await self.session.check_agent(ssh_id)
            sock_dir = tempfile.mkdtemp(dir=self.tmp)
            path = os.path.join(sock_dir, "agent.sock")
            server = await asyncio.start_unix_server(
                lambda r, w: _forward_agent(self.session, ssh_id, r, w), path=path
            )
            os.chmod(path, 0o666)
            cleanups.append(server.close)
            host["Mounts"].append({"Type": "bind", "Source": path, "Target": target})
            env.append(f"SSH_AUTH_SOCK={target}")
            stubs.append(target)
        else:
            raise BuildFailed(f"unsupported mount type {kind!r}")


# -- helpers ---------------------------------------------------------------------------------------------


def _absolute_target(m: dict[str, str], workdir: str) -> dict[str, str]:
    """A ``RUN --mount`` target relative to the step's working directory made absolute, as BuildKit's
    dockerfile2llb does (the daemon's mount checks take absolute targets only)."""
    out = dict(m)
    for key in ("target", "dst", "destination"):
        value = out.get(key)
        if value and not value.startswith("/"):
            out[key] = os.path.normpath(os.path.join("/", workdir, value))
    return out


def _heredoc_summary(cmd: ins.RunCommand) -> str:
    """`` (first line...)`` after a RUN that is one heredoc, as BuildKit names that step."""
    if not (
        cmd.files and cmd.cmd_line and len(cmd.cmd_line) == 1 and cmd.cmd_line[0].lstrip().startswith("<<")
    ):
        return ""
    lines = cmd.files[0][1].strip().replace("\r\n", "\n").split("\n")
    return f" ({lines[0]}{'...' if len(lines) > 1 else ''})"


def mount_options(text: str) -> dict[str, str]:
    """``--mount=type=cache,target=/x,ro``: key=value pairs (a bare word is ``word=``)."""
    out: dict[str, str] = {}
    for part in _csv_fields(text):
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if key in ("ro", "readonly") and not eq:
            out["ro"] = "true"
        elif key in ("rw", "readwrite") and not eq:
            out["rw"] = "true"
        elif key == "required" and not eq:
            out["required"] = "true"
        else:
            out[key] = value
    return out


def _csv_fields(text: str) -> list[str]:

    rows = list(csv.reader(io.StringIO(text)))
    return rows[0] if rows else []


def _run_args(cmd: ins.RunCommand, rc: dict[str, Any]) -> list[str]:
    if (
        cmd.files
        and cmd.prepend_shell
        and cmd.cmd_line
        and len(cmd.cmd_line) == 1
        and cmd.cmd_line[0].lstrip().startswith("<<")
    ):
        content = cmd.files[0][1]
        script = content
        return [*(rc.get("Shell") or ["/bin/sh", "-c"]), script]
    args = resolve_cmd(cmd, rc) or []
    if cmd.files and cmd.prepend_shell:
        # heredocs after the command: the shell reads them as here-documents
        body = args[-1]
        for name, content, _chomp in cmd.files:
            body += "\n" + content + name
        args = [*args[:-1], body]
    return args


def _remove_stubs(root: str, targets: list[str], view: StepImage, store: Any) -> None:
    """The mount points made for RUN's mounts are not part of the step's layer (BuildKit drops them)."""
    from ..images.commit import ScratchLayer

    base = ScratchLayer(store, view if view.top_chain else None)  # type: ignore[arg-type]
    try:
        for target in sorted(targets, key=len, reverse=True):
            parts = target.strip("/").split("/")
            for depth in range(len(parts), 0, -1):
                rel = "/".join(parts[:depth])
                if os.path.lexists(os.path.join(base.root, rel)):
                    break
                path = os.path.join(root, rel)
                if os.path.isdir(path) and not os.path.islink(path):
                    with contextlib.suppress(OSError):
                        os.rmdir(path)
                elif os.path.lexists(path):
                    with contextlib.suppress(OSError):
                        if os.path.getsize(path) == 0:
                            os.unlink(path)
    finally:
        base.release()


def _copy_any(src: str, dest: str) -> None:
    if os.path.isdir(src):
        shutil.copytree(src, dest, symlinks=True)
    else:
        shutil.copy2(src, dest)


async def _forward_agent(
    session: Session, ssh_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One agent connection from a RUN step, relayed over a ForwardAgent stream of the client's session."""
    from .messages import BytesMessage

    call = await session.ssh_stream(ssh_id)

    async def upstream() -> None:
        while data := await reader.read(1 << 16):
            await call.send(BytesMessage(data=data).encode())
        await call.finish()

    task = asyncio.ensure_future(upstream())
    try:
        while (raw := await call.recv()) is not None:
            writer.write(bytes(BytesMessage.decode(raw).data))
            await writer.drain()
    except Exception:
        pass
    finally:
        task.cancel()
        writer.close()
        await session.peer.cancel(call)
