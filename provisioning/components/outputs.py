"""The `nextSteps` stack output: what the operator does after this `up`, depending on where the stack is."""

from __future__ import annotations

from provisioning.config import Settings

#: Who may create the HR connector, in every cloud: Purview's Data Connector Admin role. Microsoft's current pages say
#: so for commercial (https://learn.microsoft.com/purview/import-hr-data) and for the US Government clouds, GCC, GCC
#: High and DoD (https://learn.microsoft.com/purview/import-hr-data-us-government): "The user who creates the HR
#: connector in Step 3 must be assigned the Data Connector Admin role". Older versions of the US Government page
#: named Exchange Online's Mailbox Import Export role instead: only what to try if the portal refuses.
CONNECTOR_ROLE = "Data Connector Admin"
LEGACY_ROLE = "Mailbox Import Export"
ROLE_FALLBACK = (f"if the portal refuses, an older Microsoft page named Exchange Online's {LEGACY_ROLE} role: "
                 "try adding it")


def purview_role(settings: Settings) -> str:
    """The role whoever creates HR connectors needs: Data Connector Admin in every cloud (see CONNECTOR_ROLE)."""
    del settings  # the same in every cloud since Microsoft's US Government page was updated
    return CONNECTOR_ROLE


def next_steps(settings: Settings, application_id: str) -> str:
    """Plain text; never contains a secret."""
    if not settings.connectors:
        return (
            f"1. In the Microsoft Purview portal (role: {purview_role(settings)}; {ROLE_FALLBACK}), create an HR "
            "connector and enter "
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
