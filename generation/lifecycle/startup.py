"""Loading of the models marked "load at start-up", and the readiness it decides.

The loads are retried until they succeed, so that a pod heals by itself: one started
while the database was down reads the catalog once it is back, and a start-up model
that failed to load is tried again after its back-off (the engine cache's), e.g. once
its file has been put in place.
"""

import logging
import threading
import time

from django.db import DatabaseError, connections

from catalog.selectors import startup_engine_configs
from common.errors import ModelUnavailable
from generation.engine.cache import EngineCache

logger = logging.getLogger(__name__)

# Retries while the catalog cannot be read: from 1 s, doubling, to 30 s.
CATALOG_RETRY_SECONDS = (1.0, 30.0)
# How often failed start-up models are looked at again (each is tried after its own back-off).
MODEL_RETRY_SECONDS = 5.0


class StartupLoads:
    """Loads the start-up models, again and again until every one has loaded.

    A model that fails is recorded by the engine cache (which readiness reads, for the
    catalog as it is now), not here; `errors` holds what kept the loads from running at all.
    """

    def __init__(self, engine_cache: EngineCache):
        self.engine_cache = engine_cache
        self.started = threading.Event()
        self.finished = threading.Event()  # the first pass is over
        self.errors: dict[str, str] = {}

    def run(self) -> None:
        self.started.set()
        catalog_retry = CATALOG_RETRY_SECONDS[0]
        while True:
            try:
                all_loaded = self._load_all()
                self.errors.pop("catalog", None)
                catalog_retry = CATALOG_RETRY_SECONDS[0]
            except DatabaseError as exc:
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                logger.warning("start-up models: the catalog cannot be read (%s); retrying in %.0f s",
                               first_line, catalog_retry)
                self.errors["catalog"] = first_line
                all_loaded = False
            finally:
                connections.close_all()  # this thread's own; the next pass opens fresh ones
                self.finished.set()
            if all_loaded:
                return
            time.sleep(catalog_retry if "catalog" in self.errors else MODEL_RETRY_SECONDS)
            if "catalog" in self.errors:
                catalog_retry = min(catalog_retry * 2, CATALOG_RETRY_SECONDS[1])

    def start(self) -> None:
        """Run in a thread of its own, once."""
        if not self.started.is_set():
            self.started.set()
            threading.Thread(target=self.run, name="startup loads", daemon=True).start()

    def _load_all(self) -> bool:
        """Load every start-up model not loaded yet; True when all are."""
        all_loaded = True
        for config in startup_engine_configs():
            try:
                self.engine_cache.load(config)
            except ModelUnavailable:
                all_loaded = False  # logged and kept by the engine cache, with its back-off
        return all_loaded

