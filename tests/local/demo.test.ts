// `npm start` is the first thing a newcomer runs: on a fresh clone it must finish, show each step's configured and
// observed share, and leave `git status` clean (all state goes to the gitignored .bluegreen/). It runs in a fresh
// clone of this repository (HEAD, with this checkout's node_modules linked in), so work in progress elsewhere in
// the tree can neither disturb the check nor be blamed on the demo.
import { expect } from "chai";
import { execFileSync, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { REPO_ROOT } from "../../automation/local/state";

function gitStatus(dir: string): string {
  return execFileSync("git", ["status", "--porcelain"], { cwd: dir, encoding: "utf8" });
}

describe("npm start (the local demo)", function () {
  this.timeout(180_000);

  it("shifts 1.0.0 on blue to 2.0.0 on green through 10, 25, 50, 75, 100, printing configured and observed shares, and exits 0", async () => {
    const clone = path.join(mkdtempSync(path.join(tmpdir(), "bluegreen-clone-")), "repo");
    try {
      await runDemoIn(clone);
    } finally {
      rmSync(path.dirname(clone), { recursive: true, force: true });
    }
  });
});

async function runDemoIn(clone: string): Promise<void> {
  execFileSync("git", ["clone", "--quiet", REPO_ROOT, clone]);
  symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(clone, "node_modules"));
  // The link stands in for `npm ci`'s folder; .gitignore's "node_modules/" matches folders, not links.
  appendFileSync(path.join(clone, ".git", "info", "exclude"), "node_modules\n");
  expect(gitStatus(clone)).to.equal("");
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn("npm", ["start", "--silent"], { cwd: clone, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true" } });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    child.on("error", reject);
    child.on("close", (c) => resolve({ code: c, stdout: out, stderr: err }));
  });
  expect(code, stdout + stderr).to.equal(0);
  // The driver's progress (stderr): one line per step with the configured weight and the share observed over
  // 1,000 fresh viewers (stacks/Pulumi.local.yaml), so 5 points is more than three standard deviations.
  for (const [i, weight] of [10, 25, 50, 75, 100].entries()) {
    const line = new RegExp(`step ${i + 1}/5: weight +${weight}% +observed +(\\d+\\.\\d)% of (\\d+) viewers +passed`).exec(stderr);
    expect(line, stderr).to.not.equal(null);
    expect(Number(line![2])).to.be.at.least(1000);
    expect(Math.abs(Number(line![1]) - weight)).to.be.at.most(5);
  }
  expect(stdout).to.match(/summary: 2\.0\.0 on green is stable at 100%/);
  expect(gitStatus(clone)).to.equal("");
}
