"""The catalog as requests read it: its rows kept in memory, and read again once they changed.

Reading the catalog on every request cost 4 to 5 ms of the first token (two queries,
through a thread hop: docs/performance.md). Its rows are now read once and kept until
the catalog changes:

- a save or a delete of a model entry or of the service settings in this process (the
  admin's, on this process): forgotten at once and again when its transaction commits
  (forget_now_and_when_committed, connected by catalog.apps);
- the same in another process (another replica, `manage.py shell`): forgotten at once
  where Redis is the channel layer (generation.lifecycle.catalog_events tells every process), and
  otherwise at this process's next heartbeat, which compares the catalog's version
  (generation.lifecycle.load_state; LLM_HEARTBEAT_SECONDS, 5 s by default).

Writes that send no signal (`QuerySet.update`, raw SQL) are noticed by the version only
when they change `updated_at` or the number of entries.
"""

import threading
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, Max

from catalog.models import ModelEntry, ServiceSettings


@dataclass(frozen=True)
class Catalog:
    service: ServiceSettings
    entries: dict[str, ModelEntry]  # by model id
    version: tuple
    # Each entry as requests are served it (catalog.selectors.servable_model: its engine
    # settings, its sampling defaults merged), made at its first request and kept with this
    # snapshot: any change of the catalog makes a new snapshot, which makes them afresh.
    servable: dict = field(default_factory=dict, compare=False, repr=False)

    def entry_named(self, name: str) -> ModelEntry | None:
        """The entry of this id, else of this alias (an id is unique among ids and aliases: ModelEntry.clean)."""
        if name in self.entries:
            return self.entries[name]
        return next((entry for entry in self.entries.values() if name in entry.aliases), None)


def current_version() -> tuple:
    """What changes whenever an entry or the service settings are saved, added or deleted (one query each)."""
    entries = ModelEntry.objects.aggregate(count=Count("pk"), changed=Max("updated_at"))
    service = ServiceSettings.objects.filter(pk=1).values_list("updated_at", flat=True).first()
    return entries["count"], entries["changed"], service


_lock = threading.Lock()
_catalog: Catalog | None = None
_forgotten = 0  # how many times it was forgotten: a read that a change overtook is not kept


def cached() -> Catalog | None:
    """The catalog in memory, without touching the database; None when it must be read."""
    return _catalog


def load() -> Catalog:
    """The catalog in memory, read from the database first if needed."""
    global _catalog
    with _lock:
        catalog, forgotten = _catalog, _forgotten
    if catalog is not None:
        return catalog
    # The version first: a change made during the reads below shows at the next comparison.
    version = current_version()
    service = ServiceSettings.load()
    catalog = Catalog(service=service, entries={entry.model_id: entry for entry in ModelEntry.objects.all()},
                      version=version)
    with _lock:
        if _forgotten == forgotten:
            _catalog = catalog
    return catalog


def forget() -> None:
    """Have the next request read the catalog again."""
    global _catalog, _forgotten
    with _lock:
        _catalog = None
        _forgotten += 1


def forget_if_changed() -> None:
    """Forget the catalog in memory if the database's has changed since it was read (another process's change)."""
    catalog = _catalog
    if catalog is not None and current_version() != catalog.version:
        forget()


def forget_now_and_when_committed(sender, **kwargs) -> None:
    # Now, for the reads of this transaction; and once it commits, because a request
    # meanwhile may have read and kept the rows as they were before it.
    forget()
    transaction.on_commit(forget)
