// The Pulumi CLI stand-in's commands: what `automation/local/pulumi/bin/pulumi` runs, in the local cloud's process
// (which keeps the program runner and the S3 client warm). The automation SDK runs the stand-in exactly as it runs the
// real CLI, so each command here follows the CLI's own definition in pulumi/pulumi, cited next to it: the argv the SDK
// passes (node_modules/@pulumi/pulumi/automation/{localWorkspace,stack}.js), the stdout JSON it parses, the exit code
// and the stderr texts it classifies (automation/errors.js: `no stack named`, `already exists`, the 409 conflict).
//
// Where it departs from Pulumi:
// - the backend is always the local cloud's state folder (PULUMI_BACKEND_URL=file://<dir>); the update lease and the
//   in-progress history entry follow the Pulumi Cloud service (the DIY backend records an update only at its end);
// - `up` runs this repository's infra/ program under mocks whatever the working folder's Pulumi.yaml names;
// - secrets in stack files are base64, not encrypted (`secure: standin:<base64>`): the local cloud guards loopback only.
//   A `secure:` value of another provider (for example a real `v1:` ciphertext) cannot be decrypted, as it could not be
//   by a CLI without that provider's key;
// - `stack select` does not remember the selection (every SDK call passes --stack).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import * as path from "node:path";
import { parse as parseYaml, parseDocument } from "yaml";
import type { ConfigMap } from "../port";
import { LocalStack, UpdateConflictError } from "./engine";
import { stackNameProblem, type StoredConfigValue, type StoredSummary } from "./state";

const PROJECT = "picasso-widget";
const SECRET_PREFIX = "standin:";
/** The text `pulumi stack history` prints for a secret it cannot decrypt (pkg/cmd/pulumi/stack/stack_history.go). */
const UNDECRYPTABLE = "ERROR_UNABLE_TO_DECRYPT";

export interface CliRequest {
  argv: string[];
  /** The working folder the CLI was started in (the SDK's workDir). */
  cwd: string;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliContext {
  stack(name: string): LocalStack;
  /** Every stack the backend holds. */
  stacks(): string[];
  /** The backend's URL (file://<state folder>), as `pulumi whoami` names it. */
  backendUrl: string;
  /** True once the client is gone (its `up` is then left in progress). */
  abandoned(): boolean;
}

class CliError extends Error {}

/** The CLI exits 255 on every command error (cmdutil.RunFunc exits with -1), printing `error: <message>`. */
const fail = (message: string): CliResult => ({ code: 255, stdout: "", stderr: `error: ${message}\n` });

/** Boolean flags and flags taking a value, as the commands used here define them (cobra: `--flag value` or `--flag=value`). */
const BOOLEAN_FLAGS = new Set(["json", "show-secrets", "yes", "skip-preview", "non-interactive", "force", "plaintext", "secret", "path", "debug", "logflow", "logtostderr", "suppress-outputs", "suppress-progress", "disable-integrity-checking", "fully-qualify-stack-names", "diff", "refresh", "expect-no-changes"]);
const VALUE_FLAGS = new Set(["stack", "message", "page-size", "page", "exec-kind", "exec-agent", "color", "secrets-provider", "event-log", "parallel", "verbose", "tracing", "config-file", "client"]);
/** Flags the stand-in accepts but whose behaviour it does not emulate: refusing them says so instead of ignoring them. */
const UNSUPPORTED = new Set(["path", "event-log", "client", "refresh", "expect-no-changes", "config-file", "secrets-provider"]);

interface Parsed {
  words: string[];
  flags: Map<string, string | true>;
  /** set-all's ordered --plaintext/--secret key=value pairs. */
  pairs: { secret: boolean; text: string }[];
}

function parseArgv(argv: string[]): Parsed {
  const words: string[] = [];
  const flags = new Map<string, string | true>();
  const pairs: Parsed["pairs"] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      words.push(arg);
      continue;
    }
    const [name, inline] = arg.replace(/^--?/, "").split(/=(.*)/s, 2) as [string, string | undefined];
    const long = name === "s" ? "stack" : name === "m" ? "message" : name === "j" ? "json" : name === "y" ? "yes" : name;
    if (VALUE_FLAGS.has(long)) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new CliError(`flag needs an argument: --${long}`);
      flags.set(long, value);
    } else if (BOOLEAN_FLAGS.has(long)) {
      // config set-all: `--plaintext key=value` and `--secret key=value` (pkg/cmd/pulumi/config/config_set_all.go).
      if ((long === "plaintext" || long === "secret") && words[0] === "config" && words[1] === "set-all") {
        const text = inline ?? argv[++i];
        if (text === undefined) throw new CliError(`flag needs an argument: --${long}`);
        pairs.push({ secret: long === "secret", text });
      } else flags.set(long, true);
    } else {
      throw new CliError(`unknown flag: --${long}`);
    }
    if (UNSUPPORTED.has(long)) throw new CliError(`the local cloud's pulumi stand-in does not support --${long}`);
  }
  return { words, flags, pairs };
}

/** Runs one CLI invocation. */
export async function runCli(req: CliRequest, ctx: CliContext): Promise<CliResult> {
  try {
    return await dispatch(req, ctx);
  } catch (err) {
    if (err instanceof CliError) return fail(err.message);
    if (err instanceof UpdateConflictError) return fail(err.message);
    throw err;
  }
}

async function dispatch(req: CliRequest, ctx: CliContext): Promise<CliResult> {
  const { words, flags, pairs } = parseArgv(req.argv);
  const [command, sub, ...rest] = words;
  const stackFlag = typeof flags.get("stack") === "string" ? (flags.get("stack") as string) : undefined;
  const project = () => new WorkingFolder(req.cwd);
  const ok = (stdout = ""): CliResult => ({ code: 0, stdout, stderr: "" });
  const json = (value: unknown) => ok(JSON.stringify(value, null, 4) + "\n");

  switch (command) {
    case "stack": {
      if (sub === "init") {
        // pkg/cmd/pulumi/stack/stack_init.go: the name is the positional argument or --stack.
        const name = stackName(rest[0] ?? stackFlag);
        project();
        if (!ctx.stack(name).files.create()) throw new CliError(`stack '${name}' already exists`);
        return ok(`Created stack '${name}'\n`);
      }
      if (sub === "ls") {
        // pkg/cmd/pulumi/stack/stack_ls.go: --json prints [{ name, current, updateInProgress, ... }]; the SDK's
        // listStacks() reads it. Every stack of this backend belongs to the one project it serves.
        if (flags.get("json") !== true) throw new CliError("the local cloud's pulumi stand-in lists stacks as --json only");
        project();
        return json(ctx.stacks().map((name) => ({ name, current: false, updateInProgress: ctx.stack(name).files.lockHolder() !== undefined })));
      }
      if (sub === "select") {
        // pkg/cmd/pulumi/stack/stack_select.go → the backend's "no stack named '%s' found".
        const name = stackName(rest[0] ?? stackFlag);
        requireStack(ctx, name);
        return ok();
      }
      if (sub === "history") {
        project();
        return json(history(requireStack(ctx, stackName(stackFlag)), flags));
      }
      if (sub === "output") {
        // pkg/cmd/pulumi/stack/stack_output.go: --json prints every output; secrets as "[secret]" unless --show-secrets.
        // None of this program's outputs is secret.
        if (flags.get("json") !== true) throw new CliError("the local cloud's pulumi stand-in prints stack outputs as --json only");
        return json(requireStack(ctx, stackName(stackFlag)).outputs());
      }
      break;
    }
    case "config": {
      const folder = project();
      const name = stackName(stackFlag);
      const stack = requireStack(ctx, name);
      if (sub === undefined) {
        // pkg/cmd/pulumi/config/config.go (listConfig): --json prints key → { value, secret, objectValue? }.
        if (flags.get("json") !== true) throw new CliError("the local cloud's pulumi stand-in lists config as --json only");
        return json(toJsonConfig(folder.readConfig(name), flags.get("show-secrets") === true));
      }
      if (sub === "set") {
        // pkg/cmd/pulumi/config/config_set.go: `config set <key> [value]` (the SDK passes `--plaintext|--secret -- <value>`).
        if (rest.length !== 2) throw new CliError(`accepts between 1 and 2 arg(s), received ${rest.length}; the stand-in needs the value as an argument`);
        const config = folder.readConfig(name);
        const [key, value] = rest;
        config[configKey(key)] = flags.get("secret") === true ? { secure: encrypt(value), secret: true } : { value, secret: false };
        folder.writeConfig(name, config);
        return ok();
      }
      if (sub === "set-all") {
        // pkg/cmd/pulumi/config/config_set_all.go: each --plaintext/--secret key=value, split at the first '='.
        const config = folder.readConfig(name);
        for (const { secret, text } of pairs) {
          const eq = text.indexOf("=");
          if (eq <= 0) throw new CliError(`could not parse ${JSON.stringify(text)} as a configuration key/value pair`);
          const key = configKey(text.slice(0, eq));
          config[key] = secret ? { secure: encrypt(text.slice(eq + 1)), secret: true } : { value: text.slice(eq + 1), secret: false };
        }
        folder.writeConfig(name, config);
        return ok();
      }
      if (sub === "rm" || sub === "rm-all") {
        // pkg/cmd/pulumi/config/config_rm.go and config_rm_all.go.
        if (rest.length === 0) throw new CliError(`accepts ${sub === "rm" ? "1 arg" : "at least 1 arg"}(s), received 0`);
        const config = folder.readConfig(name);
        for (const key of rest) delete config[configKey(key)];
        folder.writeConfig(name, config);
        return ok();
      }
      if (sub === "refresh") {
        // pkg/cmd/pulumi/config/config_refresh.go: the config of the most recent update (backend.GetLatestConfiguration,
        // whatever its result); with --force the stack file is overwritten, otherwise it is kept as <file>.bak first.
        const latest = stack.files.readHistory().at(-1);
        if (latest === undefined) throw new CliError("getting latest configuration: no previous deployment");
        if (flags.get("force") !== true && existsSync(folder.stackFile(name))) writeFileSync(`${folder.stackFile(name)}.bak`, readFileSync(folder.stackFile(name)));
        folder.writeConfig(name, latest.config);
        return ok();
      }
      break;
    }
    case "up": {
      // pkg/cmd/pulumi/operations/up.go; the SDK passes --yes --skip-preview (stack.js up()).
      if (flags.get("yes") !== true) throw new CliError("--yes must be passed in to proceed when running in non-interactive mode");
      const name = stackName(stackFlag);
      const stack = requireStack(ctx, name);
      const stored = project().readConfig(name);
      const message = typeof flags.get("message") === "string" ? (flags.get("message") as string) : "";
      const started = Date.now();
      const { summary, error } = await stack.up({ stored, config: decryptAll(stored), message, abandoned: ctx.abandoned });
      if (error !== undefined) return { code: 255, stdout: `Updating (${name}):\n`, stderr: `error: update failed: ${error}\n` };
      const changes = Object.entries(summary.resourceChanges ?? {}).map(([op, n]) => `    ${n} ${op === "same" ? "unchanged" : op === "create" ? "created" : op === "update" ? "updated" : "deleted"}`);
      return ok(`Updating (${name}):\n\nResources:\n${changes.join("\n")}\n\nDuration: ${((Date.now() - started) / 1000).toFixed(0)}s\n`);
    }
    case "whoami": {
      // pkg/cmd/pulumi/whoami.go: --json prints { user, organizations?, url }; a file backend's user is the OS user.
      if (flags.get("json") !== true) throw new CliError("the local cloud's pulumi stand-in answers whoami as --json only");
      return json({ user: userInfo().username, url: ctx.backendUrl });
    }
    case "cancel": {
      // pkg/cmd/pulumi/cancel.go: refuses without --yes in non-interactive mode; with no update running the service
      // answers that there is nothing to cancel.
      if (flags.get("yes") !== true) throw new CliError("--yes must be passed in to proceed when running in non-interactive mode");
      const name = stackName(words[1] ?? stackFlag);
      const holder = requireStack(ctx, name).cancel();
      if (holder === undefined) throw new CliError(`stack '${name}' has no update in progress`);
      return ok(`The currently running update for '${name}' has been canceled!\n`);
    }
  }
  throw new CliError(`unknown command ${JSON.stringify(words.join(" "))} for the local cloud's pulumi stand-in`);
}

/**
 * `[<org>/[<project>/]]<stack>` (https://www.pulumi.com/docs/iac/concepts/stacks/#stack-names). A project other than
 * this one is refused as the CLI refuses a stack of another project.
 */
function stackName(ref: string | undefined): string {
  if (ref === undefined || ref === "") throw new CliError("no stack selected; pass --stack");
  const parts = ref.split("/");
  if (parts.length > 3) throw new CliError(`could not parse stack reference '${ref}'`);
  if (parts.length === 3 && parts[1] !== PROJECT) throw new CliError(`provided project name "${parts[1]}" doesn't match Pulumi.yaml`);
  const name = parts.at(-1)!;
  const problem = stackNameProblem(name);
  if (problem !== undefined) throw new CliError(`stack name '${name}' is not valid for the local cloud: expected ${problem}`);
  return name;
}

function requireStack(ctx: CliContext, name: string): LocalStack {
  const stack = ctx.stack(name);
  if (!stack.files.exists()) throw new CliError(`no stack named '${name}' found`);
  return stack;
}

/**
 * `pulumi stack history --json` (pkg/cmd/pulumi/stack/stack_history.go): newest first, `--page-size` 10 and `--page`
 * 1 by default; times in UTC seconds; an update in progress has no endTime and no resourceChanges; a secret's value only
 * with --show-secrets, and ERROR_UNABLE_TO_DECRYPT where it cannot be decrypted.
 */
function history(stack: LocalStack, flags: Parsed["flags"]): object[] {
  if (flags.get("json") !== true) throw new CliError("the local cloud's pulumi stand-in prints history as --json only");
  const pageSize = intFlag(flags, "page-size", 10);
  const page = intFlag(flags, "page", 1);
  const showSecrets = flags.get("show-secrets") === true;
  const newestFirst = stack.files.readHistory().reverse();
  // --page-size 0 lists every update here (the SDK never passes it: it omits both flags when pageSize is 0); the tests
  // use it to read a whole history in one call.
  const slice = pageSize <= 0 ? newestFirst : newestFirst.slice((Math.max(page, 1) - 1) * pageSize, Math.max(page, 1) * pageSize);
  return slice.map((u: StoredSummary) => ({
    version: u.version,
    kind: u.kind,
    startTime: cliTime(u.startTime),
    message: u.message,
    environment: u.environment,
    config: Object.fromEntries(
      Object.entries(u.config).map(([k, v]) => {
        if (!v.secret) return [k, plainJson(v)];
        if (!showSecrets) return [k, { secret: true }];
        return [k, { value: decrypt(v.secure) ?? UNDECRYPTABLE, secret: true }];
      }),
    ),
    result: u.result,
    ...(u.result === "in-progress" ? {} : { endTime: cliTime(u.endTime!), resourceChanges: u.resourceChanges ?? {} }),
  }));
}

function intFlag(flags: Parsed["flags"], name: string, fallback: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new CliError(`invalid argument "${String(raw)}" for "--${name}" flag: strconv.ParseInt: parsing "${String(raw)}": invalid syntax`);
  return n;
}

/** Update times are whole seconds since the epoch in the backend (backend.UpdateInfo), printed in UTC. */
function cliTime(iso: string): string {
  return new Date(Math.floor(Date.parse(iso) / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

function configKey(key: string): string {
  // A key without a namespace belongs to the project (pkg/cmd/pulumi/config/config.go ParseConfigKey).
  return key.includes(":") ? key : `${PROJECT}:${key}`;
}

function encrypt(plaintext: string): string {
  return SECRET_PREFIX + Buffer.from(plaintext, "utf8").toString("base64");
}

function decrypt(ciphertext: string): string | undefined {
  return ciphertext.startsWith(SECRET_PREFIX) ? Buffer.from(ciphertext.slice(SECRET_PREFIX.length), "base64").toString("utf8") : undefined;
}

/** A secret's plaintext, or the CLI's refusal when this secrets provider cannot decrypt it. */
function decryptOrFail(key: string, ciphertext: string): string {
  const value = decrypt(ciphertext);
  if (value === undefined) throw new CliError(`failed to decrypt configuration key '${key}': incorrect passphrase or another secrets provider`);
  return value;
}

/** A plain value as `config --json` and `stack history --json` print it (configValueJSON). */
function plainJson(v: Extract<StoredConfigValue, { secret: false }>): object {
  return v.objectValue === undefined ? { value: v.value, secret: false } : { value: v.value, objectValue: v.objectValue, secret: false };
}

function decryptAll(stored: Record<string, StoredConfigValue>): ConfigMap {
  return Object.fromEntries(Object.entries(stored).map(([k, v]) => [k, v.secret ? { value: decryptOrFail(k, v.secure), secret: true } : { value: v.value, secret: false }]));
}

function toJsonConfig(stored: Record<string, StoredConfigValue>, showSecrets: boolean): Record<string, object> {
  return Object.fromEntries(
    Object.entries(stored).map(([k, v]) => [k, !v.secret ? plainJson(v) : showSecrets ? { value: decryptOrFail(k, v.secure), secret: true } : { value: "[secret]", secret: true }]),
  );
}

/**
 * The working folder: Pulumi.yaml names the project and `stackConfigDir`; a stack's config is the `config:` map of
 * `<stackConfigDir>/Pulumi.<stack>.yaml` (https://www.pulumi.com/docs/iac/concepts/projects/project-file/). Writes keep
 * the file's comments and other keys, as the CLI's YAML round trip does.
 */
class WorkingFolder {
  private readonly configDir: string;

  constructor(readonly dir: string) {
    const projectFile = path.join(dir, "Pulumi.yaml");
    if (!existsSync(projectFile)) throw new CliError(`no Pulumi.yaml project file found (searching upwards from ${dir})`);
    const project = parseYaml(readFileSync(projectFile, "utf8")) as { name?: string; stackConfigDir?: string };
    if (project.name !== PROJECT) throw new CliError(`the local cloud's pulumi stand-in runs project ${PROJECT}, not ${String(project.name)}`);
    this.configDir = path.join(dir, project.stackConfigDir ?? ".");
  }

  stackFile(stack: string): string {
    return path.join(this.configDir, `Pulumi.${stack}.yaml`);
  }

  readConfig(stack: string): Record<string, StoredConfigValue> {
    const file = this.stackFile(stack);
    if (!existsSync(file)) return {};
    const doc = parseYaml(readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
    const out: Record<string, StoredConfigValue> = {};
    for (const [key, value] of Object.entries(doc?.config ?? {})) {
      if (value !== null && typeof value === "object" && !Array.isArray(value) && "secure" in value) out[key] = { secure: String((value as { secure: unknown }).secure), secret: true };
      else if (value !== null && typeof value === "object") out[key] = { value: JSON.stringify(value), objectValue: value, secret: false };
      else out[key] = { value: value === null ? "" : String(value), secret: false };
    }
    return out;
  }

  writeConfig(stack: string, config: Record<string, StoredConfigValue>): void {
    const file = this.stackFile(stack);
    const doc = parseDocument(existsSync(file) ? readFileSync(file, "utf8") : "config: {}\n");
    if (!doc.has("config") || doc.get("config") === null) doc.set("config", doc.createNode({}));
    const current = this.readConfig(stack);
    for (const key of Object.keys(current)) if (!(key in config)) doc.deleteIn(["config", key]);
    for (const [key, v] of Object.entries(config)) {
      const was = current[key];
      if (was !== undefined && JSON.stringify(was) === JSON.stringify(v)) continue;
      doc.setIn(["config", key], v.secret ? { secure: v.secure } : v.objectValue !== undefined ? v.objectValue : v.value);
    }
    writeFileSync(file, String(doc));
  }
}
