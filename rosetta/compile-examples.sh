#!/usr/bin/env bash
# Compiles every TypeScript example in README.md and docs/*.md with jsii-rosetta in strict
# mode. rosetta reads examples from an assembly's readme, so this builds a scratch copy of
# the compiled assembly whose readme is README.md followed by every docs page.
set -euo pipefail
cd "$(dirname "$0")/.."
test -f .jsii || { echo "no .jsii assembly: run 'npx projen compile' first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json "$work/"
cp -r rosetta "$work/rosetta"
ln -s "$PWD/lib" "$work/lib"
mkdir "$work/node_modules"
for dep in node_modules/*; do ln -s "$PWD/$dep" "$work/node_modules/$(basename "$dep")"; done
ln -sfn "$PWD" "$work/node_modules/cdk-event-fabric"

node -e '
const fs = require("fs");
const [assemblyFile, out, ...pages] = process.argv.slice(1);
const assembly = JSON.parse(fs.readFileSync(assemblyFile, "utf8"));
assembly.readme = { markdown: pages.map((p) => fs.readFileSync(p, "utf8")).join("\n\n") };
fs.writeFileSync(out, JSON.stringify(assembly));
' .jsii "$work/.jsii" README.md docs/*.md

count=$(cat README.md docs/*.md | grep -cE '^```(ts|typescript)$' || true)
echo "rosetta: compiling $count TypeScript examples from README.md and docs/ (strict)"
npx jsii-rosetta extract --strict --directory "$work" --output "$work/tablet.json" "$work/.jsii"
node -e '
const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const snippets = Object.values(t.snippets);
const bad = snippets.filter((s) => !s.didCompile);
console.log(`rosetta: ${snippets.length} snippets, ${snippets.length - bad.length} compiled, ${bad.length} failed`);
if (bad.length > 0 || snippets.length < Number(process.argv[2])) process.exit(1);
' "$work/tablet.json" "$count"
