"""The `nextSteps` stack output: what the operator does after this `up`, depending on where the stack is."""

from __future__ import annotations

from provisioning.config import Settings

#: Who may create the HR connector. Commercial: Purview's Data Connector Admin role
#: (https://learn.microsoft.com/purview/import-hr-data). GCC, GCC High and DoD follow the US Government page, which
#: requires the Exchange Online Mailbox Import Export role; the commercial page sends GCC tenants to it
#: (https://learn.microsoft.com/purview/import-hr-data-us-government).
US_GOVERNMENT_ROLE = "Mailbox Import Export (Exchange Online role, US Government clouds)"
COMMERCIAL_ROLE = "Data Connector Admin"


def purview_role(settings: Settings) -> str:
    """The role whoever creates HR connectors in this cloud needs."""
    if settings.cloud.name in ("gcc", "gcchigh", "dod"):
        return US_GOVERNMENT_ROLE
    return COMMERCIAL_ROLE


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
