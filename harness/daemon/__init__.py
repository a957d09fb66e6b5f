"""refd: the in-repo reference daemon speaking the Docker Engine API.

refd stands alone: nothing here imports the rest of ``harness``, ``suites`` or
``conformance``; the harness reaches refd only as a process, like dockerd.
"""

__all__ = ["API_VERSION", "ENGINE_VERSION", "MIN_API_VERSION", "REFD_VERSION"]

#: refd's own release.
REFD_VERSION = "0.1.0"
#: The upstream engine release whose behaviour refd follows (the newest Debian ships).
ENGINE_VERSION = "28.5.2-refd"
#: Highest Engine API version served (dockerd 28.5).
API_VERSION = "1.51"
#: Lowest Engine API version accepted (dockerd 28's default minimum).
MIN_API_VERSION = "1.24"
