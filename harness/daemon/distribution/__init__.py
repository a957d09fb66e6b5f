"""Image distribution: pull, push and login against registries (API v2), as dockerd 28.5's graphdriver path.

- ``service``: registry settings (``registry-mirrors``, ``insecure-registries``, ``certs.d``) and the
  endpoints a host resolves to, as moby ``registry/service_v2.go``;
- ``transport``: HTTP(S) requests with Go's ``net/http`` error texts;
- ``challenges``: ``WWW-Authenticate`` challenges; ``errorbody``: registry error responses
  (HandleErrorResponse);
- ``auth``: basic and bearer-token authorisation, ``X-Registry-Auth``;
- ``client``: one repository on one endpoint (tags, manifests, blobs, uploads, mounts);
- ``options``: what a pull or push runs with, from the daemon's settings;
- ``progress``: the JSON progress stream (``pkg/streamformatter``, ``pkg/progress``);
- ``metadata``: the ``distribution/`` metadata store (``v2metadata-by-diffid``, ``diffid-by-digest``);
- ``pull``, ``push``, ``login``: the operations, as moby ``distribution/pull_v2.go``, ``push_v2.go`` and
  ``registry/auth.go``.

Standard library only (``http.client``, ``ssl``), like the rest of refd.
"""
