"""Alerting on failed job executions: an action group e-mailing `alertEmails`, and a log alert on the job.

Only declared when the stack sets alertEmails. The log alert runs every 15 minutes over the Container Apps
environment's Log Analytics workspace and fires when the job's system log reports an execution that failed
(its replica exited non-zero after the retry, or timed out), or when the uploader's run summary reports a
non-zero exit code: 1 when an upload failed, 3 when a file was rejected, so both reach the operators.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import monitor

from provisioning.config import Settings

# Two witnesses, either enough: the platform's record of a failed execution, and the uploader's own
# `run_summary` JSON line (always printed by `uploader run`) with a non-zero exit code. Each table is referenced
# directly as a parenthesized leg of `union isfuzzy=true`, the form Microsoft documents for sources that may not
# exist yet: fuzzy resolution "only applies to the phase of the union sources resolution", so a table bound in a
# `let` statement would fail to resolve before the union sees it
# (https://learn.microsoft.com/kusto/query/union-operator). `column_ifexists` covers columns not logged yet.
FAILED_EXECUTIONS_QUERY = """\
let job = "{job}";
union isfuzzy=true
    (ContainerAppSystemLogs_CL
    | where column_ifexists("JobName_s", "") == job or column_ifexists("ContainerAppName_s", "") == job
    | where column_ifexists("Reason_s", "")
        in~ ("BackoffLimitExceeded", "DeadlineExceeded", "Failed", "ExecutionFailed")),
    (ContainerAppConsoleLogs_CL
    | where column_ifexists("ContainerJobName_s", "") == job or column_ifexists("ContainerAppName_s", "") == job
    | where column_ifexists("Log_s", "") has "run_summary" and not(column_ifexists("Log_s", "") has '"exit_code": 0'))
"""


class Alerts(pulumi.ComponentResource):
    """Action group + scheduled query rule on failed executions of one job."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        resource_group_name: pulumi.Input[str],
        *,
        job_name: pulumi.Input[str],
        workspace_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("hr-connector:index:Alerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.action_group = monitor.ActionGroup(
            f"{name}-action-group",
            resource_group_name=resource_group_name,
            location="global",  # action groups are global resources
            group_short_name="hr-connect",  # at most 12 characters
            # (both: https://learn.microsoft.com/azure/templates/microsoft.insights/actiongroups)
            enabled=True,
            email_receivers=[
                monitor.MicrosoftCommonEmailReceiverArgs(
                    name=f"email-{i}", email_address=address, use_common_alert_schema=True,
                )
                for i, address in enumerate(settings.alert_emails)
            ],
            opts=child,
        )
        self.rule = monitor.ScheduledQueryRule(
            f"{name}-failed-executions",
            resource_group_name=resource_group_name,
            location=settings.location,
            display_name=pulumi.Output.concat("hr-connector: upload job failed (", job_name, ")"),
            description="An execution of the HR connector upload job failed; see the job's execution history.",
            severity=2,
            enabled=True,
            kind=monitor.Kind.LOG_ALERT,
            scopes=[workspace_id],
            # ISO 8601 durations, as the REST API takes them
            # (https://learn.microsoft.com/azure/templates/microsoft.insights/scheduledqueryrules)
            evaluation_frequency="PT15M",
            window_size="PT15M",
            criteria=monitor.ScheduledQueryRuleCriteriaArgs(all_of=[
                monitor.ConditionArgs(
                    query=pulumi.Output.from_input(job_name).apply(
                        lambda job: FAILED_EXECUTIONS_QUERY.format(job=job)
                    ),
                    time_aggregation=monitor.TimeAggregation.COUNT,
                    operator="GreaterThan",  # API value; monitor.ConditionOperator is another API's enum
                    threshold=0,
                    failing_periods=monitor.ConditionFailingPeriodsArgs(
                        number_of_evaluation_periods=1, min_failing_periods_to_alert=1,
                    ),
                ),
            ]),
            actions=monitor.ActionsArgs(action_groups=[self.action_group.id]),
            auto_mitigate=True,
            # the workspace's ContainerAppSystemLogs_CL table only exists once the environment has logged
            skip_query_validation=True,
            opts=child,
        )
        self.register_outputs({})
