// `bluegreen doctor --stack S`: is this machine ready to deploy the stack? One line per check, `pass` or `FAIL` with
// what to do, in the order a failure blocks the next: Node.js, the Pulumi CLI, the backend login, the stack, AWS
// credentials and region (reaching the stack's own buckets with them), and a browser for the browser gate. Exit 0
// when every check passes, 3 (operator needed) when any fails. It changes nothing.
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import type { Argv, CommandModule } from "yargs";
import type { Slot } from "../infra/config";
import { engines } from "../package.json";
import { launchBrowser } from "./browserGate";
import { OperatorNeededError, UsageError } from "./errors";
import { newestSucceeded, readHistory } from "./history";
import { viewing } from "./open";
import { parseConfigMap } from "./stackConfig";
import { edgeOf, isLocalStack, openTarget, pulumiCliOf, type Target } from "./targets";

export interface Check {
  name: "node" | "pulumi" | "backend" | "stack" | "aws" | "browser";
  /** skip: not needed here, or not possible because an earlier check failed (which is the one to fix). */
  status: "pass" | "fail" | "skip";
  /** What was found; on failure, what is wrong and what to do. */
  detail: string;
}

/** Thrown by a check that does not apply (or cannot run before an earlier one is fixed). */
class Skip extends Error {}

const BROWSER_LAUNCH_MS = 60_000;

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0];
}

/** Runs every check it can; a check that needs an earlier one that failed says so instead of running. */
export async function doctor(stackRef: string): Promise<Check[]> {
  const checks: Check[] = [];
  const check = async (name: Check["name"], run: () => Promise<string>) => {
    try {
      checks.push({ name, status: "pass", detail: await run() });
    } catch (err) {
      checks.push({ name, status: err instanceof Skip ? "skip" : "fail", detail: firstLine(err) });
    }
  };
  const local = isLocalStack(stackRef.split("/").at(-1) ?? stackRef);

  await check("node", async () => {
    const need = Number(/\d+/.exec(engines.node)?.[0] ?? 0);
    const major = Number(process.versions.node.split(".")[0]);
    if (major < need) throw new Error(`Node.js ${process.versions.node} is older than ${engines.node} (package.json engines); install Node.js ${need} or later`);
    return `Node.js ${process.versions.node} (${engines.node} required)`;
  });

  let cli: Awaited<ReturnType<typeof pulumiCliOf>> | undefined;
  let loggedIn = false;
  await check("pulumi", async () => {
    cli = await pulumiCliOf(stackRef);
    return `${cli.cli}, version ${cli.version}`;
  });
  await check("backend", async () => {
    if (cli === undefined) throw new Skip("needs the Pulumi CLI");
    const who = await cli.whoami();
    loggedIn = true;
    return `logged in to ${who.backend} as ${who.user}`;
  });

  let target: Target | undefined;
  try {
    await check("stack", async () => {
      if (!loggedIn) throw new Skip("needs a Pulumi backend to be logged in to");
      target = await openTarget(stackRef);
      const history = await readHistory(target.stack);
      const last = newestSucceeded(history);
      if (last === undefined) return `${target.stack.name} exists; nothing deployed yet (${history.length} updates)`;
      const { config } = parseConfigMap(last.config, target.stack.name);
      const outputs = await target.stack.outputs();
      const where = outputs.distributionDomain === undefined ? "" : `; viewers: ${viewing(target.stack.name, edgeOf(target, outputs), config).url}`;
      return `${target.stack.name}: ${config.slots[config.stable].release ?? "(no release)"} on ${config.stable} at ${config.weights[config.stable]}%, last successful update ${last.version}${where}`;
    });

    await check("aws", async () => {
      if (local) throw new Skip("not needed: the local cloud's S3 runs on loopback");
      if (target === undefined) throw new Skip("needs the stack");
      // The stack's own settings (aws:region, aws:profile, endpoints) through the SDK's default credential chain; the
      // credentials are proved by reaching the stack's buckets, not printed. https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html
      const region = await target.s3.config.region().catch(() => undefined);
      if (!region) throw new Error("no AWS region: set aws:region in the stack config, or AWS_REGION");
      const credentials = await target.s3.config.credentials().catch((err: Error) => {
        throw new Error(`no AWS credentials (${firstLine(err)}); run: aws configure, aws sso login, or set AWS_PROFILE`);
      });
      const buckets = ((await target.stack.outputs()).bucketNames?.value ?? {}) as Partial<Record<Slot, string>>;
      for (const bucket of Object.values(buckets)) {
        await target.s3.send(new HeadBucketCommand({ Bucket: bucket })).catch((err: Error & { $metadata?: { httpStatusCode?: number } }) => {
          throw new Error(`bucket ${bucket} is not reachable with these credentials (${err.$metadata?.httpStatusCode ?? err.name}); check the role's policy (docs/iam-policy.json) and aws:region`);
        });
      }
      const temporary = credentials.sessionToken ? `temporary${credentials.expiration ? `, expiring ${credentials.expiration.toISOString()}` : ""}` : "long-lived";
      return `region ${region}, ${temporary} credentials${Object.keys(buckets).length > 0 ? `; reached ${Object.values(buckets).join(", ")}` : ""}`;
    });
  } finally {
    await (target as Target | undefined)?.close();
  }

  await check("browser", async () => {
    const { browser, executable, source } = await launchBrowser(BROWSER_LAUNCH_MS).catch((err: Error) => {
      throw new Error(`${firstLine(err)}; install Chrome or Chromium, or set BLUEGREEN_CHROMIUM to one (the browser gate needs it)`);
    });
    try {
      return `${browser.version()} (${source}: ${executable})`;
    } finally {
      await browser.close();
    }
  });
  return checks;
}

export const doctorCommand: CommandModule<object, { stack: string; json: boolean }> = {
  command: "doctor",
  describe: "check that this machine can deploy the stack: Node.js, Pulumi CLI and login, the stack, AWS, a browser",
  builder: (y: Argv) =>
    y
      .option("stack", { type: "string", demandOption: true, describe: "stack to check (dev, staging, production, local, local-<name>)" })
      .option("json", { type: "boolean", default: false, describe: "print the checks as JSON on stdout" }) as never,
  handler: async (a) => {
    if (a.stack.trim() === "") throw new UsageError(`--stack = "": expected a stack name`);
    const checks = await doctor(a.stack);
    const failed = checks.filter((c) => c.status === "fail");
    if (a.json) process.stdout.write(JSON.stringify({ stack: a.stack, ok: failed.length === 0, checks }, null, 2) + "\n");
    else for (const c of checks) process.stdout.write(`${c.status === "fail" ? "FAIL" : c.status}  ${c.name.padEnd(8)} ${c.detail}\n`);
    if (failed.length > 0) throw new OperatorNeededError(`doctor: ${failed.length} of ${checks.length} checks failed (${failed.map((c) => c.name).join(", ")}); each FAIL line says what to do`);
  },
};
