// The `bluegreen` CLI. The yargs layer only parses and maps argv to typed options; this one top-level
// wrapper prints a failure as one line on stderr and sets the exit code.
import yargs, { type Arguments, type CommandModule } from "yargs";
import { hideBin } from "yargs/helpers";
import { version } from "../package.json";
import { auditCommand } from "./auditCommands";
import { EXIT, exitCodeOf } from "./errors";
import { JobSummary } from "./jobSummary";
import { driverCommands } from "./commands/driver";
import { reportCommand } from "./commands/report";
import { doctorCommand } from "./doctor";
import { localCommands } from "./local/commands";
import { nearest } from "./words";

// Each concern registers its commands here (one module per concern).
const commands: CommandModule[] = [...driverCommands, reportCommand, auditCommand, doctorCommand as CommandModule, ...localCommands];

/** The command that prints the bash/zsh completion script (`bluegreen completion >> ~/.bashrc`). */
const COMPLETION_COMMAND = "completion";

export async function main(argv: string[]): Promise<number> {
  // The command path the parse reached (e.g. ["local", "reset"]), so a usage error points at that command's help.
  let reached: string[] | undefined;
  const parser = yargs(argv)
    .scriptName("bluegreen")
    .strict()
    .demandCommand(1, "name a command")
    .recommendCommands()
    .help()
    .version(version)
    // Tests call main() in-process: --help, --version and the completion script must return, not end the process.
    .exitProcess(false)
    .completion(COMPLETION_COMMAND, "print the bash/zsh completion script (append it to ~/.bashrc or ~/.zshrc)")
    // Before validation: yargs checks required options before unknown ones, so `--relase 2.0.9` would be reported as
    // a missing --release. A mistyped flag is the cause; name it first.
    .middleware((args, scope?: unknown) => {
      reached = commandPath(args);
      const unknown = unknownCommandOrOptions(args, scope as YargsScope, argv);
      if (unknown !== undefined) throw new CliUsage(`${unknown} (allowed: see ${helpOf(reached)})`);
    }, true)
    .fail((msg, err) => {
      // A handler's own error arrives without a message; yargs's parse and validation failures carry one.
      if (!msg) throw err;
      // recommendCommands and demandCommand fail before any middleware runs; then only the first word typed is known.
      const path = reached ?? commandPath({ _: [argv.find((a) => !a.startsWith("-")) ?? ""] });
      throw new CliUsage(yargsUsageLine(msg, argv, path));
    });
  for (const command of commands) parser.command(command);
  try {
    await parser.parseAsync();
    return EXIT.ok;
  } catch (err) {
    const code = err instanceof CliUsage ? EXIT.badInput : exitCodeOf(err);
    // A command writes its own job summary; a command line yargs refused never reached one.
    if (err instanceof CliUsage) new JobSummary({ command: reached?.join(" ") ?? argv.find((a) => !a.startsWith("-")) ?? "" }).write(process.env, code, err);
    process.stderr.write(`bluegreen: ${err instanceof Error ? err.message : String(err)}\n`);
    return code;
  }
}

class CliUsage extends Error {}

/**
 * What a yargs instance says about the options in scope. yargs 17 passes itself to a middleware as the second
 * argument (lib/middleware.ts, applyMiddleware), which @types/yargs leaves out.
 */
interface YargsScope {
  getOptions(): { key: Record<string, unknown>; alias: Record<string, string[]>; hiddenOptions: string[] };
}

const topLevelNames = (): string[] => [...commands.map((c) => String(c.command).split(" ")[0]), COMPLETION_COMMAND];

/** The commands named in `_`: a top-level command, and its subcommand when it is a group (`local <command>`). */
function commandPath(args: Pick<Arguments, "_">): string[] {
  const [first, second] = args._.map(String);
  const module = commands.find((c) => String(c.command).split(" ")[0] === first);
  if (module === undefined) return [];
  return String(module.command).includes("<command>") && second !== undefined ? [first, second] : [first];
}

function helpOf(path: string[]): string {
  return ["bluegreen", ...path, "--help"].join(" ");
}

/**
 * An unknown command, else the unknown options in the order typed, each with the nearest known option when one is
 * close; undefined when everything is known. yargs's own unknown-argument check stays for stray positionals.
 */
function unknownCommandOrOptions(args: Arguments, scope: YargsScope, raw: string[]): string | undefined {
  const first = args._[0];
  if (first !== undefined && !topLevelNames().includes(String(first))) return `unknown command ${String(first)}`;
  // A group reached without a subcommand it knows keeps the word in its `<command>` positional.
  if (typeof args.command === "string") return `unknown command ${args.command}`;

  const { key, alias, hiddenOptions } = scope.getOptions();
  const declared = Object.keys(key);
  const known = new Set(["_", "$0", ...declared, ...Object.keys(alias), ...Object.values(alias).flat()].flatMap((k) => [k, camelCase(k)]));
  const unknown = Object.keys(args).filter((k) => !known.has(k));
  // yargs-parser also stores `--foo-bar` as fooBar: report the spelling that was typed, once.
  const typed = unknown.filter((k) => !unknown.some((other) => other !== k && camelCase(other) === k));
  if (typed.length === 0) return undefined;
  const candidates = declared.filter((k) => !hiddenOptions.includes(k));
  const named = typed
    .map((k) => ({ k, at: raw.findIndex((a) => a === `--${k}` || a.startsWith(`--${k}=`) || a === `--no-${k}`) }))
    .sort((a, b) => (a.at < 0 ? Infinity : a.at) - (b.at < 0 ? Infinity : b.at))
    .map(({ k, at }) => {
      const flag = at >= 0 ? raw[at].split("=")[0] : k.length === 1 ? `-${k}` : `--${k}`;
      const near = nearest(k, candidates);
      const prefix = flag.startsWith("--no-") ? "--no-" : "--";
      return near === undefined ? flag : `${flag} (did you mean ${prefix}${near}?)`;
    });
  return `unknown option${named.length > 1 ? "s" : ""} ${named.join(", ")}`;
}

function camelCase(key: string): string {
  return key.replace(/-+([^-])/g, (_, c: string) => c.toUpperCase());
}

/**
 * yargs's messages span lines ("Invalid values:\n  Argument: ...") and do not list what is allowed; the contract is
 * one line, so flatten it, name an unknown command as such, and point at the command's help, which lists every flag
 * and its allowed values.
 */
function yargsUsageLine(msg: string, argv: string[], path: string[]): string {
  let line = msg.replace(/\s*\n\s*/g, " ");
  const suggestion = /^Did you mean (\S+)\?$/.exec(line);
  if (suggestion !== null) {
    // recommendCommands fires before any middleware: the unknown word is the first one after the path reached.
    const word = argv.filter((a) => !a.startsWith("-"))[path.length] ?? "";
    // yargs suggests anything within 3 edits (`zzz` → `up`); keep only a suggestion within a typo's reach.
    const near = nearest(word, [suggestion[1]]);
    line = `unknown command ${word}${near === undefined ? "" : ` (did you mean ${near}?)`}`;
  } else if (/^Not enough non-option arguments: got 0/.test(line)) {
    line = "name a command";
  } else {
    line = line.replace(/^Unknown arguments?: /, "unexpected argument: ");
  }
  return `${line} (allowed: see ${helpOf(path)})`;
}

/** Entry point of bin/bluegreen.js. */
export function run(): void {
  void main(hideBin(process.argv)).then((code) => {
    process.exitCode = code;
  });
}
