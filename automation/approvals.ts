// Approval gates: a stack's config names the roles a promotion into it needs and who holds each role. Approvals
// come from somewhere the person running the pipeline cannot type for themselves: the reviews of the workflow run's
// GitHub deployment environments, read with the job's token. Only the local stack takes them from the command line.
import type { StackConfig } from "../infra/config";
import { UsageError } from "./errors";
import { isLocalStack } from "./targets";

export type ApprovalGate = StackConfig["approvals"];

export interface Approval {
  login: string;
  /** Where the approval came from, as recorded in the audit log. */
  source: string;
}

export interface Approver extends Approval {
  /** The gate's roles this login holds. */
  roles: string[];
}

export interface GateCheck {
  ok: boolean;
  missingRoles: string[];
  /** Approvers who hold no role the gate lists. */
  strangers: string[];
  approvers: Approver[];
}

export const COMMAND_LINE_SOURCE = "command-line (local stack only)";

// GitHub logins are case-insensitive.
function sameLogin(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** Maps approvers to the gate's roles. Pure: no I/O, no throwing. */
export function checkApprovalGate(gate: ApprovalGate, approvals: readonly Approval[]): GateCheck {
  const approvers: Approver[] = [];
  for (const approval of approvals) {
    if (approvers.some((a) => sameLogin(a.login, approval.login))) continue;
    const roles = Object.entries(gate.holders)
      .filter(([, logins]) => logins.some((login) => sameLogin(login, approval.login)))
      .map(([role]) => role);
    approvers.push({ ...approval, roles });
  }
  const covered = new Set(approvers.flatMap((a) => a.roles));
  const missingRoles = gate.required.filter((role) => !covered.has(role));
  const strangers = approvers.filter((a) => a.roles.length === 0).map((a) => a.login);
  return { ok: missingRoles.length === 0 && strangers.length === 0, missingRoles, strangers, approvers };
}

/**
 * Refuses (UsageError, exit 2, nothing changed) unless every required role approved and every approver holds a listed
 * role. An approver the config does not know means the GitHub environment's reviewers and the stack config disagree:
 * that is refused rather than ignored. Returns the approvers, for the audit record.
 */
function enforceApprovalGate(stack: string, gate: ApprovalGate, approvals: readonly Approval[]): Approver[] {
  const check = checkApprovalGate(gate, approvals);
  const given = check.approvers.length > 0 ? check.approvers.map((a) => `${a.login} (${a.roles.join(", ") || "no role"})`).join(", ") : "none";
  if (check.strangers.length > 0) {
    throw new UsageError(
      `stack ${stack}: approval by ${check.strangers.join(", ")} refused: holds no role in picasso-widget:approvals.holders (roles: ${Object.keys(gate.holders).join(", ") || "none"})`,
    );
  }
  if (check.missingRoles.length > 0) {
    const wanted = check.missingRoles.map((role) => `${role} (held by ${(gate.holders[role] ?? []).join(", ")})`).join(", ");
    throw new UsageError(`stack ${stack}: approval missing for role ${wanted}; approvals given: ${given}`);
  }
  return check.approvers;
}

/**
 * `--approve role=login` values. Accepted for local stacks only (and recorded as such); any other stack's approvals
 * must come from GitHub. The login must hold the role it approves as.
 */
export function commandLineApprovals(stack: string, gate: ApprovalGate, values: readonly string[]): Approval[] {
  if (values.length === 0) return [];
  if (!isLocalStack(stack)) {
    throw new UsageError(
      `--approve: refused for stack ${stack}: command-line approvals are accepted on local stacks only; approvals for ${stack} come from the reviewers of its GitHub environments`,
    );
  }
  return values.map((value) => {
    const match = /^([a-z][a-z0-9-]*)=([A-Za-z0-9][A-Za-z0-9-]*)$/.exec(value);
    if (!match) throw new UsageError(`--approve = ${JSON.stringify(value)}: expected role=login, for example tech-lead=alice-lead`);
    const [, role, login] = match;
    const holders = gate.holders[role] ?? [];
    if (!holders.some((h) => sameLogin(h, login))) {
      throw new UsageError(`--approve = ${JSON.stringify(value)}: ${login} does not hold role ${role} (holders: ${holders.join(", ") || "none"})`);
    }
    return { login, source: COMMAND_LINE_SOURCE };
  });
}

/** The workflow run whose approvals the CLI reads (GitHub Actions' default environment variables). */
export interface GitHubRun {
  apiUrl: string;
  repository: string;
  runId: string;
  token: string;
}

/** The run the CLI is part of, or undefined outside GitHub Actions. */
export function githubRunFromEnv(env: NodeJS.ProcessEnv = process.env): GitHubRun | undefined {
  const { GITHUB_REPOSITORY: repository, GITHUB_RUN_ID: runId } = env;
  if (!repository || !runId) return undefined;
  if (!env.GITHUB_TOKEN) {
    throw new UsageError("GITHUB_TOKEN = (missing): expected the job's token in the step's env (GITHUB_TOKEN: ${{ github.token }}) to read the run's approvals");
  }
  return { apiUrl: env.GITHUB_API_URL || "https://api.github.com", repository, runId, token: env.GITHUB_TOKEN };
}

/**
 * The GitHub environments whose reviews count for a promotion into `stack`: the stack's own environment, and one per
 * required role (`<stack>-<role>`). One environment per role is needed because an environment's deployment proceeds
 * once any ONE of its required reviewers approves.
 * https://docs.github.com/en/actions/managing-workflow-runs-and-deployments/managing-deployments/managing-environments-for-deployment#required-reviewers
 */
export function approvalEnvironments(stack: string, gate: ApprovalGate): string[] {
  return [stack, ...gate.required.map((role) => `${stack}-${role}`)];
}

/** Subset of "Get the review history for a workflow run" (an array of environment approvals). */
interface EnvironmentApproval {
  state: "approved" | "rejected" | "pending";
  user: { login: string };
  environments: { name?: string }[];
}

/**
 * Reads the run's environment reviews: GET /repos/{owner}/{repo}/actions/runs/{run_id}/approvals.
 * https://docs.github.com/en/rest/actions/workflow-runs#get-the-review-history-for-a-workflow-run
 * Only "approved" reviews of one of `environments` count. The token goes in the Authorization header and nowhere else.
 */
export async function fetchRunApprovals(run: GitHubRun, environments: readonly string[]): Promise<Approval[]> {
  const url = `${run.apiUrl.replace(/\/+$/, "")}/repos/${run.repository}/actions/runs/${encodeURIComponent(run.runId)}/approvals`;
  const fail = (what: string) => new UsageError(`GitHub approvals of run ${run.runId} (GET ${url}): ${run.token ? what.split(run.token).join("[redacted]") : what}`);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { Accept: "application/vnd.github+json", Authorization: `Bearer ${run.token}`, "X-GitHub-Api-Version": "2022-11-28" },
    });
  } catch (err) {
    throw fail(`request failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const text = await response.text();
  if (!response.ok) {
    const message = (() => {
      try {
        return String((JSON.parse(text) as { message?: unknown }).message ?? "");
      } catch {
        return "";
      }
    })();
    const hint =
      response.status === 401 || response.status === 403
        ? "the job's token was refused; the job needs `permissions: actions: read`"
        : response.status === 404
          ? "no such run, or the token cannot see it; check GITHUB_REPOSITORY, GITHUB_RUN_ID and `permissions: actions: read`"
          : "unexpected answer";
    throw fail(`HTTP ${response.status}${message ? ` ${message}` : ""}: ${hint}`);
  }
  let reviews: EnvironmentApproval[];
  try {
    reviews = JSON.parse(text) as EnvironmentApproval[];
    if (!Array.isArray(reviews)) throw new Error("not an array");
  } catch {
    throw fail("the answer is not a list of environment approvals");
  }
  const counted = new Set(environments);
  return reviews
    .filter((r) => r.state === "approved" && typeof r.user?.login === "string")
    .flatMap((r) => {
      const names = (r.environments ?? []).map((e) => e.name).filter((name): name is string => name !== undefined && counted.has(name));
      return names.length > 0 ? [{ login: r.user.login, source: `GitHub environment ${names.join(", ")} (${run.repository} run ${run.runId})` }] : [];
    });
}

/**
 * The approvals a promotion into `stack` has, checked against its gate: from the command line (local stacks), else
 * from the GitHub run this process belongs to, else none. Throws UsageError naming what is missing.
 */
export async function requireApprovals(opts: { stack: string; gate: ApprovalGate; commandLine?: readonly string[]; env?: NodeJS.ProcessEnv }): Promise<Approver[]> {
  const typed = commandLineApprovals(opts.stack, opts.gate, opts.commandLine ?? []);
  if (typed.length > 0) return enforceApprovalGate(opts.stack, opts.gate, typed);
  if (opts.gate.required.length === 0) return [];
  const run = githubRunFromEnv(opts.env);
  const approvals = run === undefined ? [] : await fetchRunApprovals(run, approvalEnvironments(opts.stack, opts.gate));
  return enforceApprovalGate(opts.stack, opts.gate, approvals);
}
