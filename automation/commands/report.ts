// `bluegreen report`: a deploy or promote report (`--json`) as one self-contained HTML page.
import type { CommandModule } from "yargs";
import { writeHtmlReport } from "../htmlReport";

const command: CommandModule<object, { from: string; out: string }> = {
  command: "report",
  describe: "write a deploy or promote report (--json) as one self-contained HTML page: timeline, per-slot errors and p95, findings, screenshots",
  builder: (y) =>
    y
      .option("from", { type: "string", demandOption: true, nargs: 1, describe: "the JSON report (bluegreen deploy --json > report.json)" })
      .option("out", { type: "string", demandOption: true, nargs: 1, describe: "the HTML file to write" }) as never,
  handler: (a) => {
    const written = writeHtmlReport({ from: a.from, out: a.out });
    const missing = written.screenshots.missing.length > 0 ? `; screenshots not found: ${written.screenshots.missing.join(", ")}` : "";
    const shots = written.screenshots.embedded;
    process.stderr.write(`wrote ${written.out} (${written.bytes} bytes, ${shots} screenshot${shots === 1 ? "" : "s"} embedded${missing})\n`);
  },
};

export const reportCommand = command as CommandModule;
