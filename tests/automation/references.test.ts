// Reference integrity of an artifact, before anything is uploaded. Broken releases are built here, in memory or in a
// temp folder, never shipped under examples/ where a viewer could be served one.
import { expect } from "chai";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { EXIT, UsageError } from "../../automation/errors";
import { checkArtifact, referenceProblems, type ConfiguredPaths } from "../../automation/references";
import { buildManifest } from "../../automation/releases";

const RELEASES_DIR = path.resolve(__dirname, "..", "..", "examples", "widget", "releases");

/** An artifact from `path → text`. */
function artifact(files: Record<string, string>): Map<string, Buffer> {
  return new Map(Object.entries(files).map(([file, text]) => [file, Buffer.from(text)]));
}

/** The problems as `file:line reason reference`, the way an operator reads them. */
function problems(files: Record<string, string>, paths?: ConfiguredPaths): string[] {
  return referenceProblems(artifact(files), paths).map((p) => `${p.file}${p.line === undefined ? "" : `:${p.line}`} ${p.reason} ${p.reference}`);
}

function page(body: string, head = ""): string {
  return `<!doctype html>\n<html>\n<head>${head}</head>\n<body>\n${body}\n</body>\n</html>\n`;
}

describe("artifact reference integrity", () => {
  describe("HTML", () => {
    it("accepts a page whose src, href and srcset references are all in the artifact", () => {
      const html = page(
        [
          `<script src="assets/app.1234abcd.js" defer></script>`,
          `<img src="img/a.png" srcset="img/a.png 1x, img/a@2x.png 2x" alt="">`,
          `<picture><source srcset="img/w400.webp 400w,img/w800.webp 800w"></picture>`,
          `<video poster="img/poster.png"></video>`,
          `<a href="docs/">docs</a>`,
          `<svg><use href="img/sprite.svg#star"></use></svg>`,
        ].join("\n"),
        `<link rel="stylesheet" href="assets/app.css"><link rel="modulepreload" href="./assets/chunk.js"><link rel="icon" href="favicon.ico"><link rel="preload" as="image" imagesrcset="img/a.png 1x, img/a@2x.png 2x">`,
      );
      const files = ["assets/app.1234abcd.js", "img/a.png", "img/a@2x.png", "img/w400.webp", "img/w800.webp", "img/poster.png", "docs/index.html", "img/sprite.svg", "assets/app.css", "assets/chunk.js", "favicon.ico"];
      expect(problems({ "index.html": html, ...Object.fromEntries(files.map((f) => [f, ""])) })).to.deep.equal([]);
    });

    it("names the file, the line and the reference of each missing src, href and srcset candidate", () => {
      const html = [
        `<!doctype html>`,
        `<link rel="stylesheet" href="assets/missing.css">`,
        `<link rel="modulepreload" href="assets/chunk.js">`,
        `<script src="assets/gone.js"></script>`,
        `<img src="a.png"`,
        `     srcset="a.png 1x,`,
        `             a@2x.png 2x">`,
      ].join("\n");
      expect(problems({ "index.html": html, "a.png": "" })).to.deep.equal([
        "index.html:2 missing assets/missing.css",
        "index.html:3 missing assets/chunk.js",
        "index.html:4 missing assets/gone.js",
        "index.html:7 missing a@2x.png",
      ]);
    });

    it("reads url() in style attributes and <style> elements, and imports in inline module scripts", () => {
      const html = page(
        `<div style="background: url('img/bg.png')"></div>\n<script type="module">\nimport { start } from "./assets/start.js";\nstart();\n</script>`,
        `\n<style>\n.a { background: url(img/missing.png) }\n</style>`,
      );
      expect(problems({ "index.html": html })).to.deep.equal(["index.html:5 missing img/missing.png", "index.html:8 missing img/bg.png", "index.html:10 missing ./assets/start.js"]);
    });

    it("resolves against the page's folder, from the root for a leading '/', and a trailing '/' as the folder's index.html", () => {
      const html = `<script src="app.js"></script>\n<link rel="stylesheet" href="../shared/site.css">\n<img src="/img/logo.png">\n<a href="./">here</a>\n<a href="help/">help</a>`;
      expect(problems({ "docs/index.html": html, "docs/app.js": "", "shared/site.css": "", "img/logo.png": "" })).to.deep.equal(["docs/index.html:5 missing help/"]);
    });

    it("ignores the query and the fragment, and decodes percent-escapes and character references", () => {
      const html = page(`<script src="assets/app.js?v=3#boot"></script>\n<img src="img/my%20icon.png">\n<img src="img/a.png?w=1&amp;h=2">`);
      expect(problems({ "index.html": html, "assets/app.js": "", "img/my icon.png": "", "img/a.png": "" })).to.deep.equal([]);
    });

    it("skips what the browser does not fetch from the artifact: absolute URLs, //host, data:, mailto:, #fragments, empty values", () => {
      const html = page(
        [
          `<script src="https://cdn.example.com/lib.js"></script>`,
          `<script src="//cdn.example.com/lib.js"></script>`,
          `<img src="data:image/png;base64,iVBORw0KGgo=">`,
          `<a href="mailto:support@example.com">mail</a>`,
          `<a href="#top">top</a>`,
          `<a href="?page=2">next</a>`,
          `<a href="javascript:void(0)">noop</a>`,
          `<img src="">`,
        ].join("\n"),
      );
      expect(problems({ "index.html": html })).to.deep.equal([]);
    });

    it("ignores references inside comments and inside a script's text", () => {
      const html = page(`<!-- <script src="old.js"></script> -->\n<script>\n  document.body.innerHTML = "<img src='not-fetched-yet.png'>";\n</script>\n<script type="application/ld+json">{"logo": "./logo.png"}</script>`);
      expect(problems({ "index.html": html })).to.deep.equal([]);
    });

    it("resolves against <base href>, and checks nothing in a page whose base is on another origin", () => {
      const relative = `<base href="static/">\n<script src="app.js"></script>\n<img src="missing.png">`;
      const absolute = `<base href="https://cdn.example.com/">\n<script src="app.js"></script>`;
      expect(problems({ "index.html": relative, "static/app.js": "", "other.html": absolute })).to.deep.equal(["index.html:3 missing missing.png"]);
    });
  });

  describe("CSS", () => {
    it("reads url() quoted and unquoted and @import, relative to the stylesheet's folder", () => {
      const css = [
        `@import "base.css";`,
        `@import url("theme.css");`,
        `@font-face { font-family: W; src: url(../fonts/w.woff2) format("woff2"); }`,
        `.a { background: url('../img/a.png'); }`,
        `.b { background: url( "../img/b.png" ); }`,
      ].join("\n");
      expect(problems({ "assets/site.css": css, "assets/base.css": "", "assets/theme.css": "", "fonts/w.woff2": "", "img/a.png": "", "img/b.png": "" })).to.deep.equal([]);
      expect(problems({ "assets/site.css": css })).to.deep.equal([
        "assets/site.css:1 missing base.css",
        "assets/site.css:2 missing theme.css",
        "assets/site.css:3 missing ../fonts/w.woff2",
        "assets/site.css:4 missing ../img/a.png",
        "assets/site.css:5 missing ../img/b.png",
      ]);
    });

    it("skips data: URLs, absolute URLs, fragments and comments", () => {
      const css = `/* .old { background: url(old.png) } */\n.a { background: url(data:image/svg+xml;utf8,<svg/>) }\n.b { background: url(https://cdn.example.com/b.png) }\n.c { filter: url(#blur) }`;
      expect(problems({ "site.css": css })).to.deep.equal([]);
    });
  });

  describe("JS", () => {
    it("reads static imports and re-exports, minified or not, relative to the module's folder", () => {
      const js = [
        `import { a } from "./a.js";`,
        `import b, * as c from '../lib/c.js';`,
        `import "./side-effect.js";`,
        `export { d } from "./d.js";`,
        `export * from "./e.js";`,
        `import{f as g}from"./f.js";import"./h.js";`,
      ].join("\n");
      const present = ["assets/a.js", "lib/c.js", "assets/side-effect.js", "assets/d.js", "assets/e.js", "assets/f.js", "assets/h.js"];
      expect(problems({ "assets/main.js": js, ...Object.fromEntries(present.map((f) => [f, ""])) })).to.deep.equal([]);
      expect(problems({ "assets/main.js": js })).to.deep.equal([
        "assets/main.js:1 missing ./a.js",
        "assets/main.js:2 missing ../lib/c.js",
        "assets/main.js:3 missing ./side-effect.js",
        "assets/main.js:4 missing ./d.js",
        "assets/main.js:5 missing ./e.js",
        "assets/main.js:6 missing ./f.js",
        "assets/main.js:6 missing ./h.js",
      ]);
    });

    it("reads import() with a literal and new URL(..., import.meta.url)", () => {
      const js = `const page = await import("./pages/home.js");\nconst lazy = () => import(\`./lazy.js\`);\nconst worker = new Worker(new URL("worker.js", import.meta.url));\nconst icon = new URL('../img/icon.svg', import.meta.url).href;`;
      expect(problems({ "assets/main.js": js, "assets/pages/home.js": "", "assets/lazy.js": "" })).to.deep.equal([
        "assets/main.js:3 missing worker.js",
        "assets/main.js:4 missing ../img/icon.svg",
      ]);
    });

    it("skips bare specifiers, computed specifiers, import.meta, comments and URLs in strings", () => {
      const js = [
        `import React from "react";`,
        `const mod = await import("./locales/" + lang + ".js");`,
        `const other = await import(\`./locales/\${lang}.js\`);`,
        `console.log(import.meta.url, "https://example.com/x.js");`,
        `// import { old } from "./old.js";`,
        `/* import("./older.js") */`,
        `const api = "https://api.example.com"; import { ok } from "./ok.js";`,
        `fetch("version.json");`,
      ].join("\n");
      expect(problems({ "main.js": js })).to.deep.equal(["main.js:7 missing ./ok.js"]);
    });
  });

  describe("web manifests", () => {
    const manifest = `{\n  "name": "Widget",\n  "start_url": "./",\n  "icons": [\n    { "src": "icons/192.png", "sizes": "192x192" },\n    { "src": "icons/512.png", "sizes": "512x512" }\n  ]\n}\n`;

    it("follows <link rel=manifest> and checks icons[].src and start_url against the manifest's folder", () => {
      const html = page(``, `<link rel="manifest" href="app/site.json">`);
      expect(problems({ "index.html": html, "app/site.json": manifest, "app/index.html": "", "app/icons/192.png": "" })).to.deep.equal(["app/site.json:6 missing icons/512.png"]);
      expect(problems({ "index.html": html, "app/site.json": manifest, "app/icons/192.png": "", "app/icons/512.png": "" })).to.deep.equal(["app/site.json:3 missing ./"]);
    });

    it("checks a .webmanifest file even when no page links it", () => {
      expect(problems({ "index.html": page(""), "site.webmanifest": manifest, "icons/192.png": "", "icons/512.png": "" })).to.deep.equal([]);
      expect(problems({ "index.html": page(""), "site.webmanifest": manifest })).to.deep.equal(["site.webmanifest:5 missing icons/192.png", "site.webmanifest:6 missing icons/512.png"]);
    });
  });

  describe("paths outside the artifact", () => {
    it("reports a reference that climbs above the artifact's root, even when the name exists inside it", () => {
      const files = { "index.html": `<script src="../app.js"></script>\n<script src="a/../../app.js"></script>`, "app.js": "", "assets/site.css": `.a { background: url(../../img.png) }`, "img.png": "" };
      expect(problems(files)).to.deep.equal(["assets/site.css:1 escapes ../../img.png", "index.html:1 escapes ../app.js", "index.html:2 escapes a/../../app.js"]);
    });

    it("reports a <base href> above the root once, as the page's problem", () => {
      expect(problems({ "index.html": `<base href="../">\n<script src="app.js"></script>`, "app.js": "" })).to.deep.equal(["index.html:1 escapes ../"]);
    });
  });

  describe("configured paths", () => {
    it("requires the health path and every smoke path, '/' meaning index.html and the query ignored", () => {
      const files = { "index.html": page(""), "version.json": "{}", "docs/index.html": "" };
      expect(problems(files, { healthPath: "/version.json", smokePaths: ["/", "/docs/?lang=en"] })).to.deep.equal([]);
      expect(problems(files, { healthPath: "/healthz", smokePaths: ["/", "/status.json"] })).to.deep.equal([
        "picasso-widget:verification.healthPath missing /healthz",
        "picasso-widget:verification.smoke[1].path missing /status.json",
      ]);
    });
  });

  describe("checkArtifact", () => {
    it("refuses with exit 2 and one line naming the file, the line and the reference, with how many more there are", () => {
      const files = artifact({ "index.html": `<!doctype html>\n<script src="assets/app.js"></script>\n<img src="a.png">\n<img src="b.png">` });
      const err = captured(() => checkArtifact(files));
      expect(err).to.be.instanceOf(UsageError);
      expect((err as UsageError).exitCode).to.equal(EXIT.badInput);
      expect(err.message).to.equal(`index.html:2: references "assets/app.js", which the artifact does not contain (and 2 more unresolved references)`);
    });

    it("says so when a reference leaves the artifact, and names the config key for a configured path", () => {
      expect(captured(() => checkArtifact(artifact({ "index.html": `<script src="../x.js"></script>` }))).message).to.equal(`index.html:1: references "../x.js", which resolves outside the artifact`);
      expect(captured(() => checkArtifact(artifact({ "index.html": "" }), { healthPath: "/version.json" })).message).to.equal(
        `picasso-widget:verification.healthPath: references "/version.json", which the artifact does not contain`,
      );
    });

  });

  describe("buildManifest", () => {
    let work: string;
    beforeEach(() => {
      work = mkdtempSync(path.join(tmpdir(), "bluegreen-references-"));
    });
    afterEach(() => rmSync(work, { recursive: true, force: true }));

    it("passes every example widget release, with the default health and smoke paths too", async () => {
      const releases = readdirSync(RELEASES_DIR);
      expect(releases.length).to.be.at.least(2);
      for (const release of releases) {
        const { bodies } = await buildManifest(path.join(RELEASES_DIR, release), release);
        expect(referenceProblems(bodies, { healthPath: "/version.json", smokePaths: ["/"] }), release).to.deep.equal([]);
      }
    });

    it("refuses a release whose page loads a script the release does not contain", async () => {
      mkdirSync(path.join(work, "assets"));
      writeFileSync(path.join(work, "index.html"), `<!doctype html>\n<link rel="stylesheet" href="assets/widget.css">\n<script src="assets/widget.0123456789.js" defer></script>\n`);
      writeFileSync(path.join(work, "assets", "widget.css"), ".picasso-widget { color: red }\n");
      const err = await buildManifest(work, "3.0.0").then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).to.be.instanceOf(UsageError);
      expect(err!.message).to.equal(`index.html:3: references "assets/widget.0123456789.js", which the artifact does not contain`);
    });

    it("refuses a top-level _r/ folder, which the edge's release-qualified URLs would shadow", async () => {
      mkdirSync(path.join(work, "_r"));
      writeFileSync(path.join(work, "index.html"), `<!doctype html>\n<p>hi</p>\n`);
      writeFileSync(path.join(work, "_r", "notes.txt"), "x\n");
      const err = await buildManifest(work, "3.0.0").then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err).to.be.instanceOf(UsageError);
      expect(err!.message).to.equal(`--artifact = ${JSON.stringify(work)}: _r/notes.txt: expected no top-level folder "_r" (the edge reserves /_r/ for release-qualified URLs)`);
    });
  });
});

function captured(fn: () => void): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a refusal");
}

