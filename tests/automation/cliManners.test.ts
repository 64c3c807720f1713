// The CLI's manners (issue 14, point 4): --version, an unknown flag or command named first with a did-you-mean, bad
// numbers named, shell completion, and a `local reset` that removes only a folder the local cloud made. Every bad
// input exits 2 with exactly one line on stderr naming it, and changes nothing.
import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { main } from "../../automation/cli";
import { LOCAL_CLOUD_MARKER, startLocalCloud } from "../../automation/local/cloud";
import { version } from "../../package.json";

const REPO = path.join(__dirname, "..", "..");

interface Outcome {
  code: number;
  stdout: string;
  /** stderr split into lines, without the trailing newline. */
  lines: string[];
}

/** Runs `bluegreen <args>` in-process, capturing what it writes. */
async function bluegreen(...args: string[]): Promise<Outcome> {
  const out: string[] = [];
  const err: string[] = [];
  const write = { stdout: process.stdout.write.bind(process.stdout), stderr: process.stderr.write.bind(process.stderr) };
  process.stdout.write = ((chunk: string) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout: out.join(""), lines: err.join("").split("\n").filter((l) => l !== "") };
  } finally {
    process.stdout.write = write.stdout;
    process.stderr.write = write.stderr;
  }
}

/** Runs `node bin/bluegreen.js <args>` as a child process, the way an operator does. */
function bluegreenProcess(env: NodeJS.ProcessEnv, ...args: string[]): Outcome {
  const res = spawnSync(process.execPath, [path.join(REPO, "bin", "bluegreen.js"), ...args], { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8" });
  return { code: res.status ?? -1, stdout: res.stdout, lines: res.stderr.split("\n").filter((l) => l !== "") };
}

function expectRefused(outcome: Outcome, line: string): void {
  expect(outcome.code, outcome.lines.join("\n")).to.equal(2);
  expect(outcome.lines).to.deep.equal([line]);
}

describe("bluegreen: the CLI's manners", function () {
  // Bad input must be refused before anything touches the local cloud: point it at a folder that must stay absent.
  let scratch: string;
  let stateDir: string;
  let previousStateDir: string | undefined;
  before(() => {
    scratch = mkdtempSync(path.join(tmpdir(), "bluegreen-manners-"));
    stateDir = path.join(scratch, "state");
    previousStateDir = process.env.BLUEGREEN_STATE_DIR;
    process.env.BLUEGREEN_STATE_DIR = stateDir;
  });
  afterEach(() => {
    expect(existsSync(stateDir), "the local cloud's state folder").to.equal(false);
  });
  after(() => {
    if (previousStateDir === undefined) delete process.env.BLUEGREEN_STATE_DIR;
    else process.env.BLUEGREEN_STATE_DIR = previousStateDir;
    rmSync(scratch, { recursive: true, force: true });
  });

  describe("--version", () => {
    it("prints the package version on stdout and exits 0", async () => {
      const outcome = await bluegreen("--version");
      expect(outcome).to.deep.equal({ code: 0, stdout: `${version}\n`, lines: [] });
    });
  });

  describe("unknown options and commands", () => {
    it("names a mistyped flag, with the flag it was meant to be, before the required flag it leaves missing", async () => {
      expectRefused(
        await bluegreen("deploy", "--stack", "local", "--artifact", "x", "--relase", "2.0.9"),
        "bluegreen: unknown option --relase (did you mean --release?) (allowed: see bluegreen deploy --help)",
      );
    });

    it("names every unknown flag in the order typed, suggesting a known flag only when it is a typo away", async () => {
      expectRefused(
        await bluegreen("deploy", "--stack", "local", "--artifact", "x", "--release", "2", "--frobnicate", "--dry-rn", "--no-jsn"),
        "bluegreen: unknown options --frobnicate, --dry-rn (did you mean --dry-run?), --no-jsn (did you mean --no-json?) (allowed: see bluegreen deploy --help)",
      );
    });

    it("names an unknown short flag on a subcommand and points at that subcommand's help", async () => {
      expectRefused(await bluegreen("local", "reset", "-x"), "bluegreen: unknown option -x (allowed: see bluegreen local reset --help)");
    });

    it("still names a missing required flag when every flag given is known", async () => {
      expectRefused(await bluegreen("deploy", "--stack", "local", "--artifact", "x"), "bluegreen: Missing required argument: release (allowed: see bluegreen deploy --help)");
    });

    it("names a mistyped command with the command it was meant to be", async () => {
      expectRefused(await bluegreen("deplyo", "--stack", "local"), "bluegreen: unknown command deplyo (did you mean deploy?) (allowed: see bluegreen --help)");
    });

    it("names an unknown command with no close match without guessing", async () => {
      expectRefused(await bluegreen("frobnicate"), "bluegreen: unknown command frobnicate (allowed: see bluegreen --help)");
    });

    it("names a mistyped subcommand and points at its group's help", async () => {
      expectRefused(await bluegreen("local", "rset"), "bluegreen: unknown command rset (did you mean reset?) (allowed: see bluegreen local --help)");
      expectRefused(await bluegreen("local", "zzz"), "bluegreen: unknown command zzz (allowed: see bluegreen local --help)");
    });

    it("names a stray argument after a command", async () => {
      expectRefused(await bluegreen("status", "--stack", "local", "extra"), "bluegreen: unexpected argument: extra (allowed: see bluegreen status --help)");
    });
  });

  describe("a stack that does not exist", () => {
    // With no local cloud yet, no stack exists; the afterEach hook checks that the refusal made no state folder.
    // tests/e2e/badInput.test.ts lists known stacks, local and in a Pulumi backend.
    for (const command of ["status", "history", "verify", "rollback"]) {
      it(`${command}: exit 2 naming the stack and the known ones, and nothing created`, async () => {
        expectRefused(
          await bluegreen(command, "--stack", "local-typo"),
          `bluegreen: --stack = "local-typo": no such stack on the local cloud (known: none); a local stack comes into being with its first deploy`,
        );
      });
    }
    it("deploy --dry-run: exit 2 as well (a dry run changes nothing, so it creates no stack)", async () => {
      expectRefused(
        await bluegreen("deploy", "--stack", "local-typo", "--artifact", path.join(REPO, "examples", "widget", "releases", "1.0.0"), "--release", "1.0.0", "--dry-run"),
        `bluegreen: --stack = "local-typo": no such stack on the local cloud (known: none); a local stack comes into being with its first deploy`,
      );
    });
  });

  describe("a typo of a local stack on a machine with no Pulumi CLI", () => {
    // Any name that is not local-* goes to the Pulumi CLI on PATH; with none there, a typo of a local stack must not
    // send a newcomer off to install it. A state folder of its own, holding stack `local` as the backend lists it.
    let typoState: string;
    const noPulumi = () => ({ BLUEGREEN_STATE_DIR: typoState, PATH: path.dirname(process.execPath) });
    before(() => {
      typoState = path.join(scratch, "typo-state");
      mkdirSync(path.join(typoState, "stacks", "local"), { recursive: true });
      writeFileSync(path.join(typoState, "stacks", "local", "stack.json"), "{}");
    });
    for (const typo of ["lcoal", "Local", "locl"]) {
      it(`${typo}: exit 2, did you mean local`, () => {
        expectRefused(bluegreenProcess(noPulumi(), "status", "--stack", typo), `bluegreen: --stack = "${typo}": no such stack (did you mean local? local stacks: local)`);
      });
    }
    it("any other name: exit 3, how to install the CLI, and which stacks need none", () => {
      const outcome = bluegreenProcess(noPulumi(), "status", "--stack", "prod");
      expect(outcome.code, outcome.lines.join("\n")).to.equal(3);
      expect(outcome.lines).to.have.length(1);
      expect(outcome.lines[0]).to.match(/^bluegreen: the Pulumi CLI is not installed \(no `pulumi` on PATH\); install it: .*; local stacks need none \(known: local\)$/);
    });
  });

  describe("rollback --to", () => {
    for (const bad of ["abc", "0", "-1", "1.5", "99999999999999999999"]) {
      it(`refuses --to ${bad}, naming the flag, the value and that a positive integer update version is expected`, async () => {
        expectRefused(
          await bluegreen("rollback", "--stack", "local", "--to", bad),
          `bluegreen: --to = ${JSON.stringify(bad)}: expected a positive integer update version (bluegreen history lists them)`,
        );
      });
    }
  });

  describe("doctor", function () {
    this.timeout(120_000);
    it("checks in order, says pass, skip or FAIL with what to do, exits 3 on a failure, and creates nothing", async () => {
      const outcome = await bluegreen("doctor", "--stack", "local-typo");
      expect(outcome.code, outcome.lines.join("\n")).to.equal(3);
      const lines = outcome.stdout.trim().split("\n");
      expect(lines.map((l) => l.split(/\s+/).slice(0, 2).join(" "))).to.deep.equal(["pass node", "pass pulumi", "pass backend", "FAIL stack", "skip aws", "pass browser"]);
      expect(lines[0]).to.include(`Node.js ${process.versions.node}`);
      expect(lines[1]).to.include("the local cloud's stand-in").and.match(/version \d+\.\d+\.\d+/);
      expect(lines[3]).to.include('--stack = "local-typo": no such stack on the local cloud (known: none)');
      expect(outcome.lines).to.deep.equal(["bluegreen: doctor: 1 of 6 checks failed (stack); each FAIL line says what to do"]);
    });
  });

  describe("rollback --now", () => {
    it("refuses --to with it, naming both", async () => {
      expectRefused(
        await bluegreen("rollback", "--stack", "local", "--now", "--to", "3"),
        "bluegreen: --to = 3: expected no --to with --now (--now restores the last stable routing; rollback --to restores a chosen one)",
      );
    });
  });

  describe("shell completion", () => {
    it("prints a completion script that asks bluegreen itself for the words", async () => {
      const outcome = await bluegreen("completion");
      expect(outcome.code).to.equal(0);
      expect(outcome.stdout).to.contain("bluegreen --get-yargs-completions").and.to.match(/complete .* bluegreen\n/);
    });

    it("completes command names, and a command's own flags", async () => {
      const commands = await bluegreen("--get-yargs-completions", "bluegreen", "");
      expect(commands.stdout.split("\n")).to.include.members(["deploy", "rollback", "local", "completion"]);
      const flags = await bluegreen("--get-yargs-completions", "bluegreen", "deploy", "--");
      expect(flags.stdout.split("\n")).to.include.members(["--stack", "--artifact", "--release", "--dry-run"]);
    });
  });

  describe("local reset", function () {
    this.timeout(60_000);

    it("refuses a folder the local cloud did not make: exit 2, one line naming it, the notes in it intact", () => {
      const foreign = path.join(scratch, "notes");
      const notes = path.join(foreign, "notes.md");
      mkdirSync(foreign);
      writeFileSync(notes, "my notes\n");
      expectRefused(
        bluegreenProcess({ BLUEGREEN_STATE_DIR: foreign }, "local", "reset"),
        `bluegreen: state folder = ${foreign}: expected a folder the local cloud made (it holds no ${LOCAL_CLOUD_MARKER}); nothing removed (a local cloud folder from before the marker: remove it by hand)`,
      );
      expect(readFileSync(notes, "utf8")).to.equal("my notes\n");
    });

    it("removes a folder the local cloud made", async () => {
      const made = path.join(scratch, "made-by-the-cloud");
      const cloud = await startLocalCloud({ stateDir: made });
      await cloud.close();
      expect(existsSync(path.join(made, LOCAL_CLOUD_MARKER))).to.equal(true);
      const outcome = bluegreenProcess({ BLUEGREEN_STATE_DIR: made }, "local", "reset");
      expect(outcome.code, outcome.lines.join("\n")).to.equal(0);
      expect(existsSync(made)).to.equal(false);
    });

    it("says there is nothing to remove when the folder does not exist, and exits 0", () => {
      const outcome = bluegreenProcess({ BLUEGREEN_STATE_DIR: stateDir }, "local", "reset");
      expect(outcome).to.deep.equal({ code: 0, stdout: `nothing to remove: ${stateDir} does not exist\n`, lines: [] });
    });
  });
});
