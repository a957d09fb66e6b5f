"""refd's image store: content-addressed images and layers, load/save/import, tar safety.

``store.ImageStore`` is the entry point (see its module docstring for the interface the
container runtime calls); ``layers`` holds the overlay2/vfs drivers and tar-split,
``tarsafe`` the hostile-input-safe extractor, ``reference`` docker reference parsing and
``changes`` the Dockerfile ``--change`` instructions.
"""

from .store import Image, ImageStore, StorageInitError

__all__ = ["Image", "ImageStore", "StorageInitError"]
