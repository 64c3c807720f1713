import { expect } from "chai";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  approvalEnvironments,
  checkApprovalGate,
  COMMAND_LINE_SOURCE,
  commandLineApprovals,
  fetchRunApprovals,
  githubRunFromEnv,
  requireApprovals,
  type ApprovalGate,
} from "../../automation/approvals";
import { UsageError } from "../../automation/errors";

const TOKEN = "ghs_jobtoken0123456789abcdefABCDEF";

const production: ApprovalGate = {
  required: ["tech-lead", "ops-lead", "product-owner"],
  holders: { "tech-lead": ["alice-lead"], "ops-lead": ["omar-ops"], "product-owner": ["pat-product"] },
};

/** One entry of "Get the review history for a workflow run", as GitHub documents it. */
function review(login: string, state: "approved" | "rejected", environment: string, id = 161171787) {
  return {
    state,
    comment: state === "approved" ? "Ship it!" : "Not yet",
    environments: [
      {
        id,
        node_id: "MDExOkVudmlyb25tZW50MTYxMTcxNzg3",
        name: environment,
        url: `https://api.github.com/repos/o/r/environments/${environment}`,
        html_url: `https://github.com/o/r/deployments/activity_log?environments_filter=${environment}`,
        created_at: "2020-11-23T22:00:40Z",
        updated_at: "2020-11-23T22:00:40Z",
      },
    ],
    user: {
      login,
      id: 1,
      node_id: "MDQ6VXNlcjE=",
      avatar_url: "https://github.com/images/error/octocat_happy.gif",
      gravatar_id: "",
      url: `https://api.github.com/users/${login}`,
      html_url: `https://github.com/${login}`,
      type: "User",
      site_admin: false,
    },
  };
}

async function expectUsageError(promise: Promise<unknown>): Promise<UsageError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error("expected a UsageError");
}

describe("approval gate (pure)", () => {
  it("is satisfied when every required role has an approver and nobody else approved", () => {
    const check = checkApprovalGate(production, ["alice-lead", "omar-ops", "Pat-Product"].map((login) => ({ login, source: "s" })));
    expect(check).to.deep.include({ ok: true, missingRoles: [], strangers: [] });
    expect(check.approvers.map((a) => a.roles)).to.deep.equal([["tech-lead"], ["ops-lead"], ["product-owner"]]);
  });

  it("names the missing roles and the approvers who hold no listed role", () => {
    const check = checkApprovalGate(production, [{ login: "alice-lead", source: "s" }, { login: "eve", source: "s" }]);
    expect(check).to.deep.include({ ok: false, missingRoles: ["ops-lead", "product-owner"], strangers: ["eve"] });
  });

  it("needs no approval for a gate that requires none", () => {
    expect(checkApprovalGate({ required: [], holders: {} }, [])).to.deep.include({ ok: true });
  });
});

describe("command-line approvals", () => {
  it("are accepted for a local stack and recorded as such", async () => {
    const approvers = await requireApprovals({
      stack: "local-production",
      gate: production,
      commandLine: ["tech-lead=alice-lead", "ops-lead=omar-ops", "product-owner=pat-product"],
      env: {},
    });
    expect(approvers.map((a) => [a.login, a.source, a.roles[0]])).to.deep.equal([
      ["alice-lead", COMMAND_LINE_SOURCE, "tech-lead"],
      ["omar-ops", COMMAND_LINE_SOURCE, "ops-lead"],
      ["pat-product", COMMAND_LINE_SOURCE, "product-owner"],
    ]);
  });

  it("are refused for a stack that is not local", () => {
    expect(() => commandLineApprovals("production", production, ["tech-lead=alice-lead"])).to.throw(UsageError, /--approve: refused for stack production/);
  });

  it("are refused when the login does not hold the role it approves as", () => {
    expect(() => commandLineApprovals("local", production, ["tech-lead=omar-ops"])).to.throw(UsageError, /omar-ops does not hold role tech-lead \(holders: alice-lead\)/);
  });

  it("are refused when malformed", () => {
    expect(() => commandLineApprovals("local", production, ["alice-lead"])).to.throw(UsageError, /expected role=login/);
  });

  it("with one role missing, name it", async () => {
    const err = await expectUsageError(requireApprovals({ stack: "local", gate: production, commandLine: ["tech-lead=alice-lead", "ops-lead=omar-ops"], env: {} }));
    expect(err.message).to.include("approval missing for role product-owner (held by pat-product)");
  });
});

describe("GitHub run approvals (against a local server answering like GitHub's REST API)", () => {
  let server: Server;
  let apiUrl: string;
  let reviews: unknown[] = [];
  let requests: { url?: string; authorization?: string; apiVersion?: string }[] = [];

  before(async () => {
    server = createServer((req, res) => {
      requests.push({ url: req.url, authorization: req.headers.authorization, apiVersion: req.headers["x-github-api-version"] as string });
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify(body));
      };
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(401, { message: "Bad credentials", documentation_url: "https://docs.github.com/rest", status: "401" });
      if (req.method === "GET" && req.url === "/repos/o/r/actions/runs/42/approvals") return json(200, reviews);
      return json(404, { message: "Not Found", documentation_url: "https://docs.github.com/rest", status: "404" });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    reviews = [];
    requests = [];
  });

  const env = (overrides: Record<string, string> = {}) => ({ GITHUB_API_URL: apiUrl, GITHUB_REPOSITORY: "o/r", GITHUB_RUN_ID: "42", GITHUB_TOKEN: TOKEN, ...overrides });
  const promote = (e = env()) => requireApprovals({ stack: "production", gate: production, env: e });

  it("accepts when tech-lead, ops-lead and product-owner all approved, and says where each approval came from", async () => {
    reviews = [review("alice-lead", "approved", "production-tech-lead"), review("omar-ops", "approved", "production-ops-lead"), review("pat-product", "approved", "production-product-owner")];
    const approvers = await promote();
    expect(approvers.map((a) => [a.login, a.roles])).to.deep.equal([
      ["alice-lead", ["tech-lead"]],
      ["omar-ops", ["ops-lead"]],
      ["pat-product", ["product-owner"]],
    ]);
    expect(approvers[1].source).to.equal("GitHub environment production-ops-lead (o/r run 42)");
    expect(requests).to.deep.equal([{ url: "/repos/o/r/actions/runs/42/approvals", authorization: `Bearer ${TOKEN}`, apiVersion: "2022-11-28" }]);
  });

  it("refuses when one role's approval is missing, naming the role", async () => {
    reviews = [review("alice-lead", "approved", "production-tech-lead"), review("pat-product", "approved", "production")];
    const err = await expectUsageError(promote());
    expect(err.message).to.match(/^stack production: approval missing for role ops-lead \(held by omar-ops\)/);
  });

  it("refuses when an approver holds no listed role, naming the approver", async () => {
    reviews = [
      review("alice-lead", "approved", "production-tech-lead"),
      review("omar-ops", "approved", "production-ops-lead"),
      review("pat-product", "approved", "production-product-owner"),
      review("mallory", "approved", "production"),
    ];
    const err = await expectUsageError(promote());
    expect(err.message).to.include("approval by mallory refused: holds no role");
  });

  it("counts neither rejected reviews nor approvals of another environment", async () => {
    reviews = [review("alice-lead", "approved", "production-tech-lead"), review("omar-ops", "rejected", "production-ops-lead"), review("pat-product", "approved", "staging")];
    const approvals = await fetchRunApprovals(githubRunFromEnv(env())!, approvalEnvironments("production", production));
    expect(approvals.map((a) => a.login)).to.deep.equal(["alice-lead"]);
    const err = await expectUsageError(promote());
    expect(err.message).to.include("approval missing for role ops-lead (held by omar-ops), product-owner (held by pat-product)");
  });

  it("reports a refused token clearly, without the token", async () => {
    const err = await expectUsageError(promote(env({ GITHUB_TOKEN: "ghs_wrongtoken0123456789" })));
    expect(err.message).to.include("HTTP 401 Bad credentials");
    expect(err.message).to.include("permissions: actions: read");
    expect(err.message).not.to.include("ghs_wrongtoken0123456789");
  });

  it("reports an unknown run clearly, without the token", async () => {
    const err = await expectUsageError(promote(env({ GITHUB_RUN_ID: "7" })));
    expect(err.message).to.include("/repos/o/r/actions/runs/7/approvals): HTTP 404 Not Found");
    expect(err.message).not.to.include(TOKEN);
  });

  it("refuses outside GitHub Actions when the gate requires roles (nothing to read approvals from)", async () => {
    const err = await expectUsageError(requireApprovals({ stack: "production", gate: production, env: {} }));
    expect(err.message).to.include("approvals given: none");
    expect(requests).to.have.length(0);
  });

  it("asks for the job's token when GITHUB_TOKEN is not passed to the step", () => {
    expect(() => githubRunFromEnv({ GITHUB_REPOSITORY: "o/r", GITHUB_RUN_ID: "42" })).to.throw(UsageError, /GITHUB_TOKEN = \(missing\)/);
  });
});
