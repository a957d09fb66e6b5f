"""Request bodies of the wrong JSON shape are dockerd's 400s, not 500s (found by the swagger fuzzing).

Each expected text is what dockerd 28.5 answered to the same body (recorded against the dockerd-28 target).
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.daemon.api.bodytypes import (
    CONNECT_OPTIONS,
    DISCONNECT_OPTIONS,
    EXEC_OPTIONS,
    EXEC_START_OPTIONS,
    NETWORK_CREATE,
    VOLUME_CREATE,
)
from harness.daemon.errors import ApiError, expect_object
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
    with pytest.raises(
        ApiError, match=r"number -1 into Go struct field ExecOptions.ConsoleSize of type uint"
    ):
        check({"Cmd": ["ls"], "ConsoleSize": [-1, 2]}, EXEC_OPTIONS)
    with pytest.raises(ApiError, match=r"CreateRequest.IPAM.Config.Subnet of type string"):
        check({"IPAM": {"Config": [{"Subnet": 1}]}}, NETWORK_CREATE)


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
