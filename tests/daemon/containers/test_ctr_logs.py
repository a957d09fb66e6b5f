"""A container's log reader: dockerd's refusals, and the follow's end tied to the container's state."""

from __future__ import annotations

from typing import Any

import pytest

from harness.daemon.containers.logs import container_logs
from harness.daemon.errors import ApiError

from .conftest import make_container


def test_a_container_being_removed_or_with_no_log_is_refused(tmp_path: Any) -> None:
    c = make_container(str(tmp_path))
    c.state["Status"] = "removing"
    with pytest.raises(ApiError) as err:
        container_logs(c)
    assert err.value.status == 409
    assert err.value.message == "can not get logs from container which is dead or marked for removal"
    c.state["Status"] = "exited"
    c.host_config["LogConfig"] = {"Type": "none", "Config": {}}
    with pytest.raises(ApiError) as err:
        container_logs(c)
    assert (err.value.status, err.value.message) == (
        501,
        "configured logging driver does not support reading",
    )


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_the_reader_reads_the_drivers_file_and_stops_with_the_container(tmp_path: Any, driver: str) -> None:
    c = make_container(str(tmp_path))
    c.host_config["LogConfig"] = {"Type": driver, "Config": {}}
    c.set_running(5)
    reader = container_logs(c, tail=3, follow=True)
    assert (reader.path, reader.tail, reader.following) == (c.log_path, 3, True)
    assert not reader.stopped()
    c.state.update(Status="restarting", Running=False)
    assert not reader.stopped()  # a restarting container's follow goes on
    c.set_stopped(0)
    assert reader.stopped()
