import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", ".bluegreen/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-console": "off",
    },
  },
  {
    // CloudFront Functions (cloudfront-js-2.0) are plain ES modules with the runtime's globals.
    files: ["infra/router/**/*.js"],
    languageOptions: { sourceType: "module", globals: { console: "readonly" } },
  },
  {
    files: ["bin/**/*.js", "examples/**/*.js"],
    languageOptions: { sourceType: "commonjs", globals: { require: "readonly", console: "readonly", document: "readonly", window: "readonly", fetch: "readonly", module: "readonly" } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // The Pulumi CLI stand-in's Node.js client: a plain CommonJS script with no dependency.
    files: ["automation/local/pulumi/bin/*.js"],
    languageOptions: { sourceType: "commonjs", globals: { require: "readonly", process: "readonly", Buffer: "readonly" } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
