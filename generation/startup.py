"""Loading of the models marked "load at start-up", and the readiness it decides."""

import logging
import threading

from generation.errors import ModelUnavailable

logger = logging.getLogger(__name__)


class StartupLoads:
    """Loads the start-up models once. A model that fails is recorded by the engine cache
    (which readiness reads, for the catalog as it is now), not here."""

    def __init__(self):
        self.started = threading.Event()
        self.finished = threading.Event()
        self.errors: dict[str, str] = {}  # what kept the start-up loads from running at all

    def run(self) -> None:
        from catalog.selectors import startup_engine_configs
        from generation.service import engine_cache

        self.started.set()
        try:
            for config in startup_engine_configs():
                try:
                    engine_cache().load(config)
                except ModelUnavailable:
                    pass  # logged and kept by the engine cache
        except Exception as exc:  # e.g. the database is unreachable at start
            logger.exception("start-up model loading failed")
            self.errors["catalog"] = str(exc)
        finally:
            self.finished.set()


startup_loads = StartupLoads()


def load_startup_models_in_background() -> None:
    if not startup_loads.started.is_set():
        threading.Thread(target=startup_loads.run, name="startup loads", daemon=True).start()
