"""Resolving a container's ``User`` ("name", "uid", "uid:gid", "name:group") against its own /etc files.

The rules and error texts are runc's ``libcontainer/user.GetExecUser``, which dockerd also uses
before starting a container: a numeric uid needs no passwd entry (gid then defaults to 0, home
to "/"), a name must have one (``unable to find user nosuch: no matching entries in passwd
file``), an explicit group replaces the primary gid and suppresses supplementary groups, and
without one the user's memberships in /etc/group become the supplementary gids.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..scope import follow_in_scope

__all__ = [
    "MAX_ID",
    "ExecUser",
    "UserLookupError",
    "additional_groups",
    "copy_owner",
    "lookup_additional_groups",
    "lookup_user",
    "resolve_user",
    "secure_join",
]

MAX_ID = 2147483647
_RANGE = f"uids and gids must be in range 0-{MAX_ID}"


class UserLookupError(ValueError):
    """The ``User`` cannot be resolved; ``str()`` is runc's/dockerd's text."""


@dataclass(frozen=True)
class ExecUser:
    """Who a process runs as."""

    uid: int = 0
    gid: int = 0
    sgids: tuple[int, ...] = ()
    home: str = "/"


def _atoi(text: str) -> int | None:
    try:
        return int(text, 10) if text.strip() == text and text.lstrip("-").isdigit() else None
    except ValueError:
        return None


def _passwd(text: str) -> list[tuple[str, int, int, str]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = (line.split(":") + [""] * 7)[:7]
        out.append((parts[0], _atoi(parts[2]) or 0, _atoi(parts[3]) or 0, parts[5]))
    return out


def _group(text: str) -> list[tuple[str, int, list[str]]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = (line.split(":") + [""] * 4)[:4]
        members = [m for m in parts[3].split(",") if m]
        out.append((parts[0], _atoi(parts[2]) or 0, members))
    return out


def resolve_user(
    spec: str, passwd: str | None, group: str | None, defaults: ExecUser | None = None
) -> ExecUser:
    """runc's GetExecUser over file contents (``None``: the file does not exist)."""
    base = defaults or ExecUser()
    uid, gid, sgids, home = base.uid, base.gid, base.sgids, base.home
    user_arg, _, rest = spec.partition(":")
    group_arg = rest.split(":", 1)[0]
    uid_arg, gid_arg = _atoi(user_arg), _atoi(group_arg)

    users = []
    for name, p_uid, p_gid, p_home in _passwd(passwd or ""):
        if user_arg == "":
            match = p_uid == uid
        elif uid_arg is not None:
            match = p_uid == uid_arg
        else:
            match = name == user_arg
        if match:
            users.append((name, p_uid, p_gid, p_home))

    matched = ""
    if users:
        matched, uid, gid, home = users[0]
    elif user_arg != "":
        if uid_arg is None:
            raise UserLookupError(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = uid_arg
        if not 0 <= uid <= MAX_ID:
            raise UserLookupError(_RANGE)

    if group_arg != "" or matched:
        groups = []
        for name, g_gid, members in _group(group or ""):
            if group_arg == "":
                match = matched in members
            elif gid_arg is not None:
                match = g_gid == gid_arg
            else:
                match = name == group_arg
            if match:
                groups.append(g_gid)
        if group_arg != "":
            if groups:
                gid = groups[0]
            else:
                if gid_arg is None:
                    raise UserLookupError(
                        f"unable to find group {group_arg}: no matching entries in group file"
                    )
                gid = gid_arg
                if not 0 <= gid <= MAX_ID:
                    raise UserLookupError(_RANGE)
        elif groups:
            sgids = tuple(groups)
    return ExecUser(uid, gid, tuple(sgids), home or "/")


def additional_groups(entries: list[int | str], group: str | None) -> tuple[int, ...]:
    """moby/sys/user GetAdditionalGroups (``--group-add``): a name must be in /etc/group (``unable to find
    group staff: no matching entries in group file``), a number is taken as it is when it is not; sorted."""
    gids: set[int] = set()
    table = _group(group or "")
    for entry in entries:
        text = str(entry)
        number = _atoi(text)
        if number is not None and not 0 <= number <= MAX_ID:
            raise UserLookupError(_RANGE)
        found = [g for name, g, _ in table if (g == number if number is not None else name == text)]
        if found:
            if not 0 <= found[0] <= MAX_ID:
                raise UserLookupError(_RANGE)
            gids.add(found[0])
        elif number is None:
            raise UserLookupError(f"unable to find group {text}: no matching entries in group file")
        else:
            gids.add(number)
    return tuple(sorted(gids))


def secure_join(root: str, unsafe: str) -> str:
    """``root``/``unsafe`` with symlinks resolved as if ``root`` were "/": the result never leaves ``root``.

    Used to open files and create mount points inside a rootfs from the host side, where an
    absolute symlink in the image (``/etc/passwd -> /host/thing``) must not point at the host.
    """
    return follow_in_scope(root, unsafe)


def _read_inside(root: str, path: str) -> str | None:
    try:
        with open(secure_join(root, path), encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def lookup_user(root: str, spec: str, defaults: ExecUser | None = None) -> ExecUser:
    """Resolve ``spec`` against ``root``/etc/passwd and ``root``/etc/group ("/" inside the container)."""
    return resolve_user(spec, _read_inside(root, "/etc/passwd"), _read_inside(root, "/etc/group"), defaults)


def lookup_additional_groups(root: str, entries: list[int | str]) -> tuple[int, ...]:
    """:func:`additional_groups` against ``root``/etc/group ("/" inside the container)."""
    return additional_groups(entries, _read_inside(root, "/etc/group")) if entries else ()


def _id_or_name(text: str) -> tuple[int | None, str]:
    """moby getIDOrName: a 32-bit unsigned decimal up to MaxInt32 is an id, anything else a name."""
    if text.isascii() and text.isdigit() and int(text) <= MAX_ID:
        return int(text), ""
    return None, text


def _entries(root: str, path: str) -> str:
    text = _read_inside(root, path)
    if text is None:
        raise UserLookupError(f"open {path}: no such file or directory")
    return text


def copy_owner(root: str, spec: str) -> tuple[int, int]:
    """The (uid, gid) ``docker cp --archive`` gives extracted files: moby getUIDGID over ``Config.User``
    (an empty user or group is 0; a uid without a passwd entry keeps gid 0; a name must exist)."""
    user_part, _, group_part = spec.partition(":")
    uid = gid = 0
    if user_part:
        number, name = _id_or_name(user_part)
        try:
            found = [
                (p_uid, p_gid)
                for p_name, p_uid, p_gid, _ in _passwd(_entries(root, "/etc/passwd"))
                if (p_name == name if name else p_uid == number)
            ]
        except UserLookupError as exc:
            if name:
                raise UserLookupError(f'failed to look up user "{name}" in container: {exc}') from None
            found = []
        if found:
            uid, gid = found[0]
        elif name:
            raise UserLookupError(
                f'failed to look up user "{name}" in container: no matching entries in passwd file'
            )
        else:
            uid = number or 0
    if group_part:
        number, name = _id_or_name(group_part)
        if not name:
            gid = number or 0
        else:
            try:
                groups = [g for g_name, g, _ in _group(_entries(root, "/etc/group")) if g_name == name]
            except UserLookupError as exc:
                raise UserLookupError(f'failed to look up group "{name}" in container: {exc}') from None
            if not groups:
                raise UserLookupError(
                    f'failed to look up group "{name}" in container: no matching entries in group file'
                )
            gid = groups[0]
    return uid, gid
