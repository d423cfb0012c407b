"""Provider unavailable: move their patients to other providers, or to the waitlist (SPEC 6).

Work in progress: the contract (signature, WorkflowError, WorkflowSummary.as_dict) is fixed.
"""

from dataclasses import dataclass, field

from scheduling.models import SchedulingError


class WorkflowError(SchedulingError):
    """The workflow cannot run as asked (inactive provider, bad dates); shown to the user."""


@dataclass
class WorkflowSummary:
    unavailability_id: int
    provider_id: int
    start_date: object
    end_date: object
    reassigned: list = field(default_factory=list)
    waitlisted: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    @property
    def affected(self):
        return len(self.reassigned) + len(self.waitlisted) + len(self.skipped)

    def as_dict(self):
        return {
            "unavailability": self.unavailability_id,
            "provider": self.provider_id,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "affected": self.affected,
            "reassigned": list(self.reassigned),
            "waitlisted": list(self.waitlisted),
            "skipped": list(self.skipped),
        }


def mark_provider_unavailable(provider, start_date, end_date, reason, by="staff") -> WorkflowSummary:
    raise NotImplementedError("scheduling.reassignment is being written (issue 4)")
