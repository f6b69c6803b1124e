// check.mjs: offline checks of deploy/ (run through tests/deploy/run, which
// provides HELM and KUBECTL).
//
// Why: a chart or an overlay that renders is not yet one that a cluster
// accepts, nor one that keeps the promises of issue 6. So every rendered
// object is type-checked against the Kubernetes API types (kubernetes-models:
// JSON-schema validation, plus a strict unknown-field walk over the same
// package's type declarations, which catches misspelt keys that the API
// server would silently drop), and then asserted: every container of ours
// non-root with a read-only root fs and all capabilities dropped, probes,
// the agent as a native sidecar on 1.32 and a plain container on 1.28, the
// socket volume shared with the app, per-workload knobs, bad values rejected.
// Prints one line per check and "N passed, M failed"; exits 1 on any failure.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import YAML from "yaml";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SRC = path.resolve(process.env.VITALS_SRC || path.resolve(HERE, "../.."));
const HELM = process.env.HELM || "helm";
const KUBECTL = process.env.KUBECTL || "kubectl";
const KUBE_VERSIONS = ["1.28.0", "1.32.0"];
const AGENT = "vitals-agent";
const KNOBS = ["VITALS_WINDOW", "VITALS_FLUSH_INTERVAL", "VITALS_BATCH_MAX_BYTES",
  "VITALS_BATCH_MAX_AGGREGATES", "VITALS_MAX_IN_FLIGHT", "VITALS_COMPRESSION_LEVEL",
  "VITALS_SPOOL_MAX_BYTES", "VITALS_FSYNC", "VITALS_FSYNC_INTERVAL"];

let passed = 0, failed = 0;
function check(name, fn) {
  try {
    const note = fn();
    passed++;
    console.log(`ok    ${name}${note ? `  (${note})` : ""}`);
  } catch (e) {
    failed++;
    console.log(`FAIL  ${name}\n      ${String(e.message || e).split("\n").join("\n      ")}`);
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }

function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"],
      timeout: 120000, ...opts });
  } catch (e) {
    const err = new Error(`${path.basename(cmd)} ${args.join(" ")}\n${(e.stderr || "") + (e.stdout || "")}`.trim());
    err.stderr = String(e.stderr || "");
    err.status = e.status;
    throw err;
  }
}

// --------------------------------------------------------------- type checks
const require = createRequire(import.meta.url);
const MODELS_DIR = path.dirname(require.resolve("kubernetes-models/package.json"));
const PROM_DIR = path.dirname(require.resolve("@kubernetes-models/prometheus-operator/package.json"));
const APIM_DIR = path.dirname(require.resolve("@kubernetes-models/apimachinery/package.json"));

function modelPath(apiVersion, kind) {
  if (apiVersion === "monitoring.coreos.com/v1")
    return { pkg: "@kubernetes-models/prometheus-operator", dir: PROM_DIR, rel: `monitoring.coreos.com/v1/${kind}` };
  return { pkg: "kubernetes-models", dir: MODELS_DIR, rel: `${apiVersion}/${kind}` };
}

async function typeCheck(obj) {
  const { pkg, rel } = modelPath(obj.apiVersion, obj.kind);
  let mod;
  try { mod = await import(`${pkg}/${rel}`); }
  catch { throw new Error(`no API type known for ${obj.apiVersion} ${obj.kind}`); }
  const Cls = mod[obj.kind];
  assert(Cls, `no model class ${obj.kind} in ${pkg}/${rel}`);
  new Cls(obj).validate();                       // JSON schema: types, enums, required
  const unknown = [];
  strictWalk(obj, declFile(obj.apiVersion, obj.kind), "", unknown);
  assert(unknown.length === 0, `unknown fields (misspelt? the API server would drop them): ${unknown.join(", ")}`);
}

// A small parser of the models' .d.ts interfaces: enough to know, for each
// object in a manifest, which keys its type has.
const declCache = new Map();
function declFile(apiVersion, kind) {
  const { dir, rel } = modelPath(apiVersion, kind);
  return path.join(dir, rel + ".d.ts");
}
function parseDecl(file) {
  if (declCache.has(file)) return declCache.get(file);
  const text = fs.readFileSync(file, "utf8").replace(/\/\*\*[\s\S]*?\*\//g, "");
  const imports = {};
  for (const m of text.matchAll(/import \{([^}]+)\} from "([^"]+)";/g)) {
    for (const part of m[1].split(",")) {
      const [orig, alias] = part.trim().split(/\s+as\s+/);
      imports[(alias || orig).trim()] = { file: resolveImport(file, m[2]), name: orig.trim() };
    }
  }
  const im = text.match(/export interface (\w+)(?: extends [\w, ]+)? \{/);
  let type = null;
  if (im) type = parseType(text, im.index + im[0].length - 1).type;
  const d = { type, imports };
  declCache.set(file, d);
  return d;
}
function resolveImport(from, spec) {
  if (spec.startsWith(".")) return path.resolve(path.dirname(from), spec) + ".d.ts";
  const m = spec.match(/^(@[^/]+\/[^/]+|[^/]+)\/(.*)$/);
  if (!m) return null;
  const base = m[1] === "@kubernetes-models/apimachinery" ? APIM_DIR
    : m[1] === "kubernetes-models" ? MODELS_DIR : null;
  return base ? path.join(base, m[2] + ".d.ts") : null;
}
// type := '{' fields '}' | 'Array<' type '>' | leaf ; returns {type, end}
function parseType(s, i) {
  while (/\s/.test(s[i])) i++;
  if (s[i] === "{") {
    const fields = {}; let map = null; i++;
    for (;;) {
      while (/\s/.test(s[i])) i++;
      if (s[i] === "}") return { type: map ? { map } : { fields }, end: i + 1 };
      if (s[i] === "[") {                       // [key: string]: T;
        i = s.indexOf("]:", i) + 2;
        const r = parseType(s, i); map = r.type; i = r.end;
      } else {
        const m = s.slice(i).match(/^"?([\w$-]+)"?\??:/);
        if (!m) throw new Error(`d.ts parse error at ${s.slice(i, i + 40)}`);
        i += m[0].length;
        const r = parseType(s, i); fields[m[1]] = r.type; i = r.end;
      }
      while (/\s/.test(s[i])) i++;
      if (s[i] === ";") i++;
    }
  }
  if (s.startsWith("Array<", i)) {
    const r = parseType(s, i + 6);
    let j = r.end; while (/\s/.test(s[j])) j++;
    return { type: { array: r.type }, end: j + 1 };
  }
  let j = i, depth = 0;
  while (j < s.length) {
    const c = s[j];
    if (c === "<" || c === "(" || c === "[") depth++;
    else if (c === ")" || c === "]") depth--;
    else if (c === ">") { if (depth === 0) break; depth--; }
    else if ((c === ";" || c === "}") && depth === 0) break;
    j++;
  }
  return { type: { leaf: s.slice(i, j).trim() }, end: j };
}
function strictWalk(value, file, where, out, type) {
  if (!file || !fs.existsSync(file)) return;
  const d = parseDecl(file);
  walkType(value, type || d.type, d, where, out);
}
function walkType(v, t, d, where, out) {
  if (!t || v === null || v === undefined) return;
  if (t.array) { if (Array.isArray(v)) v.forEach((x, k) => walkType(x, t.array, d, `${where}[${k}]`, out)); return; }
  if (t.map) { if (typeof v === "object") for (const [k, x] of Object.entries(v)) walkType(x, t.map, d, `${where}.${k}`, out); return; }
  if (t.fields) {
    if (typeof v !== "object" || Array.isArray(v)) return;
    for (const [k, x] of Object.entries(v)) {
      if (!(k in t.fields)) { out.push(`${where}.${k}`.replace(/^\./, "")); continue; }
      walkType(x, t.fields[k], d, `${where}.${k}`, out);
    }
    return;
  }
  if (t.leaf && /^I\w+$/.test(t.leaf) && d.imports[t.leaf]) {
    const imp = d.imports[t.leaf];
    if (imp.file && fs.existsSync(imp.file)) strictWalk(v, imp.file, where, out);
  }
}

// ------------------------------------------------------------ manifest utils
function parseDocs(text) {
  return YAML.parseAllDocuments(text).map((d) => {
    if (d.errors.length) throw new Error(`YAML: ${d.errors[0].message}`);
    return d.toJS();
  }).filter((o) => o && typeof o === "object");
}
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"]);
function podSpecs(docs) {
  return docs.filter((o) => WORKLOADS.has(o.kind))
    .map((o) => ({ obj: o, tmpl: o.spec.template, spec: o.spec.template.spec }));
}
const allContainers = (spec) => [...(spec.initContainers || []), ...(spec.containers || [])];
const envOf = (c) => Object.fromEntries((c.env || []).map((e) => [e.name, e.value ?? e.valueFrom]));
const agentIn = (spec) => ({
  init: (spec.initContainers || []).find((c) => c.name === AGENT),
  plain: (spec.containers || []).find((c) => c.name === AGENT),
});

async function typeCheckAll(docs) {
  const errs = [];
  for (const o of docs) {
    try { await typeCheck(o); } catch (e) { errs.push(`${o.kind}/${o.metadata?.name}: ${e.message}`); }
  }
  assert(errs.length === 0, errs.join("\n"));
  return `${docs.length} objects: ${[...new Set(docs.map((o) => o.kind))].join(", ")}`;
}

// Pod-level hygiene that the API server or kubelet would refuse.
function assertPodConsistency(docs) {
  let n = 0;
  for (const { obj, spec } of podSpecs(docs)) {
    const id = `${obj.kind}/${obj.metadata.name}`;
    const names = allContainers(spec).map((c) => c.name);
    assert(new Set(names).size === names.length, `${id}: duplicate container names ${names}`);
    const vols = (spec.volumes || []).map((v) => v.name);
    assert(new Set(vols).size === vols.length, `${id}: duplicate volume names ${vols}`);
    const claimTemplates = (obj.spec.volumeClaimTemplates || []).map((v) => v.metadata.name);
    for (const c of allContainers(spec)) {
      const envNames = (c.env || []).map((e) => e.name);
      assert(new Set(envNames).size === envNames.length, `${id}/${c.name}: duplicate env ${envNames}`);
      for (const m of c.volumeMounts || [])
        assert(vols.includes(m.name) || claimTemplates.includes(m.name), `${id}/${c.name}: mount of unknown volume ${m.name}`);
      const ports = (c.ports || []).map((p) => p.name);
      for (const p of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const port = c[p]?.httpGet?.port;
        if (typeof port === "string") assert(ports.includes(port), `${id}/${c.name}: ${p} on unknown port ${port}`);
      }
      n++;
    }
  }
  return `${n} containers`;
}

// Every container of ours: non-root, read-only root fs, no capabilities,
// no privilege escalation, RuntimeDefault seccomp (container or pod level).
function assertRestricted(docs, only) {
  let n = 0;
  for (const { obj, spec } of podSpecs(docs)) {
    const psc = spec.securityContext || {};
    for (const c of allContainers(spec)) {
      if (only && !only(c)) continue;
      const sc = c.securityContext || {};
      const id = `${obj.kind}/${obj.metadata.name}/${c.name}`;
      assert((sc.runAsNonRoot ?? psc.runAsNonRoot) === true, `${id}: runAsNonRoot is not true`);
      const uid = sc.runAsUser ?? psc.runAsUser;
      assert(uid === undefined || uid !== 0, `${id}: runAsUser 0`);
      assert(sc.readOnlyRootFilesystem === true, `${id}: readOnlyRootFilesystem is not true`);
      assert(sc.allowPrivilegeEscalation === false, `${id}: allowPrivilegeEscalation is not false`);
      assert(sc.privileged !== true, `${id}: privileged`);
      assert((sc.capabilities?.drop || []).includes("ALL"), `${id}: capabilities.drop lacks ALL`);
      assert(!(sc.capabilities?.add || []).length, `${id}: adds capabilities`);
      assert((sc.seccompProfile?.type ?? psc.seccompProfile?.type) === "RuntimeDefault", `${id}: seccomp is not RuntimeDefault`);
      n++;
    }
  }
  assert(n > 0, "no container found");
  return `${n} containers`;
}

function assertProbes(c, id, { startup = true } = {}) {
  for (const p of ["livenessProbe", "readinessProbe", ...(startup ? ["startupProbe"] : [])])
    assert(c[p]?.httpGet?.path && c[p].httpGet.port, `${id}: ${p} missing`);
}

// The agent in one pod: native sidecar or plain container; volumes; app env.
function assertAgentPod(obj, spec, tmpl, native) {
  const id = `${obj.kind}/${obj.metadata.name}`;
  const { init, plain } = agentIn(spec);
  let agent;
  if (native) {
    assert(init, `${id}: no ${AGENT} initContainer`);
    assert(!plain, `${id}: ${AGENT} is also a plain container`);
    assert(init.restartPolicy === "Always", `${id}: ${AGENT} initContainer restartPolicy is ${init.restartPolicy}, not Always`);
    assert(init.startupProbe?.httpGet, `${id}: native sidecar without startupProbe`);
    agent = init;
  } else {
    assert(plain, `${id}: no ${AGENT} container`);
    assert(!init, `${id}: ${AGENT} is an initContainer on a cluster without native sidecars`);
    assert(plain.restartPolicy === undefined, `${id}: plain ${AGENT} container has restartPolicy`);
    agent = plain;
  }
  assertProbes(agent, `${id}/${AGENT}`);
  const aenv = envOf(agent);
  for (const k of ["VITALS_SOCKET_DIR", "VITALS_SPOOL_DIR", "VITALS_TOKEN_FILE", "VITALS_ADMIN_ADDR", "VITALS_SERVICE", "VITALS_AGENT_ID"])
    assert(aenv[k] !== undefined, `${id}/${AGENT}: env ${k} missing`);
  assert(String(aenv.VITALS_ADMIN_ADDR).startsWith("0.0.0.0:"), `${id}: admin not on 0.0.0.0 (probes would fail)`);
  // A sidecar's readiness is the pod's; /readyz fails while shipping lags, so
  // a scorer outage would take the app out of its Service.
  assert(agent.readinessProbe.httpGet.path !== "/readyz", `${id}: agent readiness on /readyz couples the app to the scorer`);
  assert(aenv.VITALS_SOCKET_MODE === "0666", `${id}: VITALS_SOCKET_MODE ${aenv.VITALS_SOCKET_MODE}: app UIDs could not connect`);
  const vol = (name) => (spec.volumes || []).find((v) => v.name === name);
  const sockMount = (agent.volumeMounts || []).find((m) => m.mountPath === aenv.VITALS_SOCKET_DIR);
  assert(sockMount, `${id}: agent does not mount its socket dir ${aenv.VITALS_SOCKET_DIR}`);
  assert(vol(sockMount.name)?.emptyDir, `${id}: socket volume ${sockMount.name} is not an emptyDir`);
  const spoolMount = (agent.volumeMounts || []).find((m) => m.mountPath === aenv.VITALS_SPOOL_DIR);
  assert(spoolMount && vol(spoolMount.name), `${id}: spool dir not on a volume`);
  const sv = vol(spoolMount.name);
  assert(sv.emptyDir?.sizeLimit || sv.ephemeral || sv.persistentVolumeClaim, `${id}: spool emptyDir without sizeLimit`);
  const tokenMount = (agent.volumeMounts || []).find((m) => String(aenv.VITALS_TOKEN_FILE).startsWith(m.mountPath + "/"));
  assert(tokenMount && vol(tokenMount.name)?.secret, `${id}: token file not from a Secret volume`);
  const apps = (spec.containers || []).filter((c) => c.name !== AGENT);
  assert(apps.length > 0, `${id}: no app container`);
  for (const c of apps) {
    const m = (c.volumeMounts || []).find((x) => x.name === sockMount.name);
    assert(m, `${id}/${c.name}: socket volume ${sockMount.name} not mounted in the app container`);
    const env = envOf(c);
    assert(env.VITALS_SOCKET_DIR === m.mountPath, `${id}/${c.name}: VITALS_SOCKET_DIR=${env.VITALS_SOCKET_DIR} but socket mounted at ${m.mountPath}`);
    assert(/^http:\/\/127\.0\.0\.1:\d+$/.test(env.OTEL_EXPORTER_OTLP_ENDPOINT || ""), `${id}/${c.name}: OTEL_EXPORTER_OTLP_ENDPOINT missing`);
  }
  assert(tmpl.metadata?.labels?.["vitals.dev/agent"] === "true", `${id}: pod lacks label vitals.dev/agent=true (NetworkPolicy)`);
  return agent;
}

const recommended = ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
  "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"];

// ------------------------------------------------------------------- helm
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vitals-deploy-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
// Work on a copy so `helm dependency build` leaves the checkout untouched.
fs.cpSync(path.join(SRC, "deploy/helm"), path.join(tmp, "helm"), { recursive: true });
const SCORER = path.join(tmp, "helm/vitals");
const LIB = path.join(tmp, "helm/vitals-agent");
const EXAMPLE = path.join(tmp, "helm/examples/llm-app");
const BAD = path.join(HERE, "bad-values");

const helmTemplate = (chart, kv, extra = []) =>
  parseDocs(run(HELM, ["template", "vitals", chart, "--namespace", "vitals", "--kube-version", kv, ...extra]));

console.log(`# helm (${HELM})`);
check("helm dependency build examples/llm-app (file://../../vitals-agent)", () => {
  run(HELM, ["dependency", "build", EXAMPLE]);
  return fs.readdirSync(path.join(EXAMPLE, "charts")).join(", ");
});
for (const [name, chart] of [["vitals", SCORER], ["vitals-agent (library)", LIB], ["examples/llm-app", EXAMPLE]]) {
  for (const kv of KUBE_VERSIONS) {
    check(`helm lint --strict ${name} --kube-version ${kv}`, () => {
      const out = run(HELM, ["lint", "--strict", chart, "--kube-version", kv]);
      assert(/1 chart\(s\) linted, 0 chart\(s\) failed/.test(out), out);
      const notes = out.split("\n").filter((l) => /^\[(WARNING|ERROR)\]/.test(l));
      assert(notes.length === 0, notes.join("\n"));
    });
  }
}

const rendered = {};
for (const kv of KUBE_VERSIONS) {
  rendered[`scorer-${kv}`] = [];
  check(`helm template vitals (scorer, serviceMonitor on) --kube-version ${kv}`, () => {
    rendered[`scorer-${kv}`] = helmTemplate(SCORER, kv, ["--set", "serviceMonitor.enabled=true"]);
    return `${rendered[`scorer-${kv}`].length} objects`;
  });
}
for (const kv of KUBE_VERSIONS) {
  const docs = rendered[`scorer-${kv}`];
  let note = "", err = null;
  try { note = await typeCheckAll(docs); } catch (e) { err = e; }
  check(`  ${kv}: every object valid against the Kubernetes API types`, () => { if (err) throw err; return note; });
  check(`  ${kv}: consistent pods (volumes, env, probe ports)`, () => assertPodConsistency(docs));
  check(`  ${kv}: every container non-root, read-only root fs, drop ALL, seccomp`, () => assertRestricted(docs));
  check(`  ${kv}: recommended app.kubernetes.io/* labels on every object`, () => {
    for (const o of docs) for (const l of recommended)
      assert(o.metadata?.labels?.[l], `${o.kind}/${o.metadata?.name}: label ${l} missing`);
    return `${docs.length} objects`;
  });
  check(`  ${kv}: scorer StatefulSet with PVC, probes, score-file checksum`, () => {
    const ss = docs.find((o) => o.kind === "StatefulSet");
    assert(ss, "no StatefulSet");
    assert(ss.spec.volumeClaimTemplates?.[0]?.metadata?.name === "data", "no data volumeClaimTemplate");
    const c = ss.spec.template.spec.containers.find((x) => x.name === "scorer");
    assert(c, "no scorer container");
    assertProbes(c, "scorer");
    const env = envOf(c);
    assert(env.VITALS_GRPC_ADDR === "0.0.0.0:7400" && env.VITALS_HTTP_ADDR === "0.0.0.0:7402", "scorer addresses");
    assert((c.volumeMounts || []).some((m) => m.name === "data" && m.mountPath === env.VITALS_DATA_DIR), "data dir not on the PVC");
    const cm = docs.find((o) => o.kind === "ConfigMap");
    const scores = JSON.parse(cm.data["scores.json"]);
    assert(scores.version === 1 && scores.scores.length > 0, "score file is not {version: 1, scores: [...]}");
    assert(env.VITALS_SCORES.startsWith((c.volumeMounts.find((m) => m.name === "scores") || {}).mountPath), "score file not mounted");
    assert(/^[0-9a-f]{64}$/.test(ss.spec.template.metadata.annotations["checksum/scores"] || ""), "no checksum/scores annotation");
    return `${scores.scores.length} default score(s)`;
  });
  check(`  ${kv}: Services, Secret, PDB, NetworkPolicy, ServiceMonitor`, () => {
    const svc = docs.find((o) => o.kind === "Service" && o.metadata.name === "vitals-scorer");
    assert(svc, "Service vitals-scorer missing (agents point at it)");
    const ports = Object.fromEntries(svc.spec.ports.map((p) => [p.name, p.port]));
    assert(ports.grpc === 7400 && ports.http === 7402, `service ports ${JSON.stringify(ports)}`);
    const sec = docs.find((o) => o.kind === "Secret");
    assert(sec && Buffer.from(sec.data.token, "base64").length >= 32, "generated token missing or short");
    assert(sec.metadata.annotations?.["helm.sh/resource-policy"] === "keep", "token Secret not kept");
    assert(docs.some((o) => o.kind === "PodDisruptionBudget"), "no PodDisruptionBudget");
    const np = docs.find((o) => o.kind === "NetworkPolicy");
    assert(np, "no NetworkPolicy");
    const grpc = np.spec.ingress.find((r) => r.ports.some((p) => p.port === "grpc"));
    assert(grpc?.from?.every((f) => f.podSelector?.matchLabels?.["vitals.dev/agent"] === "true"), "gRPC ingress not limited to agent pods");
    assert(docs.some((o) => o.kind === "ServiceMonitor"), "no ServiceMonitor with serviceMonitor.enabled=true");
  });
}
check("vitals: a changed score file changes the pod checksum (rolls the scorer)", () => {
  const docs = helmTemplate(SCORER, "1.32.0");
  const scores = JSON.parse(docs.find((o) => o.kind === "ConfigMap").data["scores.json"]);
  scores.scores[0].min_count += 1;
  const f = path.join(tmp, "scores-changed.yaml");
  fs.writeFileSync(f, YAML.stringify({ scores }));
  const a = docs.find((o) => o.kind === "StatefulSet");
  const b = helmTemplate(SCORER, "1.32.0", ["-f", f]).find((o) => o.kind === "StatefulSet");
  const k = "checksum/scores";
  assert(a.spec.template.metadata.annotations[k] !== b.spec.template.metadata.annotations[k], "checksum unchanged");
});
check("vitals: given token is used; existingSecret renders no Secret", () => {
  const d = helmTemplate(SCORER, "1.32.0", ["--set", "auth.token=abc"]);
  assert(Buffer.from(d.find((o) => o.kind === "Secret").data.token, "base64").toString() === "abc", "token not used");
  const e = helmTemplate(SCORER, "1.32.0", ["--set", "auth.existingSecret=mine"]);
  assert(!e.some((o) => o.kind === "Secret"), "Secret rendered despite existingSecret");
  const ss = e.find((o) => o.kind === "StatefulSet");
  assert(ss.spec.template.spec.volumes.find((v) => v.name === "token").secret.secretName === "mine", "existingSecret not mounted");
});
check("vitals: persistence.enabled=false uses an emptyDir, no claim template", () => {
  const ss = helmTemplate(SCORER, "1.32.0", ["--set", "persistence.enabled=false"]).find((o) => o.kind === "StatefulSet");
  assert(!ss.spec.volumeClaimTemplates && ss.spec.template.spec.volumes.find((v) => v.name === "data").emptyDir, "data volume");
});

// Bad values: each file must fail the chart's values.schema.json.
for (const [chartName, chart] of [["vitals", SCORER], ["llm-app", EXAMPLE]]) {
  const dir = path.join(BAD, chartName);
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort() : [];
  check(`bad values for ${chartName}: ${files.length} files present`, () => assert(files.length > 0, `none in ${dir}`));
  for (const f of files) {
    check(`  ${chartName} rejects bad-values/${chartName}/${f}`, () => {
      let out;
      try { out = run(HELM, ["template", "x", chart, "-f", path.join(dir, f), "--kube-version", "1.32.0"]); }
      catch (e) {
        const msg = e.stderr.trim().split("\n").filter((l) => l.trim()).slice(-1)[0];
        assert(/values don't meet the specifications of the schema|vitalsAgent\./.test(e.stderr), `failed, but not on the values: ${e.stderr}`);
        return msg.trim();
      }
      throw new Error(`rendered without error:\n${out.slice(0, 300)}`);
    });
  }
}

console.log("# helm: example app with the vitals-agent library");
for (const kv of KUBE_VERSIONS) {
  const native = kv !== "1.28.0";
  let docs = [];
  check(`helm template examples/llm-app --kube-version ${kv}`, () => {
    docs = helmTemplate(EXAMPLE, kv);
    return `${docs.length} objects`;
  });
  let note = "", err = null;
  try { note = await typeCheckAll(docs); } catch (e) { err = e; }
  check(`  ${kv}: every object valid against the Kubernetes API types`, () => { if (err) throw err; return note; });
  check(`  ${kv}: consistent pods (volumes, env, probe ports)`, () => assertPodConsistency(docs));
  check(`  ${kv}: agent is ${native ? "a native sidecar (initContainer, restartPolicy Always, startupProbe)" : "a plain container"}; socket volume shared; probes`, () => {
    const pods = podSpecs(docs);
    assert(pods.length === 2, `expected 2 workloads, got ${pods.length}`);
    for (const { obj, spec, tmpl } of pods) assertAgentPod(obj, spec, tmpl, native);
    return pods.map((p) => p.obj.metadata.name).join(", ");
  });
  check(`  ${kv}: every container (agent and app) restricted`, () => assertRestricted(docs));
  check(`  ${kv}: agent runs as 65532 with requests and limits`, () => {
    for (const { spec } of podSpecs(docs)) {
      const { init, plain } = agentIn(spec); const a = init || plain;
      assert(a.securityContext.runAsUser === 65532, "agent uid");
      assert(a.resources?.requests?.cpu && a.resources?.limits?.memory, "agent resources");
    }
  });
  check(`  ${kv}: batching knobs per workload (api: defaults, evaluator: its own)`, () => {
    const byName = Object.fromEntries(podSpecs(docs).map(({ obj, spec }) => {
      const { init, plain } = agentIn(spec); return [obj.metadata.name, envOf(init || plain)];
    }));
    const api = byName["vitals-llm-app-api"], ev = byName["vitals-llm-app-evaluator"];
    for (const k of KNOBS) assert(api[k] !== undefined && ev[k] !== undefined, `knob ${k} not set`);
    assert(api.VITALS_WINDOW === "10s" && api.VITALS_FSYNC === "interval" && api.VITALS_COMPRESSION_LEVEL === "1", "api knobs");
    assert(ev.VITALS_WINDOW === "30s" && ev.VITALS_FSYNC === "always" && ev.VITALS_COMPRESSION_LEVEL === "3", "evaluator knobs");
    return `api window ${api.VITALS_WINDOW}, evaluator window ${ev.VITALS_WINDOW}`;
  });
}
check("llm-app: nativeSidecar=false forces a plain container on 1.32", () => {
  const docs = helmTemplate(EXAMPLE, "1.32.0", ["--set", "vitalsAgent.nativeSidecar=false"]);
  for (const { obj, spec, tmpl } of podSpecs(docs)) assertAgentPod(obj, spec, tmpl, false);
});
check("llm-app: nativeSidecar=true forces a native sidecar on 1.28", () => {
  const docs = helmTemplate(EXAMPLE, "1.28.0", ["--set", "vitalsAgent.nativeSidecar=true"]);
  for (const { obj, spec, tmpl } of podSpecs(docs)) assertAgentPod(obj, spec, tmpl, true);
});
check("llm-app: spool on a per-pod ephemeral PVC; --set numbers accepted", () => {
  const docs = helmTemplate(EXAMPLE, "1.32.0", ["--set", "vitalsAgent.spool.volume=ephemeral",
    "--set", "vitalsAgent.batching.maxInFlight=8"]);
  for (const { obj, spec, tmpl } of podSpecs(docs)) {
    const a = assertAgentPod(obj, spec, tmpl, true);
    assert(envOf(a).VITALS_MAX_IN_FLIGHT === "8", "maxInFlight");
    assert(spec.volumes.find((v) => v.name === "vitals-spool").ephemeral?.volumeClaimTemplate, "no ephemeral spool");
  }
});
check("llm-app: the library's own checks name the bad key (spool.existingClaim)", () => {
  try { helmTemplate(EXAMPLE, "1.32.0", ["--set", "vitalsAgent.spool.volume=existingClaim"]); }
  catch (e) { assert(/vitalsAgent\.spool\.existingClaim: required/.test(e.stderr), e.stderr); return "render failed as it should"; }
  throw new Error("rendered without a claim name");
});
check("llm-app: vitalsAgent.enabled=false leaves the pods untouched", () => {
  const docs = helmTemplate(EXAMPLE, "1.32.0", ["--set", "vitalsAgent.enabled=false"]);
  for (const { spec } of podSpecs(docs)) {
    const { init, plain } = agentIn(spec);
    assert(!init && !plain && !(spec.volumes || []).some((v) => v.name.startsWith("vitals-")), "agent still added");
  }
});

// --------------------------------------------------------------- kustomize
console.log(`# kustomize (${KUBECTL} kustomize)`);
const KDIR = path.join(SRC, "deploy/kustomize");
const overlays = fs.readdirSync(path.join(KDIR, "overlays")).sort();
const kdocs = {};
check(`overlays found: ${overlays.join(", ")}`, () => assert(overlays.includes("dev") && overlays.includes("prod"), "dev and prod overlays required"));
for (const ov of ["../base", ...overlays.map((o) => o)]) {
  const dir = path.join(KDIR, "overlays", ov);
  const label = ov === "../base" ? "base" : `overlays/${ov}`;
  check(`kubectl kustomize ${label}`, () => {
    kdocs[label] = parseDocs(run(KUBECTL, ["kustomize", dir]));
    return `${kdocs[label].length} objects`;
  });
  const docs = kdocs[label] || [];
  let note = "", err = null;
  try { note = await typeCheckAll(docs); } catch (e) { err = e; }
  check(`  ${label}: every object valid against the Kubernetes API types`, () => { if (err) throw err; return note; });
  check(`  ${label}: consistent pods (volumes, env, probe ports)`, () => assertPodConsistency(docs));
  check(`  ${label}: every container restricted`, () => assertRestricted(docs));
  check(`  ${label}: scorer StatefulSet with PVC, probes, token, generated score ConfigMap`, () => {
    const ss = docs.find((o) => o.kind === "StatefulSet" && o.metadata.name === "vitals-scorer");
    assert(ss?.spec.volumeClaimTemplates?.length, "no scorer StatefulSet with PVC");
    assert(ss.spec.replicas === 1, `replicas ${ss.spec.replicas}`);
    const c = ss.spec.template.spec.containers[0];
    assertProbes(c, "scorer");
    const cmName = ss.spec.template.spec.volumes.find((v) => v.name === "scores").configMap.name;
    const cm = docs.find((o) => o.kind === "ConfigMap" && o.metadata.name === cmName);
    assert(cm, `score ConfigMap ${cmName} not in the output`);
    assert(/-[a-z0-9]{10}$/.test(cmName), "score ConfigMap has no content hash suffix (a change would not roll the pod)");
    const helmScores = JSON.parse(helmTemplate(SCORER, "1.32.0").find((o) => o.kind === "ConfigMap").data["scores.json"]);
    assert(JSON.stringify(JSON.parse(cm.data["scores.json"])) === JSON.stringify(helmScores) ||
      isDeepStrictEqual(JSON.parse(cm.data["scores.json"]), helmScores), "score file differs from the Helm chart's default");
    return cmName;
  });
}
check("  overlays/dev: support-bot has the native sidecar; docs-site (unlabelled) does not", () => {
  const docs = kdocs["overlays/dev"];
  const pods = podSpecs(docs);
  const bot = pods.find((p) => p.obj.metadata.name === "support-bot");
  const agent = assertAgentPod(bot.obj, bot.spec, bot.tmpl, true);
  const docsSite = pods.find((p) => p.obj.metadata.name === "docs-site");
  const { init, plain } = agentIn(docsSite.spec);
  assert(!init && !plain && !(docsSite.spec.containers[0].env || []).length, "docs-site was injected");
  // references the generators renamed must resolve
  const cmRef = agent.envFrom[0].configMapRef.name;
  const cm = docs.find((o) => o.kind === "ConfigMap" && o.metadata.name === cmRef);
  assert(cm, `agent envFrom ConfigMap ${cmRef} not rendered`);
  for (const k of KNOBS) assert(cm.data[k] !== undefined, `knob ${k} missing in ${cmRef}`);
  assert(cm.data.VITALS_SCORER === "http://vitals-scorer:7400", "dev scorer address");
  const secretName = bot.spec.volumes.find((v) => v.name === "vitals-token").secret.secretName;
  assert(docs.some((o) => o.kind === "Secret" && o.metadata.name === secretName), `Secret ${secretName} not rendered`);
  const ss = docs.find((o) => o.kind === "StatefulSet");
  assert(ss.spec.template.spec.volumes.find((v) => v.name === "token").secret.secretName === secretName, "scorer and agent tokens differ");
  return `envFrom ${cmRef}, token ${secretName}`;
});
check("  overlays/prod: PDB, NetworkPolicy (gRPC from agent pods only), resources, 50Gi", () => {
  const docs = kdocs["overlays/prod"];
  assert(docs.every((o) => o.kind === "Namespace" || o.metadata.namespace === "vitals"), "namespace");
  assert(docs.some((o) => o.kind === "PodDisruptionBudget"), "no PDB");
  const np = docs.find((o) => o.kind === "NetworkPolicy");
  const grpc = np?.spec.ingress.find((r) => r.ports.some((p) => p.port === "grpc"));
  assert(grpc?.from?.every((f) => f.podSelector?.matchLabels?.["vitals.dev/agent"] === "true"), "gRPC ingress not limited to agent pods");
  const ss = docs.find((o) => o.kind === "StatefulSet");
  assert(ss.spec.template.spec.containers[0].resources.requests.memory === "2Gi", "prod resources");
  assert(ss.spec.volumeClaimTemplates[0].spec.resources.requests.storage === "50Gi", "prod volume");
  assert(!docs.some((o) => o.kind === "Secret"), "prod overlay must not carry a token");
});
check("component agent-sidecar matches the Helm library's agent (env names, probes, mounts)", () => {
  const bot = podSpecs(kdocs["overlays/dev"]).find((p) => p.obj.metadata.name === "support-bot");
  const k = agentIn(bot.spec).init;
  const h = agentIn(podSpecs(helmTemplate(EXAMPLE, "1.32.0"))[0].spec).init;
  const names = (c) => new Set([...(c.env || []).map((e) => e.name)]);
  const kn = names(k); for (const n of Object.keys(kdocs["overlays/dev"].find((o) => o.metadata.name === k.envFrom[0].configMapRef.name).data)) kn.add(n);
  const missing = [...names(h)].filter((n) => !kn.has(n));
  assert(missing.length === 0, `component lacks ${missing}`);
  for (const p of ["startupProbe", "livenessProbe", "readinessProbe"])
    assert(k[p].httpGet.path === h[p].httpGet.path, `${p} path differs`);
  assert(JSON.stringify(k.securityContext) === JSON.stringify(h.securityContext) ||
    isDeepStrictEqual(k.securityContext, h.securityContext), "securityContext differs");
  assert(JSON.stringify(k.volumeMounts.map((m) => m.mountPath)) === JSON.stringify(h.volumeMounts.map((m) => m.mountPath)), "mounts differ");
});


console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
