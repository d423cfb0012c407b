"""The shared cache, Redis, with this process's memory standing in while Redis does not answer.

The cache holds only counts that may be lost: the throttles' request histories (clinic/access.py)
and the unhandled-error counter (clinic/errors.py). The login lockout is not among them: it is
kept in the database (django-axes' database handler). So when Redis stops, nothing is worth
refusing a request for: each process counts in its own memory instead (a client then gets its
limit once per web process, not once in all), says so once in the log, and /metrics says so
(`backfill_shared_cache_up`), until Redis answers again. Sessions are in the database, and
the queue's outage is handled where jobs are enqueued (backfill.models.enqueue_backfill).
"""

import logging
import time

import redis
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

log = logging.getLogger("clinic.cache")

# After a failure Redis is left alone this long, so a request does not wait on a dead
# server's timeout each time; then the next operation tries it again.
RETRY_SECONDS = 5.0

# What this process has seen, for /metrics.
state = {"down_since": None, "fallback_operations": 0}


def fallback_operations():
    return state["fallback_operations"]


class RedisWithLocalFallback(RedisCache):
    """django's RedisCache; while Redis fails, the same operations on a per-process LocMemCache."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self.local = LocMemCache(f"fallback-for-{server}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self.retry_at = 0.0

    def shared(self):
        """Whether Redis answers now (for /metrics: asks it, whatever the last operation found)."""
        try:
            self._cache.get_client(write=False).ping()
        except redis.RedisError as error:
            self.went_down(error)
            return False
        self.came_back()
        return True

    def went_down(self, error):
        self.retry_at = time.monotonic() + RETRY_SECONDS
        if state["down_since"] is None:
            state["down_since"] = time.time()
            log.warning(
                "[CACHE] Redis does not answer (%s: %s): throttles count in each process's memory until it does",
                type(error).__name__,
                error,
            )

    def came_back(self):
        if state["down_since"] is not None:
            log.warning(
                "[CACHE] Redis answers again after %.0f s: throttles count in Redis", time.time() - state["down_since"]
            )
            state["down_since"] = None


def _with_fallback(name):
    def operation(self, *args, **kwargs):
        if time.monotonic() >= self.retry_at:
            try:
                result = getattr(RedisCache, name)(self, *args, **kwargs)
            except redis.RedisError as error:
                self.went_down(error)
            else:
                self.came_back()
                return result
        state["fallback_operations"] += 1
        return getattr(self.local, name)(*args, **kwargs)

    operation.__name__ = name
    return operation


for _name in (
    "add",
    "get",
    "set",
    "touch",
    "delete",
    "get_many",
    "has_key",
    "incr",
    "set_many",
    "delete_many",
    "clear",
):
    setattr(RedisWithLocalFallback, _name, _with_fallback(_name))
