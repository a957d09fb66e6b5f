"""The worker the control API describes, and the tar output's shape."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.daemon.buildkit import control
from harness.daemon.buildkit.exporter import _write_tar
from harness.daemon.buildkit.messages import ListWorkersResponse


def _daemon(tmp_path: Path) -> Any:
    net = SimpleNamespace(ipam_config=[{"Subnet": "10.99.0.0/16", "Gateway": "10.99.0.1"}])
    return SimpleNamespace(
        engine_id="5a5358fb-d25d-43d2-a7be-07aba10a1f2f",
        config={"data-root": str(tmp_path)},
        networks=SimpleNamespace(find=lambda name: net if name == "bridge" else None),
        images=None,
        log=SimpleNamespace(warning=print),
    )


def test_worker_record(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(control, "_amd64_levels", lambda: ["v2"])
    monkeypatch.setattr("harness.daemon.buildkit.cache.BuildCache._load", lambda self: None)
    ctl = control.Controller(_daemon(tmp_path))
    worker = ListWorkersResponse.decode(ListWorkersResponse(record=[ctl.worker()]).encode()).record[0]
    assert worker.ID == "5a5358fb-d25d-43d2-a7be-07aba10a1f2f"
    assert worker.Labels == {"org.mobyproject.buildkit.worker.moby.host-gateway-ip": "10.99.0.1"}
    platforms = [(p.OS, p.Architecture, p.Variant) for p in worker.platforms]
    from harness.daemon.goformat import go_arch

    if go_arch() == "amd64":
        assert platforms == [("linux", "amd64", ""), ("linux", "amd64", "v2"), ("linux", "386", "")]
    assert worker.BuildkitVersion.package == "github.com/moby/buildkit"
    policies = worker.GCPolicy
    assert policies[0].filters == ["type==source.local,type==exec.cachemount,type==source.git.checkout"]
    assert policies[-1].all and policies[1].keepDuration == 60 * 24 * 3600 * 10**9


def test_tar_output(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "out").mkdir(parents=True)
    (root / "out" / "f").write_text("x")
    os.symlink("f", root / "out" / "l")
    buf = io.BytesIO()
    _write_tar(str(root), buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = [(m.name, m.type) for m in tar.getmembers()]
    assert members == [("out", tarfile.DIRTYPE), ("out/f", tarfile.REGTYPE), ("out/l", tarfile.SYMTYPE)]
