"""Putting jobs on django-q2's queue through one broker per process.

Given no broker, django-q2's `async_task` builds a new one for every job; on Redis that is
a new connection per job, which cost more CPU than the rest of the enqueue (profiled with
`bench/workload.py --profile`). redis-py's pool notices a fork and reconnects in the child,
so one broker per process is safe for the web server and the cluster's workers alike.
"""

import functools

from django_q.brokers import get_broker
from django_q.tasks import async_task


@functools.cache
def shared_broker():
    return get_broker()


def enqueue(func, *args, **options):
    return async_task(func, *args, broker=shared_broker(), **options)
