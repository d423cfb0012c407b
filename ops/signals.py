"""A django-q2 worker that finished a job stamps the watchdog's heartbeat (ops/watchdog.py).
The receiver stays fast."""

from django.dispatch import receiver
from django_q.signals import post_execute_in_worker

from ops import watchdog


@receiver(post_execute_in_worker)
def job_finished(sender, task, **kwargs):
    watchdog.job_finished(task)
