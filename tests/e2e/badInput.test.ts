// Bad input to the CLI, run as a child process: each invocation exits 2 with exactly one line on stderr naming the
// flag, the value and what is allowed, and changes nothing: the engine's config and history files keep their bytes
// and every bucket lists the same objects (same ETag, size and time) before and after.
import { ListBucketsCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { expect } from "chai";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { LeaseStore } from "../../automation/lease";
import { stackDir } from "../../automation/local/state";
import { RELEASES_DIR, startE2E, type CliResult, type E2E } from "./support";

const R1 = path.join(RELEASES_DIR, "1.0.0");
const R2 = path.join(RELEASES_DIR, "2.0.0");
/** A stack with exactly one release deployed: nothing earlier to roll back to. */
const ONCE = "local-once";

interface BadInput {
  what: string;
  args: (dirs: { missing: string; noIndex: string; brokenRef: string }) => string[];
  /** Fragments the line must hold: the flag or field, the value, and what is allowed. */
  says: string[];
  /** Takes the stack's lock before refusing, so it runs in sequence with the others that do. */
  locks?: boolean;
}

const deploy = (...args: string[]) => ["deploy", "--stack", "local", ...args];
const NEXT = ["--artifact", R2, "--release", "3.0.0"];

const BAD_INPUTS: BadInput[] = [
  { what: "an unknown stack (the stand-in is the Pulumi CLI on PATH)", args: () => ["deploy", "--stack", "nope", ...NEXT], says: ['--stack = "nope"', "no such stack", "pulumi stack init nope"] },
  {
    what: "a release whose page loads a script the release does not contain",
    args: (d) => deploy("--artifact", d.brokenRef, "--release", "3.0.0"),
    says: ["index.html:10", 'references "assets/widget.2af1d9e169.js"', "which the artifact does not contain"],
  },
  { what: "a missing artifact folder", args: (d) => deploy("--artifact", d.missing, "--release", "3.0.0"), says: ["--artifact = ", "does-not-exist", "expected an existing folder"] },
  { what: "an artifact folder without index.html", args: (d) => deploy("--artifact", d.noIndex, "--release", "3.0.0"), says: ["--artifact = ", "no-index", "expected a folder with index.html"] },
  { what: "steps not increasing", args: () => deploy(...NEXT, "--steps", "50,25,100"), says: ['--steps = "50,25,100"', "strictly increasing"] },
  { what: "a step of 0", args: () => deploy(...NEXT, "--steps", "0,100"), says: ['--steps = "0,100"', "from 1 to 100"] },
  { what: "a step above 100", args: () => deploy(...NEXT, "--steps", "50,150"), says: ['--steps = "50,150"', "from 1 to 100"] },
  { what: "a non-numeric step", args: () => deploy(...NEXT, "--steps", "10,half,100"), says: ['--steps = "10,half,100"', "integer from 1 to 100"] },
  { what: "a negative bake", args: () => deploy(...NEXT, "--bake", "-5s"), says: ['--bake = "-5s"', "non-negative duration"] },
  { what: "a malformed bake", args: () => deploy(...NEXT, "--bake", "5 minutes"), says: ['--bake = "5 minutes"', "such as 60s, 2m or 500ms"] },
  { what: "a release id with ..", args: () => deploy("--artifact", R2, "--release", "1..0"), says: ['--release = "1..0"', "without '..'"] },
  { what: "a release id with /", args: () => deploy("--artifact", R2, "--release", "a/b"), says: ['--release = "a/b"', "A-Z a-z 0-9 . _ -"] },
  { what: "an empty release id", args: () => deploy("--artifact", R2, "--release", ""), says: ['--release = ""', "1-64 characters"] },
  {
    what: "a used release id with different bytes",
    args: () => deploy("--artifact", R2, "--release", "1.0.0"),
    says: ['--release = "1.0.0"', "blue already holds 1.0.0 with different bytes", "expected a new release id"],
    locks: true,
  },
  { what: "the release the stable slot already serves", args: () => deploy("--artifact", R2, "--release", "2.0.0"), says: ['--release = "2.0.0"', "expected a release other than", "green"], locks: true },
  { what: "an unknown slot for verify", args: () => ["verify", "--stack", "local", "--slot", "red"], says: ["slot", '"red"', '"blue", "green"'] },
  { what: "rollback to an update that does not exist", args: () => ["rollback", "--stack", "local", "--to", "999"], says: ["--to = 999", "expected an update version of stack local"], locks: true },
  { what: "rollback with no earlier successful update", args: () => ["rollback", "--stack", ONCE], says: [ONCE, "no earlier successful update", "nothing to roll back to"], locks: true },
  { what: "a missing required flag", args: () => deploy("--artifact", R2), says: ["Missing required argument: release", "bluegreen deploy --help"] },
  { what: "an unknown flag", args: () => deploy(...NEXT, "--frobnicate"), says: ["unknown option --frobnicate", "bluegreen deploy --help"] },
  // A stack that does not exist: the known ones listed, nothing created for the typo (snapshot's stack listings).
  ...(["status", "history", "verify", "rollback"] as const).flatMap((command): BadInput[] => [
    { what: `${command} on a local stack that does not exist`, args: () => [command, "--stack", "local-typo"], says: ['--stack = "local-typo"', "no such stack on the local cloud", "(known: local, local-once)"] },
    // The backend the stand-in on PATH serves is the local cloud's, so its stacks are the known ones.
    { what: `${command} on a stack the Pulumi backend does not hold`, args: () => [command, "--stack", "nope"], says: ['--stack = "nope"', "no such stack in the Pulumi backend", "(known: local, local-once)", "pulumi stack init nope"] },
  ]),
  { what: "an error rate above 1 for a local fault", args: () => ["local", "fault", "--slot", "green", "--error-rate", "2"], says: ["--error-rate = 2", "expected a number from 0 to 1"] },
];

/** Everything a bad input must leave alone: the engine's files for both stacks, and each bucket's listing. */
async function snapshot(e2e: E2E): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const stack of ["local", ONCE]) {
    // The backend keeps a stack's update history (automation/local/state.ts); its config is the stack file in the
    // local cloud's working folder, as `pulumi config` keeps it.
    files[`${stack}/history.json`] = readFileSync(path.join(stackDir(e2e.stateDir, stack), "history.json"), "utf8");
    files[`${stack}/Pulumi.${stack}.yaml`] = readFileSync(path.join(e2e.cloud.workDir, "stacks", `Pulumi.${stack}.yaml`), "utf8");
  }
  // The stacks the backend and the working folder hold: a refused typo adds none.
  files["stacks"] = readdirSync(path.join(e2e.stateDir, "stacks")).sort().join(" ");
  files["work/stacks"] = readdirSync(path.join(e2e.cloud.workDir, "stacks")).sort().join(" ");
  const { Buckets = [] } = await e2e.cloud.s3.send(new ListBucketsCommand({}));
  for (const { Name } of Buckets) {
    const objects: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await e2e.cloud.s3.send(new ListObjectsV2Command({ Bucket: Name, ContinuationToken }));
      for (const o of page.Contents ?? []) {
        // The stack's lease (automation/lease.ts) is the tool's own coordination record: a refusal that reads the stack
        // under it takes it and gives it back while other refusals run, so it is left out here and checked free at the end.
        if (/^rollout\/[^/]+\/lease\.json$/.test(o.Key!)) continue;
        objects.push(`${o.Key} ${o.ETag} ${o.Size} ${o.LastModified?.toISOString()}`);
      }
      ContinuationToken = page.NextContinuationToken;
    } while (ContinuationToken);
    files[`s3://${Name}`] = objects.join("\n");
  }
  return files;
}

describe("bluegreen: bad input exits 2 with one line and changes nothing", function () {
  this.timeout(180_000);
  let e2e: E2E;
  let initial: Record<string, string>;
  const outcomes = new Map<string, Promise<{ res: CliResult; after: Record<string, string> }>>();

  before(async function () {
    e2e = await startE2E();
    await e2e.tune({ rollout: { steps: [50, 100], bakeSeconds: 0, probesPerStep: 60, minSamples: 20 } });
    const ok = async (args: string[]) => {
      const res = await e2e.cli(args);
      expect(res.code, `${args.join(" ")}:\n${res.stderr}`).to.equal(0);
    };
    // local: 1.0.0 kept on blue, 2.0.0 stable on green. local-once: 1.0.0 only.
    await Promise.all([ok(deploy("--artifact", R1, "--release", "1.0.0")), ok(["deploy", "--stack", ONCE, "--artifact", R1, "--release", "1.0.0", "--bake", "0s"])]);
    await ok(deploy("--artifact", R2, "--release", "2.0.0"));

    const work = path.join(e2e.stateDir, "inputs");
    const dirs = { missing: path.join(work, "does-not-exist"), noIndex: path.join(work, "no-index"), brokenRef: path.join(work, "broken-reference") };
    mkdirSync(dirs.noIndex, { recursive: true });
    cpSync(R2, dirs.brokenRef, { recursive: true });
    rmSync(path.join(dirs.brokenRef, "assets", "widget.2af1d9e169.js"));
    writeFileSync(path.join(dirs.noIndex, "app.js"), "console.log('no entry point');\n");
    initial = await snapshot(e2e);

    // Read-only refusals run a few at a time; those that take the stack's lock before refusing run one after another
    // (two at once would see each other's lock and be refused for that instead).
    const run = async (c: BadInput) => {
      const res = await e2e.cli(c.args(dirs));
      return { res, after: await snapshot(e2e) };
    };
    // Each outcome is awaited by its own test later; mark it handled now so an early failure is not unhandled.
    const settle = <T>(p: Promise<T>) => {
      p.catch(() => undefined);
      return p;
    };
    let chain: Promise<unknown> = Promise.resolve();
    const queue = BAD_INPUTS.filter((c) => !c.locks);
    for (const c of BAD_INPUTS.filter((c) => c.locks)) {
      const p = chain.then(() => run(c));
      chain = p.catch(() => undefined);
      outcomes.set(c.what, settle(p));
    }
    const gates = Array.from({ length: 2 }, () => Promise.resolve());
    queue.forEach((c, i) => {
      const p = gates[i % gates.length].then(() => run(c));
      gates[i % gates.length] = p.then(() => undefined, () => undefined);
      outcomes.set(c.what, settle(p));
    });
  });

  after(async () => {
    await e2e?.close();
  });

  it("covers at least 15 bad inputs", () => {
    expect(BAD_INPUTS.length).to.be.at.least(15);
  });

  for (const c of BAD_INPUTS) {
    it(`refuses ${c.what}`, async () => {
      const { res, after } = await outcomes.get(c.what)!;
      expect(res.code, `exit code; stderr:\n${res.stderr}`).to.equal(2);
      expect(res.stdout).to.equal("");
      expect(res.stderr, "exactly one line on stderr").to.match(/^bluegreen: [^\n]+\n$/);
      for (const fragment of c.says) expect(res.stderr).to.contain(fragment);
      expect(Object.keys(after)).to.deep.equal(Object.keys(initial));
      for (const [what, before] of Object.entries(initial)) expect(after[what], what).to.equal(before);
    });
  }

  it("prints the plan for --dry-run and changes nothing either", async () => {
    await Promise.all(outcomes.values());
    const res = await e2e.cli([...deploy(...NEXT, "--steps", "20,100"), "--dry-run", "--json"]);
    expect(res.code, res.stderr).to.equal(0);
    const plan = JSON.parse(res.stdout) as { result: string; slot: string; plan: { steps: number[]; release: string } };
    expect(plan).to.deep.include({ result: "dry-run", slot: "blue" });
    expect(plan.plan).to.deep.include({ steps: [20, 100], release: "3.0.0" });
    expect(res.stderr).to.match(/dry run: 3\.0\.0 \(\d+ files\) → blue; steps 20, 100/);
    expect(await snapshot(e2e)).to.deep.equal(initial);
    // Every refusal gave the stack's lease back.
    for (const stack of ["local", ONCE]) {
      const bucket = String((await (await e2e.cloud.stack(stack)).outputs()).auditBucket.value);
      expect(await new LeaseStore(e2e.cloud.s3, bucket, stack).view(), `${stack}'s lease`).to.deep.equal({ state: "free" });
    }
  });

  it("runs as `npx bluegreen` in the repository after npm ci", async () => {
    const { execFile } = await import("node:child_process");
    const out = await new Promise<string>((resolve, reject) =>
      execFile("npx", ["--no-install", "bluegreen", "--help"], { cwd: path.join(__dirname, "..", ".."), env: e2e.env }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    expect(out).to.match(/bluegreen deploy/).and.to.match(/bluegreen rollback/).and.to.match(/bluegreen promote/);
  });
});
