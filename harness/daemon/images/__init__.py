"""refd's images, split as moby splits them; ``service.ImageService`` (``Daemon.images``) holds the stores.

- ``layerstore``: layers by chain ID and containers' read-write layers (moby ``layer/``);
- ``imagestore``: image configs, parents, build and tag metadata (moby ``image/store.go``);
- ``refstore``: tags and digests -> image IDs, ``repositories.json`` (moby ``reference/store.go``);
- ``service``: the stores of one daemon, GetImage, tag, import, image events (moby ``daemon/images``);
- ``delete`` (rmi, prune), ``load`` and ``save`` (moby ``image/tarexport``), ``summaries`` (the
  image list ``docker images`` and ``docker system df`` share), ``inspect`` (the inspect and history
  documents), ``uploads`` (request bodies and downloads spooled under ``<data-root>/tmp``),
  ``commit`` (container diffs as images);
- ``storage_driver`` picks the driver, ``layers`` holds overlay2/vfs and tar-split, ``tarsafe`` the
  hostile-input-safe extractor, ``reference`` docker reference parsing, ``changes`` the ``--change``
  instructions, ``diff`` layer diffs.

Modules are imported by name; this package imports nothing, so loading one part costs only its own
imports.
"""
