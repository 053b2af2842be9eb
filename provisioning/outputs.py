"""The `nextSteps` stack output: what the operator does after this `up`, depending on where the stack is."""

from __future__ import annotations

from .config import Settings


def purview_role(settings: Settings) -> str:
    """The Purview role that may create HR connectors in this cloud."""
    if settings.cloud.name in ("gcchigh", "dod"):
        return "Mailbox Import Export (GCC High and DoD)"
    return "Data Connector Admin"


def next_steps(settings: Settings, application_id: str) -> str:
    """Plain text; never contains a secret."""
    if not settings.connectors:
        return (
            f"1. In the Microsoft Purview portal (role: {purview_role(settings)}), create an HR connector and enter "
            f"App ID {application_id}. "
            "2. Copy the connector's job ID and your CSV column mapping into hr-connector:connectors in this "
            "stack's file. "
            "3. Run `pulumi up` again: the scheduled job then uploads files dropped in the drop zone's incoming/."
        )
    jobs = ", ".join(c.job_id for c in settings.connectors)
    return (
        f"Uploading on schedule '{settings.schedule}' (UTC) for connector job(s) {jobs}. "
        "Drop CSV exports under incoming/ in the drop zone; see processed/ and rejected/ for outcomes. "
        f"To add a connector: create it in Purview with App ID {application_id}, add it to "
        "hr-connector:connectors, `pulumi up`."
    )
