// Validates ServiceMonitor objects (monitoring.coreos.com/v1, a CRD the Kubernetes schemas do
// not have) for check_manifests.py, with the pinned tools of package.json:
// - the prometheus-operator models' validators, compiled from the CRD's OpenAPI schema: types,
//   enums, patterns (durations such as `interval`) and required fields;
// - tsc on each object as a literal of the models' `IServiceMonitor` type: unknown fields
//   (which the validators let through) are excess properties, so a misspelt field fails too.
//
// Usage: node servicemonitor-check.mjs <tools/node dir> <input.json>
//   input: [{"name": "...", "object": {...}}, ...]; prints {"name": ["problem", ...], ...}.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const toolsDir = resolve(process.argv[2]);
const inputPath = process.argv[3];
const items = JSON.parse(readFileSync(inputPath, "utf8"));
const models = join(toolsDir, "node_modules/@kubernetes-models/prometheus-operator");
const { ServiceMonitor } = await import(
  pathToFileURL(join(models, "monitoring.coreos.com/v1/ServiceMonitor.js")).href
);

const problems = Object.fromEntries(items.map(({ name }) => [name, []]));
for (const { name, object } of items) {
  try {
    new ServiceMonitor(object).validate();
  } catch (error) {
    problems[name].push(`schema: ${error.message}`);
  }
}

// One file per object, so each tsc error names its object.
const dir = join(toolsDir, "servicemonitor-tsc");
// tsc runs there, so its errors name files as `objectN.ts(line,col)`.
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, "tsconfig.json"),
  JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: "nodenext",
      moduleResolution: "nodenext",
      target: "es2022",
    },
    include: ["*.ts"],
  }),
);
items.forEach(({ object }, index) => {
  writeFileSync(
    join(dir, `object${index}.ts`),
    'import type { IServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";\n' +
      `export const object: IServiceMonitor = ${JSON.stringify(object, null, 2)};\n`,
  );
});
let output = "";
try {
  execFileSync(process.execPath, [join(toolsDir, "node_modules/typescript/bin/tsc"), "-p", "."], {
    cwd: dir,
    encoding: "utf8",
  });
} catch (error) {
  output = `${error.stdout ?? ""}${error.stderr ?? ""}`;
  if (!output.trim()) throw error;
}
for (const line of output.split("\n")) {
  const match = /^object(\d+)\.ts\(\d+,\d+\): error (TS\d+: .*)$/.exec(line.trim());
  if (match) problems[items[Number(match[1])].name].push(`unknown or mistyped field: ${match[2]}`);
  else if (/error TS\d+/.test(line)) problems[items[0]?.name ?? "tsc"]?.push(`tsc: ${line.trim()}`);
}
console.log(JSON.stringify(problems));
