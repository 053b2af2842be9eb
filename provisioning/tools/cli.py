"""`python -m provisioning new-stack | check | render | render-diff | matrix | certs | status | fleet`: tools for a
fleet.

Exit codes: 0 ok; 2 usage or config problem (bad flag, bad stack name, a config key breaking a rule);
1 the program failed to evaluate under mocks, a certificate is expiring, or a stack's operation failed.
new-stack, check, render, render-diff and matrix are offline (no Pulumi CLI, credentials or network);
certs (unless given exported outputs) and fleet drive the Pulumi CLI against the real state.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from provisioning.config import ConfigError, all_problems
from provisioning.tools import fleet
from provisioning.tools.fleetrun import OPERATIONS, pulumi_cli
from provisioning.tools.inventory import DEFAULT_WARN_DAYS
from provisioning.tools.status import Run, StatusError
from uploader.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from uploader.model import sink
from uploader.model.safetext import safe_text


def _stacks_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stacks-dir", metavar="DIR",
        help=f"where the Pulumi.<stack>.yaml files are (default: stacks/; env {fleet.STACKS_DIR_ENV})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = sink.ArgumentParser(
        prog="python -m provisioning",
        description="Offline tools for the hr-connector stacks: add a tenant, check and render stack files.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    new = sub.add_parser("new-stack", help="write stacks/Pulumi.NAME.yaml for a new tenant or hosting stack",
                         description="Write a commented stack file with the cloud's defaults; never overwrites.")
    new.add_argument("name", metavar="NAME", help="the stack name (letters, digits, '-', '_', '.')")
    new.add_argument("--cloud", required=True, help="commercial | gcc | gcchigh | dod")
    new.add_argument("--tenant-id", help="the Microsoft 365 tenant's ID (a GUID); required unless --hosting")
    new.add_argument("--hosting", action="store_true",
                     help="a hosting stack: the environment, workspace, registry (none with --image) and action "
                          "group that hosted "
                          "tenants of one cloud family, subscription and region share (needs --location and "
                          "--alert-email; docs/fleet.md#hosting)")
    new.add_argument("--hosted-by", metavar="HOSTING",
                     help="run this tenant's job in hosting stack HOSTING (NAME or org/project/NAME); location "
                          "and subscription default to its")
    new.add_argument("--alert-email", action="append", default=[], metavar="ADDRESS",
                     help="told when a job execution fails (repeatable; required with --hosting)")
    new.add_argument("--location", help="Azure region (default: eastus, or usgovvirginia for Azure Government)")
    new.add_argument("--azure-environment", metavar="ENV",
                     help="Azure for hosting: public | usgovernment (default: the cloud's; gcchigh and dod need "
                          "usgovernment)")
    new.add_argument("--image", metavar="REF",
                     help="a prebuilt uploader image pinned by digest, REGISTRY/REPOSITORY@sha256:<64 hex> (default: "
                          "built from uploader/Dockerfile into a registry of the stack's own; a hosted tenant takes "
                          "its hosting stack's if that sets one); required for a network: private tenant that is "
                          "not hosted and for a network: private hosting stack (docs/releases.md)")
    new.add_argument("--owner", action="append", default=[], metavar="OBJECT_ID",
                     help="an Entra object ID that co-owns the app registration (repeatable)")
    new.add_argument("--subscription-id", metavar="ID", help="the Azure subscription (default: the deployer's)")
    new.add_argument("--azure-tenant-id", metavar="GUID",
                     help="the Entra tenant that manages the subscription (the Azure side; default: --tenant-id; a "
                          "hosted tenant takes its hosting stack's; required with --hosting)")
    new.add_argument("--deploy-app-id", metavar="CLIENT_ID",
                     help="the multi-tenant deploy app's client ID, for the admin consent URL the next steps print")
    new.add_argument("--schedule", metavar="CRON",
                     help="when the job runs, 5-field cron in UTC, e.g. \"30 3 * * *\" (default: daily at a minute "
                          "between 00:00 and 06:00 UTC picked from a hash of NAME, so tenants do not all start "
                          "at once)")
    new.add_argument("--network", choices=("public", "private"),
                     help="public or private (default: private for gcchigh and dod, public otherwise; a hosted tenant "
                          "takes its hosting stack's; docs/configuration.md#network)")
    new.add_argument("--address-space", metavar="CIDR",
                     help="network: private: the stack's VNet range, a /23 or larger (default: the first /23 of "
                          "10.60.0.0/14 that no private stack in the folder uses; docs/configuration.md#network)")
    new.add_argument("--runner-network-from", metavar="FILE",
                     help="network: private: write runnerNetwork from FILE, the platform stack's `pulumi stack "
                          "output --json` or its runnerNetwork object (the stack peers with the deploy runner's "
                          "network and uses its DNS zones)")
    _stacks_dir_arg(new)

    check = sub.add_parser("check", help="validate and evaluate stack files under Pulumi mocks",
                           description="Validate every stack file (or the named ones) and evaluate the program "
                                       "under Pulumi mocks: offline, no credentials. One line per stack.")
    check.add_argument("--stack", nargs="+", metavar="NAME", help="only these stacks")
    check.add_argument("--policy", choices=("fedramp-high", "il5", "mcsb"),
                       help="also check each stack against the Deny-capable members of this Azure Policy initiative "
                            "(Microsoft's definitions, vendored; offline); a stack it would refuse fails")
    _stacks_dir_arg(check)

    render = sub.add_parser("render", help="what the program would declare for one stack (secrets masked)",
                            description="Everything the program declares for a stack under Pulumi mocks: every "
                                        "input and option of every resource and provider, and the stack outputs; "
                                        "secrets masked, values generated at deploy time shown as such. Offline.")
    render.add_argument("--stack", "-s", required=True, metavar="NAME",
                        help="the stack to render (its file is Pulumi.NAME.yaml in the stacks directory)")
    render.add_argument("--json", action="store_true",
                        help="the report as JSON (what render-diff compares) instead of text")
    _stacks_dir_arg(render)

    rdiff = sub.add_parser("render-diff", help="each stack's offline render compared with a base ref (PR comment)",
                           description="Render the selected stacks here and at --base-ref (git archive; the base "
                                       "by its own program), both the way check evaluates a fleet, compare every "
                                       "input and output path, and write a pull-request comment that stays under "
                                       "GitHub's size limit (a table, the changed paths most significant first, the "
                                       "unchanged stacks by name), a longer job summary and everything in full to "
                                       "--details-dir. Progress on stderr. Exit 1 when a stack fails to render.")
    rdiff.add_argument("--base-ref", required=True, metavar="REF", help="the git ref to compare with")
    rwhich = rdiff.add_mutually_exclusive_group(required=True)
    rwhich.add_argument("--all", action="store_true", help="every stack")
    rwhich.add_argument("--stack", nargs="+", metavar="NAME", help="these stacks")
    rwhich.add_argument("--changed-files", metavar="FILE", help="the stacks `matrix --changed-files` selects")
    rdiff.add_argument("--comment", metavar="FILE", help="write the comment body here (default: stdout)")
    rdiff.add_argument("--summary", metavar="FILE", help="append a longer report here (e.g. $GITHUB_STEP_SUMMARY)")
    rdiff.add_argument("--details-dir", metavar="DIR",
                       help="write <stack>.changes (every changed path), <stack>.diff and index.json here")
    rdiff.add_argument("--outputs", metavar="PATH", help="exported stack outputs: adds certificate expiry")
    rdiff.add_argument("--parallel", type=_positive, metavar="N",
                       help="worker processes evaluating stacks, for the base and then this tree (default: one per "
                            "core, at most 4)")
    rdiff.add_argument("--base-stacks-dir", metavar="DIR",
                       help="where the stack files are at REF, relative to the repository root (default: the same "
                            "path as here, or stacks/ for a --stacks-dir outside the repository)")
    _stacks_dir_arg(rdiff)

    matrix = sub.add_parser("matrix", help="the GitHub Actions matrix of stacks a change touches (JSON)",
                            description="Print {\"include\": [...]} with each stack's cloud, tenant and "
                                        "sign-in environment, for the preview and deploy workflows.")
    which = matrix.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every stack")
    which.add_argument("--stack", nargs="+", metavar="NAME", help="these stacks")
    which.add_argument("--changed-files", metavar="FILE",
                       help="a file listing changed paths, one per line (git diff --name-only)")
    matrix.add_argument("--batches", action="store_true",
                        help=f"split into batches of at most {fleet.MATRIX_LIMIT} jobs (GitHub's matrix limit), "
                             "hosting stacks in batches before their tenants: {\"count\": N, \"batches\": [...]}")
    matrix.add_argument("--github-output", metavar="FILE",
                        help="with --batches: also append count, batchN and countN to FILE ($GITHUB_OUTPUT) for "
                             f"each of the workflows' {fleet.MAX_BATCHES} batch jobs")
    _stacks_dir_arg(matrix)

    certs = sub.add_parser("certs", help="every stack's certificate thumbprint, expiry and days left",
                           description="Read each stack's certificate outputs (pulumi stack output --json, or "
                                       "exported files) and list thumbprint, expiry and days left. Exit 1 when "
                                       "any certificate has fewer than --warn-days days left or a stack's "
                                       "outputs cannot be read.")
    certs.add_argument("--stack", nargs="+", metavar="NAME", help="only these stacks (default: every stack file)")
    certs.add_argument("--outputs", metavar="PATH",
                       help="exported outputs instead of the Pulumi CLI: a directory of <stack>.json files "
                            "(pulumi stack output --json) or one JSON file {stack: outputs}")
    certs.add_argument("--warn-days", type=_days, default=DEFAULT_WARN_DAYS, metavar="N",
                       help=f"exit 1 when a certificate has fewer than N days left (default {DEFAULT_WARN_DAYS})")
    certs.add_argument("--json", action="store_true", help="JSON instead of a table")
    certs.add_argument("--pulumi-root", metavar="DIR",
                       help="use DIR/bin/pulumi (default: pulumi on PATH); not needed with --outputs")
    _stacks_dir_arg(certs)

    plat = sub.add_parser("platform", help="the pipeline's own Pulumi program (platform/), offline",
                          description="Evaluate platform/__main__.py (state backend, secrets key, deploy identities, "
                                      "GitHub environments and variables, from the stack files; with its runner "
                                      "config, the deploy network and the self-hosted runner job for network: "
                                      "private stacks) under Pulumi mocks.")
    plat_sub = plat.add_subparsers(dest="platform_command", required=True, metavar="COMMAND")
    prender = plat_sub.add_parser("render", help="what the platform program declares (secrets masked)")
    prender.add_argument("--json", action="store_true", help="JSON instead of text")
    prender.add_argument("--config", metavar="FILE",
                         help="the platform stack's file (default: the one platform/Pulumi.<stack>.yaml)")
    _stacks_dir_arg(prender)

    status = sub.add_parser("status", help="every stack's last upload run, records over 30 days and certificate days "
                            "left, from the run summaries in its workspace (or a file)")
    status.add_argument("--stack", nargs="+", metavar="NAME", help="only these stacks (default: every stack file, or "
                        "every stack in --summaries)")
    status.add_argument("--summaries", metavar="FILE", help="run-summary JSON lines (as the job prints them, or "
                        "ContainerAppConsoleLogs rows exported from a workspace) instead of asking Azure")
    status.add_argument("--outputs", metavar="PATH", help="stack outputs exported earlier (as for certs) instead of "
                        "`pulumi stack output`: where each stack's workspace is")
    status.add_argument("--json", action="store_true", help="JSON instead of a table")
    status.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page (inline SVG charts, no "
                        "script) to FILE")
    status.add_argument("--warn-days", type=_days, default=DEFAULT_WARN_DAYS, metavar="N",
                        help=f"a certificate with fewer days left needs attention (default {DEFAULT_WARN_DAYS})")
    status.add_argument("--pulumi", default="pulumi", metavar="EXE", help="the Pulumi CLI (default: on PATH)")
    status.add_argument("--query-endpoint", metavar="URL", help="sandbox and tests only: this Log Analytics query API "
                        "(https) instead of the cloud's")
    status.add_argument("--authority-host", metavar="URL", help="sandbox and tests only: this Entra authority (https) "
                        "instead of the cloud's, for a service principal's sign-in (AZURE_CLIENT_ID ...)")
    _stacks_dir_arg(status)

    run = sub.add_parser("fleet", help="pulumi preview | up | refresh over many stacks at once (Automation API)",
                         description="Run one Pulumi operation on many stacks, --parallel at a time, each "
                                     "isolated (a failure stops no other stack); hosting stacks first; one log file "
                                     "per stack, a summary table, exit 1 when any stack failed. "
                                     "`fleet OPERATION --help` lists the operation's options.")
    operations = run.add_subparsers(dest="operation", required=True, metavar="OPERATION")
    what = {"preview": ("show what `pulumi up` would change on each stack", "a stack whose preview shows any change "
                        "fails (drift detection)"),
            "up": ("deploy each stack", "a stack whose update changes anything fails"),
            "refresh": ("read each stack's real resources into its state", "a stack whose refresh finds any "
                        "difference fails (drift detection)")}
    for operation in OPERATIONS:
        summary, expect = what[operation]
        op = operations.add_parser(operation, help=summary, description=f"fleet {operation}: {summary}, "
                                   "--parallel at a time, each isolated; hosting stacks first.")
        chosen = op.add_mutually_exclusive_group(required=True)
        chosen.add_argument("--all", action="store_true", help="every stack file")
        chosen.add_argument("--stack", nargs="+", metavar="NAME", help="these stacks")
        op.add_argument("--parallel", type=_positive, default=4, metavar="N", help="stacks at once (default 4)")
        op.add_argument("--pulumi-root", metavar="DIR",
                        help="use DIR/bin/pulumi (default: pulumi on PATH); its version is checked once")
        op.add_argument("--log-dir", default=".fleet-logs", metavar="DIR",
                        help="one <stack>.<operation>.log per stack (default .fleet-logs)")
        op.add_argument("--expect-no-changes", action="store_true", help=expect)
        if operation == "up":
            op.add_argument("--rotate-certificate", action="store_true",
                            help="replace each stack's certificate now (pulumi up --replace <its URN>)")
        op.add_argument("--json", action="store_true", help="the summary as JSON")
        _stacks_dir_arg(op)
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number, 1 or more")
    return int(text)


def _days(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number of days")
    return int(text)


def _plain_values(args: argparse.Namespace) -> None:
    """Every text option is one plain line: a control or invisible character in one (it would break the stack file
    written from it, or hide in it) is refused naming the option, never shown."""
    from uploader.model.safetext import is_invisible

    for dest, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and any(is_invisible(ch) for ch in text):
                flag = dest.upper() if dest == "name" else "--" + dest.replace("_", "-")
                raise fleet.FleetError(f"{flag}: holds a control or invisible character (a line break, an escape "
                                       "sequence, a zero-width or text-direction mark); give it as plain text")


def _new_stack(args: argparse.Namespace) -> int:
    from provisioning.tools.newstack import StackRequest, create_stack, next_steps, read_runner_network

    _plain_values(args)
    runner_network = read_runner_network(Path(args.runner_network_from)) if args.runner_network_from else None
    request = StackRequest(args.name, args.cloud, args.tenant_id or "", location=args.location,
                           azure_environment=args.azure_environment, image=args.image, owners=tuple(args.owner),
                           subscription_id=args.subscription_id, alert_emails=tuple(args.alert_email),
                           hosting=args.hosting, hosted_by=args.hosted_by, azure_tenant_id=args.azure_tenant_id,
                           deploy_app_id=args.deploy_app_id, schedule=args.schedule,
                           network=args.network, address_space=args.address_space, runner_network=runner_network)
    flag = f" --stacks-dir {shlex.quote(args.stacks_dir)}" if args.stacks_dir else ""
    path = create_stack(fleet.stacks_dir(args.stacks_dir), request, flag)
    sink.stdout.line(f"wrote {path}")
    sink.stdout.line("next steps (the file's comments say more):")
    for i, step in enumerate(next_steps(request, flag), 1):
        sink.stdout.line(f"  {i}. {step}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from provisioning.tools.check import check_stacks, overall_exit_code

    directory = fleet.stacks_dir(args.stacks_dir)
    paths = fleet.select_stacks(directory, args.stack)
    if not paths:  # a fork's stacks/ starts empty (the examples are in examples/stacks/): not a failure
        sink.stdout.line(f"{directory}: no Pulumi.<stack>.yaml files: nothing to check "
                         "(examples: --stacks-dir examples/stacks)")
        return EXIT_OK
    results = check_stacks(paths, policy=args.policy)
    for result in results:
        sink.stdout.block(result.line())  # one line per problem or warning
    bad = sum(not r.ok for r in results)
    sink.stdout.line(f"{len(results)} stack(s): {len(results) - bad} ok, {bad} with problems")
    return overall_exit_code(results)


def _offline_warnings(paths: list[Path]) -> None:
    """What the offline tools cannot see in these stack files (a Pulumi ESC environment), once each, on stderr."""
    from provisioning.tools.offline import REPO_ROOT, stack_file_warnings

    for path in paths:
        for warning in stack_file_warnings(path, REPO_ROOT):
            sink.stderr.line(f"warning: {warning.key}: {warning.rule}")


def _render(args: argparse.Namespace) -> int:
    from provisioning.tools.render import render_stack, to_text

    (path,) = fleet.select_stacks(fleet.stacks_dir(args.stacks_dir), [args.stack])
    _offline_warnings([path])
    report = render_stack(path)
    if args.json:
        sink.stdout.json(report, indent=2)
    else:
        sink.stdout.block(to_text(report))
    return EXIT_OK


def _selected(args: argparse.Namespace) -> list[Path]:
    """--all | --stack NAME... | --changed-files FILE, as `matrix` and `render-diff` take them."""
    directory = fleet.stacks_dir(args.stacks_dir)
    if args.all:
        return fleet.select_stacks(directory, None)
    if args.stack:
        return fleet.select_stacks(directory, args.stack)
    try:
        changed = Path(args.changed_files).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise fleet.FleetError(f"--changed-files: {exc.strerror}: {args.changed_files}") from None
    return fleet.changed_stacks(changed, directory)


def _matrix(args: argparse.Namespace) -> int:
    paths = fleet.hosting_first(_selected(args))
    _offline_warnings(paths)
    if args.github_output and not args.batches:
        raise fleet.FleetError("--github-output goes with --batches")
    result = fleet.matrix(paths)
    planned = fleet.plan(paths) if args.batches else result
    if args.github_output:
        with open(args.github_output, "a", encoding="utf-8") as out:
            out.write(fleet.github_outputs(planned))
    sink.stdout.json(planned, separators=(",", ":"))
    errors = fleet.matrix_errors(result)
    for error in errors:  # each keeps its entry: its own job fails on `check` and deploys nothing
        sink.stderr.line(f"error: {error}")
    return EXIT_FAILED if errors else EXIT_OK


def _render_diff(args: argparse.Namespace) -> int:
    import tempfile

    from provisioning.tools.inventory import inventory
    from provisioning.tools.review import (
        COMMENT_LIMIT,
        SUMMARY_LIMIT,
        build_comment,
        diff_stacks,
        extract_tree,
        write_details,
    )

    paths = _selected(args)
    _offline_warnings(paths)

    def progress(text: str) -> None:
        sink.stderr.line(text)

    with tempfile.TemporaryDirectory(prefix="hr-connector-base-") as tmp:
        diffs = diff_stacks(paths, extract_tree(args.base_ref, Path(tmp)), args.base_ref, args.parallel, progress,
                            base_dir=args.base_stacks_dir)
    expiries = {}
    if args.outputs:
        expiries = {r.stack: f"expires {r.expires_on[:10]} ({r.days_left} d)"
                    for r in inventory(paths, 0, outputs=Path(args.outputs)) if r.expires_on}
    comment = build_comment(diffs, args.base_ref, COMMENT_LIMIT, expiries)
    if args.comment:
        Path(args.comment).write_text(comment + "\n", encoding="utf-8")
    else:
        sink.stdout.block(comment)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as out:
            out.write(build_comment(diffs, args.base_ref, SUMMARY_LIMIT, expiries, where="the `render` artifact",
                                    marker="") + "\n")
    if args.details_dir:
        write_details(diffs, Path(args.details_dir))
    return EXIT_FAILED if any(d.status == "error" for d in diffs) else EXIT_OK


def _certs(args: argparse.Namespace) -> int:
    from provisioning.tools.inventory import failing, inventory, to_table

    paths = fleet.select_stacks(fleet.stacks_dir(args.stacks_dir), args.stack)
    outputs = Path(args.outputs) if args.outputs else None
    # no CLI: said once, before any stack is asked
    pulumi = "" if outputs else pulumi_cli(args.pulumi_root, "read exported outputs with --outputs PATH (a folder of "
                                                             "`pulumi stack output --json` files)")
    rows = inventory(paths, args.warn_days, outputs=outputs, pulumi=pulumi)
    if args.json:
        sink.stdout.json([r.to_json() for r in rows], indent=2)
    else:
        sink.stdout.block(to_table(rows, args.warn_days))
    return EXIT_FAILED if failing(rows) else EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from provisioning.tools import status

    errors: list[str] = []
    if args.summaries:
        runs = status.read_summaries(Path(args.summaries))
        selected = args.stack
    else:
        runs, selected, problems, errors = _status_from_azure(args)
        for problem in problems:
            sink.stderr.line(f"warning: {problem}")
        for error in errors:
            sink.stderr.line(f"error: {error}")
    rows = status.build_status(runs, stacks=selected)
    if args.html:
        Path(args.html).write_text(status.to_html(rows, args.warn_days), encoding="utf-8")
    if args.json:
        sink.stdout.json([r.to_json(args.warn_days) for r in rows], indent=2)
    else:
        sink.stdout.block(status.to_table(rows, args.warn_days))
    return EXIT_FAILED if errors or status.failing(rows, args.warn_days) else EXIT_OK


def _status_from_azure(args: argparse.Namespace
                       ) -> tuple[list[Run], list[str] | None, list[str], list[str]]:
    """Each selected stack's workspace (its `workspaceId` output), asked once with a token from the stack's Azure-side
    directory (status.DirectoryCredential over one DefaultAzureCredential per cloud). Returns (runs, the stacks to
    show, warnings, errors): a workspace that could not be asked is an error naming its stacks and directory, and the
    others are still asked."""
    from azure.identity import AzureAuthorityHosts, DefaultAzureCredential

    from provisioning.tools import status
    from provisioning.tools.inventory import outputs_from_files, outputs_from_pulumi
    from provisioning.tools.offline import stack_name

    for option, value in (("--query-endpoint", args.query_endpoint), ("--authority-host", args.authority_host)):
        if value and not value.startswith("https://"):
            raise StatusError(f"{option}: must be an https:// URL (the operator's sign-in and token go there)")
    paths = fleet.select_stacks(fleet.stacks_dir(args.stacks_dir), args.stack)
    names = [stack_name(p) for p in paths]
    outputs: dict[str, dict[str, Any] | None | Exception] = (
        dict(outputs_from_files(Path(args.outputs), names)) if args.outputs
        else {n: outputs_from_pulumi(n, args.pulumi) for n in names})
    workspaces, problems = status.workspaces_of(names, outputs)
    by_name = {stack_name(p): p for p in paths}
    hosting = {stack_name(p) for p in paths if fleet.is_hosting_stack(p)}
    errors: list[str] = []
    # (cloud, Azure-side directory) -> [(workspace, its stacks)]: the directory is the stack's, as the program and the
    # pipeline resolve it (a hosted tenant's is its hosting stack's)
    plan: dict[tuple[str, str], list[tuple[str, list[str]]]] = {}
    for workspace, stacks in workspaces.items():
        try:
            entry = fleet.matrix_entry(by_name[stacks[0]])
        except fleet.FleetError as exc:
            errors.append(f"{safe_text(str(exc), 300)} (its workspace was not asked)")
            continue
        plan.setdefault((entry.azure_environment, entry.azure_tenant_id), []).append((workspace, stacks))
    directories = sorted({directory for _, directory in plan})
    shared: dict[str, Any] = {}  # one credential chain per cloud; each directory's tokens asked through it
    runs: list[status.Run] = []
    wanted: set[str] = {n for n in names if n not in hosting}
    for (env, directory), asked in sorted(plan.items()):
        if env not in shared:
            authority = args.authority_host or (AzureAuthorityHosts.AZURE_GOVERNMENT if env == "usgovernment"
                                                else AzureAuthorityHosts.AZURE_PUBLIC_CLOUD)
            # an authority host of your own (a sandbox) is not in MSAL's list of known clouds: no instance discovery
            extra: dict[str, Any] = {"disable_instance_discovery": True} if args.authority_host else {}
            shared[env] = DefaultAzureCredential(authority=authority, additionally_allowed_tenants=directories,
                                                 **extra)
        credential = status.DirectoryCredential(shared[env], directory)
        endpoint = args.query_endpoint or status.query_endpoint(env)
        signed_out = ""
        for workspace, stacks in asked:
            whose = ", ".join(stacks) + (" (and the tenants it hosts)" if any(s in hosting for s in stacks) else "")
            if signed_out:
                errors.append(f"{whose}: not asked: {signed_out}")
                continue
            try:
                found = status.runs_from_workspace(workspace, credential=credential, endpoint=endpoint,
                                                   directory=directory)
            except status.SignInError as exc:
                signed_out = f"no token from directory {directory} (above)"
                errors.append(f"{whose}: {exc}")
                continue
            except StatusError as exc:
                errors.append(f"{whose}: {exc}")
                continue
            if any(s in hosting for s in stacks):  # a hosting stack's workspace: every hosted tenant's runs
                wanted |= {r.stack for r in found}
            runs += found
    return runs, sorted(wanted), problems, errors


def _fleet(args: argparse.Namespace) -> int:
    from provisioning.tools.fleetrun import run_fleet, summary_table

    paths = fleet.select_stacks(fleet.stacks_dir(args.stacks_dir), None if args.all else args.stack)
    if not paths:
        raise fleet.FleetError(f"{fleet.stacks_dir(args.stacks_dir)}: no Pulumi.<stack>.yaml files")
    results = run_fleet(args.operation, paths, parallel=args.parallel, log_dir=Path(args.log_dir),
                        pulumi_root=args.pulumi_root, expect_no_changes=args.expect_no_changes,
                        rotate_certificate=getattr(args, "rotate_certificate", False), progress=sink.stderr)
    if args.json:
        sink.stdout.json([r.to_json() for r in results], indent=2)
    else:
        sink.stdout.block(summary_table(args.operation, results))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _platform(args: argparse.Namespace) -> int:
    from provisioning.tools.platform import render_platform, to_text

    data = render_platform(args.config, args.stacks_dir)
    if args.json:
        sink.stdout.json(data, indent=2)
    else:
        sink.stdout.block(to_text(data))
    return EXIT_OK


COMMANDS = {"new-stack": _new_stack, "check": _check, "render": _render, "matrix": _matrix,
            "render-diff": _render_diff, "certs": _certs, "status": _status, "fleet": _fleet, "platform": _platform}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in all_problems(exc):
            sink.stderr.line(f"error: {problem.key}: {problem.rule}")
        return EXIT_USAGE
    except fleet.FleetError as exc:
        sink.stderr.line(f"error: {exc}")
        return exc.exit_code
    except OSError as exc:  # a path given on the command line (or HR_CONNECTOR_STACKS_DIR) that cannot be used
        sink.stderr.line(f"error: {safe_text(exc.filename or '?', 200)}: {exc.strerror or type(exc).__name__}")
        return EXIT_USAGE
    except StatusError as exc:
        sink.stderr.line(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        sink.stderr.line("interrupted")
        return 130

