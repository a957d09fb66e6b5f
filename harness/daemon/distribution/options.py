"""What a pull or a push runs with: the image service, the registry settings, the metadata store, the
progress output, credentials, concurrency, the daemon's log and a cancel flag.

``TransferOptions.from_config`` takes the registry settings from the daemon's configuration
(``registry-mirrors``, ``insecure-registries``; a DistributionError (400) when they are invalid) and
the metadata store from the image store's root; ``PullOptions`` and ``PushOptions`` add their own
knobs (``max-concurrent-downloads``/``max-download-attempts``, ``max-concurrent-uploads``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Self

from ..images.service import ImageService
from .auth import AuthConfig
from .metadata import MetadataStore
from .progress import ProgressOutput
from .service import ServiceConfig

__all__ = ["TransferOptions"]


@dataclass
class TransferOptions:
    store: ImageService
    service: ServiceConfig
    metadata: MetadataStore
    out: ProgressOutput
    creds: AuthConfig = field(default_factory=AuthConfig)
    max_concurrent: int = 3
    log: Any = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    retry_wait: float = 1.0

    @classmethod
    def _from_daemon(
        cls,
        config: Any,
        store: ImageService,
        out: ProgressOutput,
        creds: AuthConfig,
        log: Any,
        cancelled: threading.Event | None,
        **knobs: Any,
    ) -> Self:
        service = ServiceConfig.from_daemon_config(config)
        metadata = MetadataStore.under(store.root)
        return cls(
            store, service, metadata, out, creds, log=log, cancelled=cancelled or threading.Event(), **knobs
        )

    def info(self, text: str) -> None:
        if self.log is not None:
            self.log.info(text)

    def debug(self, text: str) -> None:
        if self.log is not None:
            self.log.debug(text)

    def error(self, text: str) -> None:
        if self.log is not None:
            self.log.error(text)
