// docs/RUNBOOK.md as a tested document (issue 14, point 6): every fenced command block marked for it runs here, in
// order, against a local cloud, so the runbook cannot drift from the CLI. The marker format is defined in the
// runbook's own "How this runbook is tested" section and parsed by parseRunbook below:
//
//   ```sh runbook               run in a fresh `bash -e -o pipefail`, cwd the repository; must exit 0
//   ```sh runbook exit=N        the same; must exit N (under -e: the first command that fails, so put it last)
//   ```sh runbook background    one command, started and left running until after the last block; the next block
//                               starts once it printed its first line on stdout
//   ```sh aws-only              needs an AWS account or a real Pulumi backend: not run, only parsed by `bash -n`
//
// Every other fenced block is text (mermaid, pictures, YAML, sample output). A shell block (sh, bash, shell, console,
// zsh), or a block with no language whose lines start with a command this tool documents (bluegreen, pulumi, aws,
// npx, npm, curl), must carry one of the markers above, so a new command block cannot slip in untested.
import { expect } from "chai";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { readJson, REPO_ROOT } from "../../automation/local/state";

export const RUNBOOK = path.join(REPO_ROOT, "docs", "RUNBOOK.md");

export interface RunbookBlock {
  /** 1-based line of the opening fence. */
  line: number;
  /** The nearest heading above the block. */
  section: string;
  mode: "run" | "background" | "aws-only";
  /** The exit code a `run` block must end with. */
  exit: number;
  code: string;
}

const SHELL_LANGUAGES = new Set(["sh", "bash", "shell", "console", "zsh"]);
const COMMAND_LINE = /^\s*(\$\s*)?(bluegreen|pulumi|aws|npx|npm|curl)\s/;

/** The runbook's fenced blocks that carry a marker; throws, naming the line, on a command block without one. */
export function parseRunbook(text: string): RunbookBlock[] {
  const lines = text.split("\n");
  const blocks: RunbookBlock[] = [];
  let section = "(top)";
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#{1,6}\s+(.*)$/.exec(lines[i]);
    if (heading) section = heading[1];
    const open = /^(\s*)(`{3,}|~{3,})\s*(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, , fence, info] = open;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !lines[j].trimStart().startsWith(fence)) body.push(lines[j++]);
    if (j >= lines.length) throw new Error(`RUNBOOK.md:${i + 1}: fenced block never closed`);
    const [language = "", ...words] = info.trim().split(/\s+/).filter((w) => w !== "");
    const where = `RUNBOOK.md:${i + 1} (${section})`;
    const marked = words.includes("runbook") || words.includes("aws-only");
    if (!marked) {
      if (SHELL_LANGUAGES.has(language) || (language === "" && body.some((l) => COMMAND_LINE.test(l)))) {
        throw new Error(`${where}: a command block without a marker: fence it as \`\`\`sh runbook (run by tests/docs/runbook.test.ts) or \`\`\`sh aws-only (not runnable on the local cloud)`);
      }
      i = j;
      continue;
    }
    if (language !== "sh") throw new Error(`${where}: a marked block must be \`\`\`sh, not \`\`\`${language}`);
    let mode: RunbookBlock["mode"] = words.includes("aws-only") ? "aws-only" : "run";
    let exit = 0;
    for (const word of words) {
      if (word === "runbook" || word === "aws-only") continue;
      const code = /^exit=(\d{1,3})$/.exec(word);
      if (code && mode === "run") exit = Number(code[1]);
      else if (word === "background" && mode === "run") mode = "background";
      else throw new Error(`${where}: unknown marker word ${JSON.stringify(word)} (allowed: runbook, exit=N, background, aws-only)`);
    }
    const code = body.join("\n");
    if (mode === "background" && code.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#")).length !== 1) {
      throw new Error(`${where}: a background block holds exactly one command`);
    }
    blocks.push({ line: i + 1, section, mode, exit, code });
    i = j;
  }
  return blocks;
}

interface Ran {
  code: number | null;
  output: string;
}

/** A block in a fresh bash, the way a reader pastes it into a terminal (no timing assumptions: generous limit). */
function runBlock(block: RunbookBlock, env: NodeJS.ProcessEnv, limitMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-e", "-o", "pipefail", "-c", block.code], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n[runbook test: still running after ${limitMs / 1000} s; stopped]`;
      process.kill(-child.pid!, "SIGKILL");
    }, limitMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Starts a background block; resolves once it printed a line on stdout (or rejects with what it printed when it ended). */
function startBackground(block: RunbookBlock, env: NodeJS.ProcessEnv, limitMs: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // exec: the command itself is the process group's leader, so stopping the group stops it and nothing else.
    const child = spawn("bash", ["-e", "-c", `exec ${block.code.trim()}`], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    const timer = setTimeout(() => reject(new Error(`RUNBOOK.md:${block.line}: printed no line within ${limitMs / 1000} s:\n${output}`)), limitMs);
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    child.stdout!.on("data", (d: Buffer) => {
      output += d.toString();
      if (output.includes("\n")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      reject(new Error(`RUNBOOK.md:${block.line}: the background command ended (exit ${code}) before printing a line:\n${output}`));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const hard = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 15_000);
    child.on("close", () => {
      clearTimeout(hard);
      resolve();
    });
    // SIGTERM: `bluegreen local up` closes its servers and removes cloud.json on it.
    process.kill(-child.pid!, "SIGTERM");
  });
}

function gitStatus(): string {
  return spawnSync("git", ["status", "--porcelain", "--untracked-files=all"], { cwd: REPO_ROOT, encoding: "utf8" }).stdout;
}

describe("docs/RUNBOOK.md", function () {
  this.timeout(300_000);
  let blocks: RunbookBlock[] = [];
  let runnable: RunbookBlock[] = [];
  before(() => {
    blocks = parseRunbook(readFileSync(RUNBOOK, "utf8"));
    runnable = blocks.filter((b) => b.mode !== "aws-only");
  });

  it("marks every command block, and each aws-only block is valid bash", () => {
    expect(runnable.length, "blocks the test runs").to.be.at.least(10);
    for (const block of blocks.filter((b) => b.mode === "aws-only")) {
      const res = spawnSync("bash", ["-n", "-c", block.code], { encoding: "utf8" });
      expect(res.status, `RUNBOOK.md:${block.line}: ${res.stderr}`).to.equal(0);
    }
  });

  describe("every marked block, in order, against a local cloud", () => {
    let scratch: string;
    let env: NodeJS.ProcessEnv;
    const background: ChildProcess[] = [];
    const before_ = gitStatus();

    before(() => {
      scratch = mkdtempSync(path.join(tmpdir(), "bluegreen-runbook-"));
      const bin = path.join(scratch, "bin");
      mkdirSync(bin);
      // `bluegreen` as the runbook writes it: what `npm install -g`/`npx bluegreen` would run.
      writeFileSync(path.join(bin, "bluegreen"), `#!/bin/sh\nexec "${process.execPath}" "${path.join(REPO_ROOT, "bin", "bluegreen.js")}" "$@"\n`);
      chmodSync(path.join(bin, "bluegreen"), 0o755);
      env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}`, BLUEGREEN_STATE_DIR: path.join(scratch, "state"), NO_COLOR: "1" };
      // No job summary from these runs, whatever CI runs the test.
      delete env.GITHUB_STEP_SUMMARY;
      delete env.GITHUB_ACTIONS;
    });

    after(async () => {
      for (const child of background) await stop(child);
      rmSync(scratch, { recursive: true, force: true });
    });

    it("runs each one with the exit code it declares, and leaves the checkout as it was", async () => {
      const ran: number[] = [];
      for (const block of runnable) {
        const where = `RUNBOOK.md:${block.line} (${block.section})`;
        const t0 = Date.now();
        if (block.mode === "background") {
          background.push(await startBackground(block, env, 60_000));
        } else {
          const res = await runBlock(block, env, 180_000);
          expect(res.code, `${where} exited ${res.code}, expected ${block.exit}:\n${block.code}\n--- output ---\n${res.output}`).to.equal(block.exit);
        }
        ran.push(block.line);
        if (process.env.RUNBOOK_TIMINGS) console.log(`      RUNBOOK.md:${block.line} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
      // Every marked block ran: none skipped, none twice.
      expect(ran).to.deep.equal(runnable.map((b) => b.line));
      expect(readJson(path.join(env.BLUEGREEN_STATE_DIR!, "cloud.json")), "the local cloud the runbook started is still up").to.not.equal(undefined);
      expect(gitStatus(), "files the runbook's commands changed in the checkout").to.equal(before_);
      console.log(`      ran ${ran.length} runbook blocks (${blocks.length - runnable.length} aws-only blocks parsed)`);
    });
  });
});
