// Where a stack lives. `local` and `local-*` stacks run on the local cloud (the default target: no AWS account
// needed); every other stack is a real Pulumi stack driven through the automation API and the Pulumi CLI.
import { S3Client } from "@aws-sdk/client-s3";
import { readdirSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AuditLog, FileAuditStore, localAuditLog, S3AuditStore } from "./audit";
import { OperatorNeededError, UsageError } from "./errors";
import { startLocalCloud, type LocalCloud } from "./local/cloud";
import { localStackProblem, localStateDir, REPO_ROOT } from "./local/state";
import type { DeploymentStack, OutputMap } from "./port";
import type { EdgeTarget } from "./prober";

export interface Target {
  stack: DeploymentStack;
  /** The S3 client for the stack's origin buckets (s3rver locally). */
  s3: S3Client;
  /** Root of the driver's per-stack lock and journal. */
  stateRoot: string;
  audit: AuditLog;
  /** Set for local stacks: the local cloud the stack runs on. */
  local?: LocalCloud;
  close(): Promise<void>;
}

function isLocalStack(name: string): boolean {
  return name === "local" || name.startsWith("local-");
}

function knownStacks(): string[] {
  return readdirSync(path.join(REPO_ROOT, "stacks"))
    .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined);
}

/** Who is acting, for the audit trail: the GitHub actor in Actions, else the OS user. */
export function actor(env: NodeJS.ProcessEnv = process.env): string {
  return env.GITHUB_ACTOR ? `github:${env.GITHUB_ACTOR}` : `${os.userInfo().username}@${os.hostname()}`;
}

/** Opens a stack. `cloud` lets a caller (a test, the demo) share one local cloud between commands. */
export async function openTarget(name: string, opts: { cloud?: LocalCloud } = {}): Promise<Target> {
  if (isLocalStack(name)) {
    const problem = localStackProblem(name);
    if (problem) throw new UsageError(`--stack = ${JSON.stringify(name)}: expected ${problem}`);
    const cloud = opts.cloud ?? (await startLocalCloud({ stateDir: localStateDir() }));
    return {
      stack: cloud.stack(name),
      s3: cloud.s3,
      stateRoot: cloud.stateDir,
      audit: localAuditLog(name, { stateDir: cloud.stateDir }),
      local: cloud,
      close: async () => {
        if (!opts.cloud) await cloud.close();
      },
    };
  }
  if (!knownStacks().includes(name)) {
    throw new UsageError(`--stack = ${JSON.stringify(name)}: expected one of ${[...knownStacks(), "local-<name>"].join(", ")}`);
  }
  let stack;
  try {
    // Loaded only for real stacks: the automation SDK is heavy, and local stacks never need it.
    const { LocalWorkspace } = await import("@pulumi/pulumi/automation");
    stack = await LocalWorkspace.createOrSelectStack({ workDir: REPO_ROOT, stackName: name });
  } catch (err) {
    throw new OperatorNeededError(`cannot open Pulumi stack ${name}: ${(err as Error).message.split("\n")[0]} (is the Pulumi CLI installed and \`pulumi login\` done?)`);
  }
  const s3 = new S3Client({});
  const outputs = await stack.outputs();
  const auditBucket = outputs.auditBucket?.value as string | undefined;
  const stateRoot = path.join(REPO_ROOT, ".bluegreen");
  return {
    stack,
    s3,
    stateRoot,
    // Before the first `up` there is no audit bucket yet; records go to the working folder until there is.
    audit: new AuditLog(auditBucket ? new S3AuditStore(s3, auditBucket, name) : new FileAuditStore(path.join(stateRoot, "audit", `${name}.jsonl`))),
    close: async () => s3.destroy(),
  };
}

/** Where probes reach the stack's viewers: the local edge with the stack's Host, or the distribution over HTTPS. */
export function edgeOf(target: Target, outputs: OutputMap): EdgeTarget {
  if (target.local) return { url: target.local.url, host: target.local.host(target.stack.name) };
  const domain = (outputs.domain?.value ?? outputs.distributionDomain?.value) as string | undefined;
  if (!domain) throw new OperatorNeededError(`stack ${target.stack.name} has no distributionDomain output yet; run: pulumi up --stack ${target.stack.name}`);
  return { url: `https://${domain}` };
}
