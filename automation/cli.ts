// The `bluegreen` CLI. The yargs layer only parses and maps argv to typed options; this one top-level
// wrapper prints a failure as one line on stderr and sets the exit code.
import yargs, { type CommandModule } from "yargs";
import { hideBin } from "yargs/helpers";
import { ConfigError } from "../infra/config";
import { auditCommand } from "./auditCommands";
import { EXIT, exitCodeOf } from "./errors";
import { driverCommands } from "./commands/driver";
import { localCommands } from "./local/commands";

// Each concern registers its commands here (one module per concern).
const commands: CommandModule[] = [...driverCommands, auditCommand, ...localCommands];

export async function main(argv: string[]): Promise<number> {
  const parser = yargs(argv)
    .scriptName("bluegreen")
    .strict()
    .demandCommand(1, "name a command")
    .recommendCommands()
    .help()
    .version(false)
    .fail((msg, err) => {
      // A handler's own error arrives without a message; yargs's parse and validation failures carry one.
      if (!msg) throw err;
      throw new CliUsage(yargsUsageLine(msg, argv));
    });
  for (const command of commands) parser.command(command);
  try {
    await parser.parseAsync();
    return EXIT.ok;
  } catch (err) {
    const code = err instanceof CliUsage || err instanceof ConfigError ? EXIT.badInput : exitCodeOf(err);
    process.stderr.write(`bluegreen: ${err instanceof Error ? err.message : String(err)}\n`);
    return code;
  }
}

class CliUsage extends Error {}

/**
 * yargs's messages span lines ("Invalid values:\n  Argument: ...") and do not list what is allowed; the contract is
 * one line, so flatten it and point at the command's help, which lists every flag and its allowed values.
 */
function yargsUsageLine(msg: string, argv: string[]): string {
  const known = commands.map((c) => String(c.command).split(" ")[0]);
  const help = known.includes(argv[0]) ? `bluegreen ${argv[0]} --help` : "bluegreen --help";
  return `${msg.replace(/\s*\n\s*/g, " ")} (allowed: see ${help})`;
}

/** Entry point of bin/bluegreen.js. */
export function run(): void {
  void main(hideBin(process.argv)).then((code) => {
    process.exitCode = code;
  });
}
