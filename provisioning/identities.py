"""The pipeline's deploy identities: who signs in to which side of a stack, and what each needs in Entra.

Every stack has two sides (docs/configuration.md#two-sides-of-a-stack): the Azure side (the subscription, and the
directory that manages it: `azureTenantId`) and the Microsoft 365 side (`tenantId`, where the app registration
lives). Azure Resource Manager takes a token only from "a tenant that can manage the subscription"
(https://learn.microsoft.com/azure/azure-resource-manager/management/authenticate-multi-tenant), and Microsoft Graph
creates the app in the directory the token is for, so a deploy job signs in twice, once per side. Two models
(docs/gitops.md#3-deploy-identities):

- MULTI_TENANT: one multi-tenant deploy app in the platform's directory, trusted by GitHub through federated
  credentials (https://learn.microsoft.com/entra/workload-id/workload-identity-federation), given admin consent in
  each Microsoft 365 tenant (https://learn.microsoft.com/entra/identity-platform/howto-convert-app-to-be-multi-tenant;
  the consent URL: admin_consent_url) for the Graph permission DEPLOY_GRAPH_PERMISSION, and Azure roles on each
  Azure side it deploys to;
- PER_TENANT: one deploy app per Microsoft 365 tenant, registered there, for the Graph side only (GRAPH_CLIENT_ID),
  plus the platform's identity for the Azure side (AZURE_CLIENT_ID).

Pure data and text: no Pulumi, no network (new-stack prints from it; the platform program declares from it).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from uploader.clouds import Cloud

MULTI_TENANT = "multi-tenant"
PER_TENANT = "per-tenant"
MODELS = (MULTI_TENANT, PER_TENANT)

#: Microsoft Graph's application ID, the same in every national cloud (the permissions reference reads the app
#: roles from servicePrincipals(appId='00000003-0000-0000-c000-000000000000'):
#: https://learn.microsoft.com/graph/permissions-reference).
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


@dataclass(frozen=True)
class GraphPermission:
    """A Microsoft Graph application permission (app role): its name and ID
    (https://learn.microsoft.com/graph/permissions-reference)."""

    name: str
    id: str


#: What the deploy identity needs on the Microsoft 365 side: create the app registration, its service principal and
#: certificate credential, and manage only the apps it owns ("Allows the app to create other applications, and fully
#: manage those applications ... It cannot update any apps that it is not an owner of").
DEPLOY_GRAPH_PERMISSION = GraphPermission("Application.ReadWrite.OwnedBy", "18a4783c-866b-4cc7-a460-3d5e5662c884")
#: What the preview and drift identity needs there: read the app registration (no write).
PREVIEW_GRAPH_PERMISSION = GraphPermission("Application.Read.All", "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30")

#: The GitHub environments the preview and the daily drift check run in (one federated credential each).
PREVIEW_ENVIRONMENT = "preview"
DRIFT_ENVIRONMENT = "drift"
#: GitHub's OIDC issuer, what every federated credential names
#: (https://docs.github.com/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect).
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
#: The label of the platform's self-hosted runner (components/runner.py), one per Azure environment (a platform stack
#: serves one, and a runner in one does not reach the other's networks): the jobs of `network: private` stacks run on
#: `runs-on: [self-hosted, <label>]` (tools/fleet.py's matrix rows), and the runner registers with it ("self-hosted" is
#: a label every self-hosted runner has: https://docs.github.com/actions/hosting-your-own-runners/
#: managing-self-hosted-runners/using-self-hosted-runners-in-a-workflow).
PRIVATE_RUNNER_LABEL_PREFIX = "hr-connector-private-"


def private_runner_label(azure_environment: str) -> str:
    """`hr-connector-private-public` or `hr-connector-private-usgovernment`."""
    return f"{PRIVATE_RUNNER_LABEL_PREFIX}{azure_environment}"


#: Where every other stack's jobs run (a GitHub-hosted runner).
HOSTED_RUNNER_LABEL = "ubuntu-latest"


def federated_subject(repository: str, environment: str) -> str:
    """The subject GitHub puts in a job's OIDC token when the job runs in `environment`:
    `repo:OWNER/REPO:environment:NAME` (GitHub's "Example subject claims")."""
    return f"repo:{repository}:environment:{environment}"


def admin_consent_url(cloud: Cloud, tenant_id: str, client_id: str) -> str:
    """Where an administrator of `tenant_id` grants a multi-tenant app the permissions it requests, tenant-wide:
    `https://login.microsoftonline.com/{organization}/adminconsent?client_id={client-id}`
    (https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent), on the cloud's own Entra
    host (login.microsoftonline.us for GCC High and DoD:
    https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud)."""
    return (f"{cloud.authority_host.rstrip('/')}/{quote(tenant_id, safe='')}/adminconsent"
            f"?client_id={quote(client_id, safe='')}")


def consent_instructions(cloud: Cloud, tenant_id: str, client_id: str | None) -> list[str]:
    """What new-stack prints for the multi-tenant model: the consent URL and the exact Graph permission. Consent to
    Microsoft Graph app roles takes Privileged Role Administrator (Cloud Application Administrator and Application
    Administrator may not: https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent)."""
    url = admin_consent_url(cloud, tenant_id, client_id or "CLIENT_ID")
    if not client_id:  # a placeholder to fill in, shown as such (not URL-escaped)
        url = url.replace("client_id=CLIENT_ID", "client_id=<deploy app client ID>")
    return [
        f"multi-tenant deploy app (docs/gitops.md#3-deploy-identities): an administrator of tenant {tenant_id} "
        f"with the Privileged Role Administrator role opens {url} "
        f"and consents to the Microsoft Graph ({cloud.graph_url}) application permission "
        f"{DEPLOY_GRAPH_PERMISSION.name} ({DEPLOY_GRAPH_PERMISSION.id}), the one permission it requests "
        f"(the preview app: {PREVIEW_GRAPH_PERMISSION.name}, {PREVIEW_GRAPH_PERMISSION.id})",
    ]
