// Validates a document of `rest2mqtt asyncapi` with the real AsyncAPI parser
// (@asyncapi/parser: no diagnostic of severity 0 = error may remain), and,
// with --payloads FILE (JSON lines {"topic", "payload", "retain"}), checks
// that every message the bridge published matches exactly one channel's
// address and validates against one of that channel's message schemas
// (ajv + ajv-formats). The npm packages live in $R2M_NODE_DIR
// (.ci/install-deps installs them); missing ones fail loudly.
//   node asyncapi_validate.mjs DOC... [--payloads FILE]   (FILE: against the last DOC)
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const dir = process.env.R2M_NODE_DIR;
if (!dir) {
  console.error("R2M_NODE_DIR is not set (the npm packages of .ci/install-deps)");
  process.exit(2);
}
const require = createRequire(path.join(dir, "node_modules", "x.js"));
let Parser, Ajv, addFormats;
try {
  ({ Parser } = require("@asyncapi/parser"));
  Ajv = require("ajv").default;
  addFormats = require("ajv-formats").default;
} catch (e) {
  console.error(`npm packages missing in ${dir}: ${e.message}; run .ci/install-deps`);
  process.exit(2);
}

const args = process.argv.slice(2);
const at = args.indexOf("--payloads");
const docs = at < 0 ? args : args.slice(0, at);
const payloadPath = at < 0 ? null : args[at + 1];
let text;
for (const docPath of docs) {
  text = readFileSync(docPath, "utf8");
  const { document, diagnostics } = await new Parser().parse(text);
  const errors = diagnostics.filter((d) => d.severity === 0);
  for (const d of diagnostics)
    console.log(`${d.severity === 0 ? "error" : "note"} ${d.code}: ${d.message} at /${d.path.join("/")}`);
  if (errors.length || !document) {
    console.error(`${docPath}: ${errors.length} error(s)`);
    process.exit(1);
  }
  console.log(`${docPath}: valid AsyncAPI ${document.version()}, ${document.channels().length} channel(s)`);
}
if (!payloadPath) process.exit(0);

// the raw document (JSON from --json) holds the schemas as written
const raw = JSON.parse(text);
const deref = (o) => (o && o.$ref ? o.$ref.slice(2).split("/").reduce((a, k) => a[k], raw) : o);
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const channels = Object.entries(raw.channels).map(([id, ch]) => {
  // a topic is on a channel when its levels fit the address and every
  // parameter value is one of the parameter's enum (when it has one)
  const names = [...ch.address.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
  const re = new RegExp("^" + ch.address.split(/\{[^}]+\}/).map((s) => s.replace(/[.*+?^$()|[\]\\]/g, "\\$&")).join("([^/]+)") + "$");
  const fits = (topic) => {
    const m = re.exec(topic);
    return !!m && names.every((n, i) => !(ch.parameters?.[n]?.enum) || ch.parameters[n].enum.includes(m[i + 1]));
  };
  const msgs = Object.entries(ch.messages).map(([name, m]) => {
    const msg = deref(m);
    return { name, msg, validate: ajv.compile(msg.payload) };
  });
  return { id, fits, msgs };
});
const lines = readFileSync(payloadPath, "utf8").split("\n").filter(Boolean);
let bad = 0;
const seen = {};
for (const line of lines) {
  const { topic, payload } = JSON.parse(line);
  const hits = channels.filter((c) => c.fits(topic));
  if (hits.length !== 1) {
    console.error(`${topic}: matches ${hits.length} channels (${hits.map((c) => c.id)})`);
    bad++;
    continue;
  }
  const ch = hits[0];
  const ok = ch.msgs.find((m) => {
    let data = payload;
    if (/json/.test(m.msg.contentType) && payload !== "") {
      try { data = JSON.parse(payload); } catch { return false; }
    }
    return m.validate(data);
  });
  if (!ok) {
    bad++;
    console.error(`${topic}: payload matches no message of channel ${ch.id}: ${payload.slice(0, 300)}`);
    for (const m of ch.msgs) console.error(`  ${m.name}: ${ajv.errorsText(m.validate.errors)}`);
  } else {
    seen[`${ch.id}/${ok.name}`] = (seen[`${ch.id}/${ok.name}`] || 0) + 1;
  }
}
console.log(JSON.stringify(seen));
console.log(`${lines.length - bad} of ${lines.length} payloads valid`);
process.exit(bad ? 1 : 0);
