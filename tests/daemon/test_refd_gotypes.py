"""Request bodies of the wrong JSON shape are dockerd's 400s, not 500s (found by the swagger fuzzing).

Each expected text is what dockerd 28.5 answered to the same body (recorded against the dockerd-28 target).
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.daemon.bodytypes import (
    CONNECT_OPTIONS,
    DISCONNECT_OPTIONS,
    EXEC_OPTIONS,
    EXEC_START_OPTIONS,
    NETWORK_CREATE,
    VOLUME_CREATE,
)
from harness.daemon.errors import ApiError, expect_object, go_kind
from harness.daemon.gotypes import Struct, atoi, check

_P = "invalid JSON: json: cannot unmarshal "
DOCKERD_28 = [
    (EXEC_OPTIONS, 491, _P + "number into Go value of type container.ExecOptions"),
    (EXEC_START_OPTIONS, "x", _P + "string into Go value of type container.ExecStartOptions"),
    (VOLUME_CREATE, [35898], _P + "array into Go value of type volume.CreateOptions"),
    (NETWORK_CREATE, 4.4e5, _P + "number into Go value of type network.CreateRequest"),
    (CONNECT_OPTIONS, 4.4e5, _P + "number into Go value of type network.ConnectOptions"),
    (DISCONNECT_OPTIONS, 4.4e5, _P + "number into Go value of type network.DisconnectOptions"),
    (
        NETWORK_CREATE,
        {"Name": "n1", "Labels": 1.5},
        _P + "number into Go struct field CreateRequest.Labels of type map[string]string",
    ),
    (
        NETWORK_CREATE,
        {"Name": "n1", "Labels": {"a": 1}},
        _P + "number into Go struct field CreateRequest.Labels.a of type string",
    ),
    (NETWORK_CREATE, {"Name": 5}, _P + "number into Go struct field CreateRequest.Name of type string"),
    (
        NETWORK_CREATE,
        {"Name": "n2", "Internal": "x"},
        _P + "string into Go struct field CreateRequest.Internal of type bool",
    ),
    (
        NETWORK_CREATE,
        {"Name": "n3", "IPAM": 5},
        _P + "number into Go struct field CreateRequest.IPAM of type network.IPAM",
    ),
    (
        NETWORK_CREATE,
        {"Name": "n3", "IPAM": {"Config": 5}},
        _P + "number into Go struct field CreateRequest.IPAM.Config of type []network.IPAMConfig",
    ),
    (
        NETWORK_CREATE,
        {"Name": "n3", "Options": [1]},
        _P + "array into Go struct field CreateRequest.Options of type map[string]string",
    ),
    (VOLUME_CREATE, {"Name": 5}, _P + "number into Go struct field CreateOptions.Name of type string"),
    (
        VOLUME_CREATE,
        {"Labels": {"a": 1}},
        _P + "number into Go struct field CreateOptions.Labels.a of type string",
    ),
    (
        VOLUME_CREATE,
        {"DriverOpts": 3},
        _P + "number into Go struct field CreateOptions.DriverOpts of type map[string]string",
    ),
    (
        CONNECT_OPTIONS,
        {"Container": 5},
        _P + "number into Go struct field ConnectOptions.Container of type string",
    ),
    (
        CONNECT_OPTIONS,
        {"EndpointConfig": 5},
        _P + "number into Go struct field ConnectOptions.EndpointConfig of type network.EndpointSettings",
    ),
    (EXEC_OPTIONS, {"Cmd": 5}, _P + "number into Go struct field ExecOptions.Cmd of type []string"),
    (EXEC_OPTIONS, {"Cmd": "ls"}, _P + "string into Go struct field ExecOptions.Cmd of type []string"),
    (EXEC_OPTIONS, {"Env": {"a": 1}}, _P + "object into Go struct field ExecOptions.Env of type []string"),
    (EXEC_OPTIONS, {"Detach": "x"}, _P + "string into Go struct field ExecOptions.Detach of type bool"),
]


@pytest.mark.parametrize(
    ("struct", "body", "message"), DOCKERD_28, ids=[m[len(_P) :] for _, _, m in DOCKERD_28]
)
def test_wrong_shapes_get_dockerds_400(struct: Struct, body: Any, message: str) -> None:
    with pytest.raises(ApiError) as info:
        check(body, struct)
    assert (info.value.status, info.value.message) == (400, message)


def test_good_bodies_pass_and_null_is_empty() -> None:
    body = {"Cmd": ["ls"], "Env": None, "ConsoleSize": [24, 80], "Unknown": {"x": 1}}
    assert check(body, EXEC_OPTIONS) is body
    assert check(None, NETWORK_CREATE) == {}
    assert check({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]}}, NETWORK_CREATE)


def test_integers_and_arrays_of_structs() -> None:
    # recorded from dockerd 28.5 (Go 1.25 paths: indices, JSON-pointer keys, no "Go struct field" at an index)
    cases = [
        (
            EXEC_OPTIONS,
            {"Cmd": ["ls"], "ConsoleSize": [-1, 2]},
            "number -1 into ExecOptions.ConsoleSize.0 of type uint",
        ),
        (EXEC_OPTIONS, {"Cmd": ["ls"], "Env": [1]}, "number into ExecOptions.Env.0 of type string"),
        (
            NETWORK_CREATE,
            {"Name": "q", "IPAM": {"Config": [{"Subnet": 1}]}},
            "number into Go struct field CreateRequest.IPAM.Config.0.Subnet of type string",
        ),
        (
            NETWORK_CREATE,
            {"Name": "q", "Labels": {"a/b": 1}},
            "number into Go struct field CreateRequest.Labels.a~1b of type string",
        ),
    ]
    for struct, body, message in cases:
        with pytest.raises(ApiError) as info:
            check(body, struct)
        assert info.value.message == "invalid JSON: json: cannot unmarshal " + message


def test_expect_object() -> None:
    assert expect_object(None, "x.T") == {}
    with pytest.raises(ApiError, match=r"cannot unmarshal bool into Go value of type x.T"):
        expect_object(True, "x.T")


@pytest.mark.parametrize(
    ("text", "message"),
    [  # dockerd 28.5's answers to POST /containers/x/stop?t=...
        ("99999999999999999999", 'strconv.Atoi: parsing "99999999999999999999": value out of range'),
        ("x", 'strconv.Atoi: parsing "x": invalid syntax'),
        ("1.5", 'strconv.Atoi: parsing "1.5": invalid syntax'),
        (" 1", 'strconv.Atoi: parsing " 1": invalid syntax'),
    ],
)
def test_atoi_errors_are_dockerds_500(text: str, message: str) -> None:
    with pytest.raises(ApiError) as info:
        atoi(text)
    assert (info.value.status, info.value.message) == (500, message)


def test_atoi_values() -> None:
    assert atoi("10") == 10 and atoi("-1") == -1 and atoi("+3") == 3


_C = "invalid JSON: json: cannot unmarshal "
CREATE_28 = [  # POST /containers/create bodies and dockerd 28.5's answers (measured on dockerd-28)
    ({"Image": "busybox", "Hostname": 5}, "number into Go struct field .Hostname of type string"),
    ({"Image": 5}, "number into Go struct field .Image of type string"),
    ({"Image": "busybox", "Cmd": 5}, "number into Go value of type string"),
    ({"Image": "busybox", "Env": [1]}, "number into .Env.0 of type string"),
    ({"Image": "busybox", "Labels": {"a": 1}}, "number into Go struct field .Labels.a of type string"),
    (
        {"Image": "busybox", "HostConfig": {"Memory": "x"}},
        "string into Go struct field .HostConfig.Memory of type int64",
    ),
    (
        {"Image": "busybox", "HostConfig": 5},
        "number into Go struct field .HostConfig of type container.HostConfig",
    ),
    (
        {"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": 5}}},
        "number into Go struct field .HostConfig.RestartPolicy.Name of type container.RestartPolicyMode",
    ),
    (
        {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"a": {"Aliases": 5}}}},
        "number into Go struct field .NetworkingConfig.EndpointsConfig.a.Aliases of type []string",
    ),
    (
        {"Image": "busybox", "ExposedPorts": {"80/tcp": 5}},
        "number into Go struct field .ExposedPorts.80~1tcp of type struct {}",
    ),
    ({"Image": "busybox", "Entrypoint": 5}, "number into Go value of type string"),
    (
        {"Image": "busybox", "Healthcheck": {"Test": 5}},
        "number into Go struct field .Healthcheck.Test of type []string",
    ),
    (
        {"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 5}]}}},
        "number into Go struct field .HostConfig.PortBindings.80~1tcp.0.HostPort of type string",
    ),
    ([1], "array into Go value of type container.CreateRequest"),
]


@pytest.mark.parametrize(("body", "message"), CREATE_28, ids=[m for _, m in CREATE_28])
def test_container_create_shapes(body: Any, message: str) -> None:
    from harness.daemon.bodytypes import CONTAINER_CREATE

    with pytest.raises(ApiError) as info:
        check(body, CONTAINER_CREATE)
    assert (info.value.status, info.value.message) == (400, _C + message)


def test_container_create_good_body_passes() -> None:
    from harness.daemon.bodytypes import CONTAINER_CREATE

    body = {
        "Image": "busybox",
        "Cmd": "sh",
        "Entrypoint": ["a", "b"],
        "ExposedPorts": {"80/tcp": {}},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}, "CapAdd": "NET_ADMIN"},
    }
    assert check(body, CONTAINER_CREATE) is body


def test_atoi_refuses_unicode_digits() -> None:
    """'³'.isdigit() is True and int('³') raises: GET /containers/json?limit=³ was a 500 ValueError."""
    with pytest.raises(ApiError) as info:
        atoi("³")
    assert (info.value.status, info.value.message) == (500, 'strconv.Atoi: parsing "³": invalid syntax')


def test_go_kind_names_json_kinds_as_gos_decoder() -> None:
    assert [go_kind(v) for v in ("s", True, [], {}, 1, 1.5, None)] == [
        "string",
        "bool",
        "array",
        "object",
        "number",
        "number",
        "value",
    ]
    assert expect_object(None, "x.T") == {}
    with pytest.raises(
        ApiError, match=r"^invalid JSON: json: cannot unmarshal array into Go value of type x\.T$"
    ):
        expect_object([], "x.T")


def test_keys_matching_a_field_case_insensitively_are_renamed_as_go_decodes_them() -> None:
    exec_config = Struct("container.ExecOptions", {"DetachKeys": "string", "Cmd": "strslice"})
    body = {"detachKeys": "ctrl-x,x", "cmd": ["sh"], "Other": 1}
    assert check(body, exec_config) == {"DetachKeys": "ctrl-x,x", "Cmd": ["sh"], "Other": 1}
    later_wins = {"DetachKeys": "ctrl-a,a", "DETACHKEYS": "ctrl-b,b"}
    assert check(later_wins, exec_config) == {"DetachKeys": "ctrl-b,b"}
    with pytest.raises(ApiError) as err:
        check({"detachkeys": 5}, exec_config)
    assert "Go struct field ExecOptions.DetachKeys of type string" in err.value.message
