// `pulumi up` loads the program the way @pulumi/pulumi/cmd/run does: with Pulumi.yaml's `main: infra/` the working
// directory is infra/, and Pulumi's ts-node reads only a tsconfig.json found there (pulumi/pulumi#10022). This runs
// the real program through that same loader, from that directory, under mocks.
import { expect } from "chai";
import { execFileSync } from "node:child_process";
import * as path from "node:path";

const REPO = path.join(__dirname, "..", "..");

describe("the program under Pulumi's own TypeScript loader", function () {
  this.timeout(120_000);

  it("loads from infra/ as `pulumi up` runs it, with infra/tsconfig.json, and declares the stack's resources", function () {
    const script = `
      const fs = require("fs");
      const path = require("path");
      const yaml = require("yaml");
      const pulumi = require("@pulumi/pulumi");
      const { tsnodeRequire, typescriptRequire } = require("@pulumi/pulumi/tsutils").typeScriptRequireStrings();
      // As cmd/run/run.js registers it (project tsconfig.json in the working directory, type-checked).
      require(tsnodeRequire).register({ compiler: typescriptRequire, project: "tsconfig.json", skipProject: !fs.existsSync("tsconfig.json"), compilerOptions: {} });
      const stackFile = yaml.parse(fs.readFileSync(path.join("..", "stacks", "Pulumi.local.yaml"), "utf8")).config;
      const config = {};
      for (const [k, v] of Object.entries(stackFile)) config[k] = typeof v === "string" ? v : JSON.stringify(v);
      const types = [];
      pulumi.runtime.setMocks({ newResource: (a) => { types.push(a.type); return { id: a.name + "-id", state: { ...a.inputs, arn: "arn:aws:mock:::" + a.name } }; }, call: () => ({}) }, "picasso-widget", "local").then(async () => {
        pulumi.runtime.setAllConfig(config, []);
        require(path.resolve(JSON.parse(fs.readFileSync("../package.json", "utf8")).main.replace(/^infra\\//, "./")));
        await pulumi.runtime.disconnect();
        process.stdout.write(JSON.stringify(types));
      });`;
    const out = execFileSync(process.execPath, ["-e", script], { cwd: path.join(REPO, "infra"), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const types = JSON.parse(out) as string[];
    expect(types).to.include.members(["aws:cloudfront/distribution:Distribution", "aws:cloudfront/function:Function", "aws:s3/bucket:Bucket", "pulumi-nodejs:dynamic/picasso-widget:RevisionGuard"]);
  });
});
