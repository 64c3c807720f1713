// Where a stack lives, and the one place the driver reaches the local cloud. Every stack, local or not, is opened the
// same way: a `Stack` of the automation SDK (`LocalWorkspace`), which runs a Pulumi CLI. For `local` and `local-*`
// stacks that CLI is the local cloud's stand-in (automation/local/pulumi/bin/pulumi) and the backend is the local
// cloud's state folder; every other stack uses the `pulumi` on PATH and whatever backend it is logged in to (the tests
// put the stand-in first on PATH and point PULUMI_BACKEND_URL at a local cloud: the very code path AWS stacks take).
import { CloudFrontClient, GetDistributionCommand } from "@aws-sdk/client-cloudfront";
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { LocalWorkspace, PulumiCommand, Stack, StackNotFoundError } from "@pulumi/pulumi/automation";
import { existsSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { AuditLog, FileAuditStore, S3AuditStore } from "./audit";
import { OperatorNeededError, UsageError } from "./errors";
import { standIn, startLocalCloud, type LocalCloud } from "./local/cloud";
import { knownStacks, localStackProblem, localStateDir, REPO_ROOT, stackDir } from "./local/state";
import type { ConfigMap, DeploymentStack, OutputMap } from "./port";
import { inOwnProcessGroup } from "./processGroup";
import type { EdgeTarget } from "./prober";
import { nearest } from "./words";

export interface Target {
  stack: DeploymentStack;
  /** The S3 client for the stack's origin and audit buckets, with the stack's own AWS settings. */
  s3: S3Client;
  audit: AuditLog;
  /** Set for local stacks: the local cloud the stack runs on (another local stack may share it). */
  local?: LocalCloud;
  close(): Promise<void>;
}

export type { LocalCloud };

/** Stacks that run on the local cloud (the default target): `local` and `local-<name>`. */
export function isLocalStack(name: string): boolean {
  return name === "local" || name.startsWith("local-");
}

/** The audit log of a local stack, in the local cloud's state folder next to the stack's backend files. */
export function localAuditLog(stack: string, opts: { secrets?: readonly (string | undefined)[]; stateDir?: string } = {}): AuditLog {
  return new AuditLog(new FileAuditStore(path.join(stackDir(opts.stateDir ?? localStateDir(), stack), "audit.jsonl")), opts);
}

/** Who is acting, for the audit trail: the GitHub actor in Actions, else the OS user. */
export function actor(env: NodeJS.ProcessEnv = process.env): string {
  return env.GITHUB_ACTOR ? `github:${env.GITHUB_ACTOR}` : `${os.userInfo().username}@${os.hostname()}`;
}

/**
 * The environment every Pulumi CLI the driver runs gets. The program is type-checked by CI (`npm run typecheck`); the
 * Node.js runtime would otherwise type-check it again on every `pulumi up` (about 17 s against 3 s here).
 * PULUMI_NODEJS_TRANSPILE_ONLY is read by the SDK's program runner: node_modules/@pulumi/pulumi/cmd/run/run.js (pulumi/pulumi
 * sdk/nodejs/cmd/run/run.ts).
 */
const PULUMI_ENV = { PULUMI_NODEJS_TRANSPILE_ONLY: "true", PULUMI_SKIP_UPDATE_CHECK: "true" };

/** The project folder the CLI would use: the nearest folder from the working directory up holding a Pulumi.yaml. */
function projectDir(from = process.cwd()): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
    if (path.dirname(dir) === dir) return REPO_ROOT;
  }
}

const CLI_MISSING = "the Pulumi CLI is not installed (no `pulumi` on PATH)";
let pathCommand: Promise<PulumiCommand> | undefined;
/** The `pulumi` on PATH (in a process group of its own: processGroup.ts), or exit 3 with one line saying how to install it. */
async function pulumiOnPath(): Promise<PulumiCommand> {
  pathCommand ??= PulumiCommand.get().then(inOwnProcessGroup);
  try {
    return await pathCommand;
  } catch (err) {
    pathCommand = undefined;
    const text = (err as Error).message;
    if (/ENOENT|not found/i.test(text)) {
      throw new OperatorNeededError(`${CLI_MISSING}; install it: curl -fsSL https://get.pulumi.com | sh (https://www.pulumi.com/docs/iac/download-install/)`);
    }
    throw new OperatorNeededError(`the Pulumi CLI does not run: ${text.split("\n")[0]}`);
  }
}

/**
 * The Pulumi CLI a stack runs with, for `doctor`: a local stack's is the stand-in (nothing is started to say so),
 * `whoami` then asks it which backend and user it is logged in to (a local stack's backend is the local cloud's state
 * folder).
 */
export async function pulumiCliOf(ref: string): Promise<{ cli: string; version: string; whoami(): Promise<{ user: string; backend: string }> }> {
  if (isLocalStack(shortName(ref))) {
    const command = await standIn();
    const whoami = async () => ({ user: os.userInfo().username, backend: pathToFileURL(localStateDir()).href });
    return { cli: `the local cloud's stand-in ${path.relative(process.cwd(), command.command)}`, version: String(command.version ?? "unknown"), whoami };
  }
  const command = await pulumiOnPath();
  const whoami = async () => {
    try {
      const ws = await LocalWorkspace.create({ workDir: projectDir(), pulumiCommand: command, envVars: PULUMI_ENV });
      const who = await ws.whoAmI();
      return { user: who.user, backend: who.url ?? "(not reported)" };
    } catch (err) {
      throw new OperatorNeededError(`not logged in to a Pulumi backend (${cliMessage(err)}); run: pulumi login (or pulumi login s3://<state-bucket>)`);
    }
  };
  return { cli: command.command, version: String(command.version ?? "unknown"), whoami };
}

/**
 * `[<org>/[<project>/]]<stack>`: the stack's own name is the last part; the whole reference goes to the CLI.
 * https://www.pulumi.com/docs/iac/concepts/stacks/#stack-names
 */
function shortName(ref: string): string {
  return ref.split("/").at(-1) ?? ref;
}

/**
 * With no Pulumi CLI, a name that is one typo from a local stack (`lcoal`, `Local`) is that typo, bad input, not a
 * reason to install the CLI; any other name still needs the CLI, and the message says which stacks need none.
 */
function missingCliHint(err: unknown, ref: string, flag: string): unknown {
  if (!(err instanceof OperatorNeededError) || !err.message.startsWith(CLI_MISSING)) return err;
  const local = knownStacks(localStateDir()).filter(isLocalStack);
  const near = nearest(ref, local) ?? local.find((n) => n.toLowerCase() === ref.toLowerCase());
  if (near !== undefined) return new UsageError(`${flag} = ${JSON.stringify(ref)}: no such stack (did you mean ${near}? local stacks: ${local.join(", ")})`);
  return new OperatorNeededError(`${err.message}; local stacks need none${knownList(local)}`);
}

/** " (known: a, b)": the stacks a refusal of an unknown one lists. */
function knownList(names: readonly string[] | undefined): string {
  if (names === undefined) return "";
  return ` (known: ${names.length === 0 ? "none" : names.join(", ")})`;
}

/**
 * Opens a stack. A stack that does not exist is bad input (exit 2) naming the known ones, and nothing is created for
 * it, not even the local cloud's state folder; only `create` (a deploy, a promotion's target) brings a local stack
 * into being, as its first deploy. Every other stack is created by `pulumi stack init` alone. `cloud` lets a caller (a
 * test, the demo, promote) share one local cloud. `flag` names the option in messages (promote: --from, --to).
 */
export async function openTarget(ref: string, opts: { cloud?: LocalCloud; create?: boolean; flag?: string } = {}): Promise<Target> {
  const name = shortName(ref);
  const flag = opts.flag ?? "--stack";
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/.test(ref)) {
    throw new UsageError(`${flag} = ${JSON.stringify(ref)}: expected a stack name, or a fully qualified <org>/<project>/<stack>`);
  }
  if (isLocalStack(name)) {
    const problem = localStackProblem(name);
    if (problem) throw new UsageError(`${flag} = ${JSON.stringify(ref)}: expected ${problem}`);
    const known = knownStacks(opts.cloud?.stateDir ?? localStateDir()).filter(isLocalStack);
    if (!opts.create && !known.includes(name)) {
      throw new UsageError(`${flag} = ${JSON.stringify(ref)}: no such stack on the local cloud${knownList(known)}; a local stack comes into being with its first deploy`);
    }
    const cloud = opts.cloud ?? (await startLocalCloud({ stateDir: localStateDir() }));
    const close = async () => {
      if (!opts.cloud) await cloud.close();
    };
    try {
      const stack = await cloud.stack(name);
      return { stack, s3: cloud.s3, audit: localAuditLog(name, { stateDir: cloud.stateDir }), local: cloud, close };
    } catch (err) {
      await close();
      throw err;
    }
  }

  const workDir = projectDir();
  const pulumiCommand = await pulumiOnPath().catch((err: unknown) => {
    throw missingCliHint(err, ref, flag);
  });
  let stack: Stack;
  let ws: LocalWorkspace | undefined;
  try {
    ws = await LocalWorkspace.create({ workDir, pulumiCommand, envVars: PULUMI_ENV });
    stack = await Stack.select(ref, ws);
  } catch (err) {
    if (err instanceof StackNotFoundError) {
      // `pulumi stack ls`: the project's stacks in the backend the CLI is logged in to (a listing that fails names none).
      const known = await ws?.listStacks().then((stacks) => stacks.map((s) => s.name).sort(), () => undefined);
      throw new UsageError(`${flag} = ${JSON.stringify(ref)}: no such stack in the Pulumi backend${knownList(known)}; create it first: pulumi stack init ${ref}`);
    }
    throw new OperatorNeededError(`cannot open Pulumi stack ${ref}: ${cliMessage(err)} (is \`pulumi login\` done?)`);
  }
  const s3 = new S3Client(awsSettings(await stack.getAllConfig()));
  const outputs = await stack.outputs();
  const auditBucket = outputs.auditBucket?.value as string | undefined;
  return {
    stack,
    s3,
    // Before the first `up` there is no audit bucket yet; records go to the working folder until there is.
    audit: new AuditLog(auditBucket ? new S3AuditStore(s3, auditBucket, name) : new FileAuditStore(path.join(workDir, ".bluegreen", "audit", `${name}.jsonl`))),
    close: async () => s3.destroy(),
  };
}

/** The first line a CLI failure says (the SDK's CommandError carries the whole stderr). */
function cliMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = /error: (.+)/.exec(text)?.[1] ?? text.split("\n").find((l) => l.trim() !== "") ?? text;
  return line.trim();
}

/**
 * The stack's own AWS settings, read from the same provider config the program's resources use, so each stack's
 * buckets are reached with that stack's region and credentials (promote reads the source with the source's):
 * `aws:region`, `aws:profile`, and for S3-compatible endpoints `aws:endpoints` ([{ s3: url }]) with
 * `aws:s3UsePathStyle`. https://www.pulumi.com/registry/packages/aws/installation-configuration/#configuration-options
 */
export function awsSettings(config: ConfigMap): S3ClientConfig {
  const value = (key: string) => config[key]?.value;
  const settings: S3ClientConfig = {};
  const region = value("aws:region");
  if (region) settings.region = region;
  const profile = value("aws:profile");
  if (profile) settings.profile = profile;
  const endpoints = value("aws:endpoints");
  if (endpoints) {
    let s3: unknown;
    try {
      s3 = (JSON.parse(endpoints) as Record<string, unknown>[]).find((e) => typeof e.s3 === "string")?.s3;
    } catch {
      throw new UsageError(`aws:endpoints = ${JSON.stringify(endpoints)}: expected a list such as [{"s3": "https://..."}]`);
    }
    if (typeof s3 === "string") settings.endpoint = s3;
  }
  if (value("aws:s3UsePathStyle") === "true") settings.forcePathStyle = true;
  return settings;
}

/**
 * On the local cloud, the faults injected on the stack, as a note a failure message ends with (it may be the very
 * cause); "" elsewhere or when none is active.
 */
export function faultNote(target: Target): string {
  const faults = target.local?.describeFaults(target.stack.name);
  if (faults === undefined) return "";
  const stack = target.stack.name === "local" ? "" : ` --stack ${target.stack.name}`;
  return ` (the local cloud injects faults on ${target.stack.name}: ${faults}; clear them: bluegreen local fault${stack} --clear)`;
}

/** Where probes reach the stack's viewers: the local edge with the stack's Host, or the distribution over HTTPS. */
export function edgeOf(target: Target, outputs: OutputMap): EdgeTarget {
  const domain = (outputs.domain?.value ?? outputs.distributionDomain?.value) as string | undefined;
  if (!domain) throw new OperatorNeededError(`stack ${target.stack.name} has no distributionDomain output yet; run: pulumi up --stack ${target.stack.name}`);
  // A stack the local cloud serves names its edge's loopback URL; the Host header selects the stack there.
  const edgeUrl = outputs.edgeUrl?.value as string | undefined;
  return edgeUrl ? { url: edgeUrl, host: domain, local: true } : { url: `https://${domain}` };
}

/**
 * Where a person sees what viewers see. A local stack's host is `<stack>.bluegreen.localhost`, which browsers resolve
 * to loopback (RFC 6761), so the edge's port with that host reaches the stack from a browser too.
 */
export function viewerUrl(edge: EdgeTarget): string {
  if (!edge.local || !edge.host) return new URL("/", edge.url).toString();
  const url = new URL("/", edge.url);
  url.hostname = edge.host;
  return url.toString();
}

/**
 * Waits once, after the update that created the stack's distribution, for CloudFront to report it Deployed: its
 * first deployment takes minutes, and the first rollout would otherwise time out waiting for the edge. Later updates
 * do not wait (traffic moves through the KeyValueStore, which the driver verifies at the edge itself).
 * https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_GetDistribution.html (Status: InProgress | Deployed)
 */
export async function awaitNewDistribution(outputs: OutputMap, log: (message: string) => void, timeoutMs = 30 * 60_000): Promise<void> {
  if (outputs.edgeUrl !== undefined) return; // The local engine applies an update before it returns.
  const id = outputs.distributionId?.value as string | undefined;
  if (!id) return;
  const cloudfront = new CloudFrontClient({ region: "us-east-1" });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { Distribution } = await cloudfront.send(new GetDistributionCommand({ Id: id }));
      if (Distribution?.Status === "Deployed") return;
      if (Date.now() > deadline) throw new OperatorNeededError(`CloudFront distribution ${id} is still ${Distribution?.Status ?? "unknown"} after ${timeoutMs / 60_000} minutes; run the command again once it is Deployed`);
      log(`waiting for CloudFront to deploy the new distribution ${id} (${Distribution?.Status ?? "unknown"})`);
      await new Promise((r) => setTimeout(r, 20_000));
    }
  } finally {
    cloudfront.destroy();
  }
}
