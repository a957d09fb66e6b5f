"""Create-time translation of a request body: the container-wide MAC address moved to its endpoint (moby
handleMACAddressBC), for old and new API versions; the request checks of verifyContainerSettings."""

from __future__ import annotations

from typing import Any

import pytest

from harness.daemon.containers.create import (
    build_config,
    build_host_config,
    merge_log_config,
    migrate_mac_address,
    validate_request,
    verify_host_config,
)
from harness.daemon.errors import ApiError
from harness.daemon.network.manager import parse_mac

MAC = "02:42:0a:00:00:01"


def _endpoints(body: dict[str, Any]) -> Any:
    return (body.get("NetworkingConfig") or {}).get("EndpointsConfig")


def test_before_1_44_the_container_wide_mac_goes_to_the_network_modes_endpoint() -> None:
    body: dict[str, Any] = {"MacAddress": MAC}
    assert migrate_mac_address(body, (1, 41)) == []
    assert _endpoints(body) == {"bridge": {"MacAddress": MAC}} and "MacAddress" not in body
    body = {"MacAddress": MAC, "HostConfig": {"NetworkMode": "net1"}}
    migrate_mac_address(body, (1, 43))
    assert _endpoints(body) == {"net1": {"MacAddress": MAC}}


def test_before_1_44_an_endpoint_mac_did_not_exist() -> None:
    body: dict[str, Any] = {"NetworkingConfig": {"EndpointsConfig": {"net1": {"MacAddress": MAC}}}}
    migrate_mac_address(body, (1, 41))
    assert _endpoints(body) == {"net1": {}}


@pytest.mark.parametrize("mode", ["none", "host", "container:abc"])
def test_before_1_44_a_mac_needs_a_bridge_or_user_network(mode: str) -> None:
    with pytest.raises(ApiError) as err:
        migrate_mac_address({"MacAddress": MAC, "HostConfig": {"NetworkMode": mode}}, (1, 41))
    assert (err.value.status, err.value.message) == (
        400,
        "conflicting options: mac-address and the network mode",
    )


def test_from_1_44_the_container_wide_mac_is_deprecated_and_migrated() -> None:
    body: dict[str, Any] = {"MacAddress": MAC, "HostConfig": {"NetworkMode": "net1"}}
    (warning,) = migrate_mac_address(body, (1, 44))
    assert warning.startswith("The container-wide MacAddress field is now deprecated.")
    assert _endpoints(body) == {"net1": {"MacAddress": MAC}}
    same = {"MacAddress": MAC, "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": MAC}}}}
    assert len(migrate_mac_address(same, (1, 51))) == 1
    assert (
        migrate_mac_address({"NetworkingConfig": {"EndpointsConfig": {"x": {"MacAddress": MAC}}}}, (1, 44))
        == []
    )


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        ({"bridge": {"MacAddress": "02:42:0a:00:00:02"}}, "the container-wide MAC address must match"),
        ({"other": {}}, "if a container-wide MAC address is supplied, HostConfig.NetworkMode must match"),
    ],
)
def test_from_1_44_a_mac_that_cannot_be_placed_is_refused(endpoints: dict[str, Any], message: str) -> None:
    body = {"MacAddress": MAC, "NetworkingConfig": {"EndpointsConfig": endpoints}}
    with pytest.raises(ApiError) as err:
        migrate_mac_address(body, (1, 44))
    assert err.value.status == 400 and err.value.message.startswith(message)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("02:42:AC:11:00:02", "02:42:ac:11:00:02"),
        ("02-42-ac-11-00-02", "02:42:ac:11:00:02"),
        ("0242.ac11.0002", "02:42:ac:11:00:02"),
        ("02:42:ac:11:00:02:00:01", "02:42:ac:11:00:02:00:01"),
        ("zz:42", None),
        ("02:42:ac:11:00", None),
        ("02:42-ac:11:00:02", None),
        ("02:42:ac:11:00:0g", None),
        ("02:42:ac:11:00:02:03", None),
    ],
)
def test_mac_addresses_parse_as_go_parses_them(text: str, parsed: str | None) -> None:
    assert parse_mac(text) == parsed


@pytest.mark.parametrize(
    ("requested", "merged"),
    [
        (
            {"Type": "", "Config": {"max-file": "100"}},
            {"Type": "json-file", "Config": {"max-file": "100", "max-size": "10m"}},
        ),
        (None, {"Type": "json-file", "Config": {"max-size": "10m"}}),
        (
            {"Type": "json-file", "Config": {"max-size": "1k"}},
            {"Type": "json-file", "Config": {"max-size": "1k"}},
        ),
        ({"Type": "local", "Config": {}}, {"Type": "local", "Config": {}}),
    ],
)
def test_log_config_merges_the_daemons_options_into_its_own_driver(
    requested: dict[str, Any] | None, merged: dict[str, Any]
) -> None:
    daemon = {"log-driver": "json-file", "log-opt": {"max-size": "10m"}}
    assert merge_log_config(requested, daemon) == merged


@pytest.mark.parametrize(
    ("host_config", "message"),
    [
        (
            {"RestartPolicy": {"Name": "always", "MaximumRetryCount": -1}},
            "invalid restart policy: maximum retry count can only be used with 'on-failure' "
            "and cannot be negative",
        ),
        (
            {"RestartPolicy": {"Name": "", "MaximumRetryCount": 3}},
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
        (  # AutoRemove is checked before the policy itself, as moby validateHostConfig does
            {"AutoRemove": True, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
            "can't create 'AutoRemove' container with restart policy",
        ),
    ],
)
def test_restart_policies_refused_at_create(host_config: dict[str, Any], message: str) -> None:
    hc = build_host_config(host_config, {}, "2")
    with pytest.raises(ApiError) as err:
        verify_host_config(hc, ncpu=2)
    assert (err.value.status, err.value.message) == (400, message)


# -- moby verifyContainerSettings' request checks (validate_request) ------------------------------------
@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"Env": [""]}, "invalid environment variable: "),
        ({"Env": ["A=1", "="]}, "invalid environment variable: ="),
        ({"Env": ["=foo"]}, "invalid environment variable: =foo"),
        ({"StopSignal": "SIGFOO"}, "invalid signal: SIGFOO"),
        ({"StopSignal": "0"}, "invalid signal: 0"),
        ({"HostConfig": {"ExtraHosts": ["foo"]}}, 'bad format for add-host: "foo"'),
        ({"HostConfig": {"ExtraHosts": [":1.2.3.4"]}}, 'bad format for add-host: ":1.2.3.4"'),
        ({"HostConfig": {"ExtraHosts": ["foo:1.2.3.x"]}}, 'invalid IP address in add-host: "1.2.3.x"'),
        (
            {"HostConfig": {"ExtraHosts": ["foo:fe80::1%eth0"]}},
            'invalid IP address in add-host: "fe80::1%eth0"',
        ),
        ({"HostConfig": {"Isolation": "hyperv"}}, "invalid isolation 'hyperv' on linux"),
        (
            {"HostConfig": {"Annotations": {"": "a"}}},
            "invalid Annotations: the empty string is not permitted as an annotation key",
        ),
    ],
)
def test_requests_dockerd_refuses_are_400s_with_its_words(request_body: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as err:
        validate_request({"Image": "busybox", **request_body})
    assert (err.value.status, err.value.message) == (400, message)


@pytest.mark.parametrize(
    "request_body",
    [
        {"Env": ["A", "B=", "C=1=2"]},  # a name without a value is kept as it is
        {"StopSignal": "SIGUSR1"},
        {"StopSignal": "usr1"},
        {"StopSignal": "100"},  # any non-zero number, as moby/sys/signal.ParseSignal
        {"HostConfig": {"ExtraHosts": ["a:1.2.3.4", "b:::1", "c:host-gateway", "d: 10.0.0.1 "]}},
        {"HostConfig": {"Isolation": "Default"}},
        {"HostConfig": {"Annotations": {"a": ""}}},
    ],
)
def test_requests_dockerd_takes_pass(request_body: dict[str, Any]) -> None:
    validate_request({"Image": "busybox", **request_body})


def test_a_host_network_container_is_named_after_the_host() -> None:
    import socket

    cid = "ab" * 32
    assert build_config({"HostConfig": {"NetworkMode": "host"}}, {}, cid)["Hostname"] == socket.gethostname()
    assert build_config({"HostConfig": {"NetworkMode": "bridge"}}, {}, cid)["Hostname"] == cid[:12]
    assert build_config({"Hostname": "h", "HostConfig": {"NetworkMode": "host"}}, {}, cid)["Hostname"] == "h"
