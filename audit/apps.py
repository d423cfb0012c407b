from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self):
        import pgtrigger
        from django_q.signals import post_execute_in_worker, pre_execute

        from audit import database, jobs, tracking

        connection_created.connect(database.on_connection_created, dispatch_uid="audit.connection")
        for item in tracking.tracked():
            pgtrigger.register(tracking.pg_trigger(item))(item.model_class)
        post_migrate.connect(tracking.install_on_migrate, sender=self, dispatch_uid="audit.sqlite_triggers")
        pre_execute.connect(jobs.job_started, dispatch_uid="audit.job_started")
        post_execute_in_worker.connect(jobs.job_finished, dispatch_uid="audit.job_finished")
