"""The alert tests run over both stores, with the store suite's fixtures."""

from tests.store.conftest import reopen, store, store_url

__all__ = ["reopen", "store", "store_url"]
