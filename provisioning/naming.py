"""Names of the stack's Azure resources: readable, globally unique where Azure needs it, stable per stack."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from uploader.model.stackfile import STACK_NAME_RE

#: X.509's upper bound on a subject common name, ub-common-name INTEGER ::= 64 (RFC 5280, Appendix A.1):
#: https://www.rfc-editor.org/rfc/rfc5280#appendix-A.1 ; the app's certificate subject carries the whole stack name.
MAX_COMMON_NAME = 64


# The length and character limits below are Azure's naming rules per resource type (resource groups 1-90, Key
# Vault vaults, storage accounts, container registries, Container Apps jobs):
# https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
@dataclass(frozen=True)
class Names:
    """Physical names for one stack (Key Vault, storage and registry names are global, so they carry a suffix)."""

    stack: str
    tenant_id: str

    @property
    def _slug(self) -> str:
        return re.sub(r"[^a-z0-9]", "", self.stack.lower())[:10] or "stack"

    @property
    def _suffix(self) -> str:
        return hashlib.sha256(f"{self.stack}/{self.tenant_id}".encode()).hexdigest()[:6]

    @property
    def resource_group(self) -> str:
        return f"rg-hr-connector-{re.sub(r'[^A-Za-z0-9-]', '-', self.stack)}"[:90]

    @property
    def key_vault(self) -> str:  # 3-24: letters, digits, hyphens
        return f"kv-hr-{self._slug}-{self._suffix}"[:24]

    @property
    def storage_account(self) -> str:  # 3-24: lower-case letters and digits
        return f"sthr{self._slug}{self._suffix}"[:24]

    @property
    def query_storage_account(self) -> str:  # network: private: the workspace's saved queries (environment.py)
        return f"sthrq{self._slug}{self._suffix}"[:24]

    @property
    def registry(self) -> str:  # 5-50: letters and digits
        return f"acrhr{self._slug}{self._suffix}"

    @property
    def job(self) -> str:  # Container Apps: lower-case, digits, hyphens, at most 32
        slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", self.stack.lower()))  # no "--" allowed
        return f"hr-upload-{slug}"[:32].rstrip("-")

    @property
    def hosted_job(self) -> str:
        """A hosted tenant's job: unique among every tenant of the shared environment. The stack name when it fits
        (stack names are unique in a project); else truncated with a hash of the whole stack name. Never the
        self-contained job's name, so moving in creates the new job before the old one goes (no name clash)."""
        full = f"hr-hosted-{re.sub(r'-{2,}', '-', re.sub(r'[^a-z0-9-]', '-', self.stack.lower()))}".rstrip("-")
        if len(full) <= 32:
            return full
        digest = hashlib.sha256(self.stack.encode()).hexdigest()[:6]
        return f"{full[:25].rstrip('-')}-{digest}"

    @property
    def hub_link(self) -> str:
        """This stack's name among every stack's in the runner's hub network (network.py): the hub VNet's peering
        back to it and its link in each central private DNS zone. Unique per stack (the whole stack name, and a
        hash so that the name ends with a letter or digit); 1-80 characters as both take
        (https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules)."""
        return f"hr-connector-{self.stack}-{hashlib.sha256(self.stack.encode()).hexdigest()[:6]}"

    @property
    def environment(self) -> str:
        return f"cae-hr-{self._slug}-{self._suffix}"

    @property
    def app_display_name(self) -> str:
        return f"hr-connector ({self.stack})"

    @property
    def certificate_subject(self) -> str:
        return f"hr-connector-{self.stack}"


def max_stack_name_length() -> int:
    """The longest stack name the program can build: the certificate subject (`hr-connector-<stack>`) is the
    only name that carries the whole stack name without truncating it, and it must fit a 64-character CN."""
    return MAX_COMMON_NAME - len(Names("", "").certificate_subject)


def stack_name_problem(stack: str) -> str | None:
    """Why the program cannot build resources for this stack name, or None. A stack name is plain text: it is shown
    in pull-request comments, job names and resource names, so it never holds markup, spaces or control characters."""
    if stack in (".", "..") or not STACK_NAME_RE.match(stack):
        return ("a stack name is 1-100 letters, digits, '-', '_' or '.' (Pulumi's rule; it appears in pull-request "
                "comments and resource names): rename the file Pulumi.<name>.yaml")
    limit = max_stack_name_length()
    if len(stack) > limit:
        return (f"the stack name has {len(stack)} characters; at most {limit} fit the app certificate's subject "
                f"({Names(stack, '').certificate_subject[:16]}..., an X.509 common name is at most "
                f"{MAX_COMMON_NAME} characters): choose a shorter name")
    return None


def role_definition_id(subscription_id: str, role_guid: str) -> str:
    """A built-in role's definition ID in one subscription (the form ARM expects in role assignments)."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
