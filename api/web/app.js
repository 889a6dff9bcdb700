// Vigil's web page: findings, their detail, sensor coverage, suppressions and
// rules, read from /api/v1.
//
// Every string that comes from the API may be attacker-controlled (command
// lines, paths, container names, DNS names). The page therefore builds the
// DOM with createElement and textContent only; it never turns a string into
// markup (no HTML-parsing DOM property or method appears in this file, and a
// test checks that), never sets event-handler attributes from data, and only
// links to its own #/ routes. The server's
// Content-Security-Policy forbids inline script as a second wall.

const TOKEN_KEY = "vigil.apiToken";
const main = document.getElementById("main");

// ---- DOM helpers ----------------------------------------------------------

// el creates an element. attrs may hold className, text, href (own routes
// only), type, value, title, htmlFor, dataset entries and on<event>
// handlers (functions, never strings). Children are nodes or strings (added
// as text).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "text") e.textContent = String(v);
    else if (k === "className") e.className = v;
    else if (k === "href") e.setAttribute("href", safeHref(v));
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// safeHref admits the page's own routes only, so no data-derived
// "javascript:" or off-site URL can become a link.
function safeHref(h) {
  return typeof h === "string" && h.startsWith("#/") ? h : "#/";
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function kv(pairs) {
  const dl = el("dl", { className: "kv" });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0)) continue;
    dl.append(el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : String(v)));
  }
  return dl;
}

function fmtTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (isNaN(d)) return String(ts);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ago(ts) {
  if (!ts) return "";
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function severityLabel(sev) {
  if (sev >= 9) return "Critical";
  if (sev >= 7) return "High";
  if (sev >= 4) return "Medium";
  return "Low";
}

function sevBadge(f) {
  const sev = Number(f.severity || 0);
  const label = f.severityLabel || severityLabel(sev);
  return el("span", { className: `sev sev-${label.toLowerCase()}`, title: `severity ${sev}` }, `${label} ${sev.toFixed(1)}`);
}

// ---- API ------------------------------------------------------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

class APIError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.parameter = body && body.parameter;
  }
}

async function api(path, opts = {}) {
  const res = await fetch(`/api/v1${path}`, {
    ...opts,
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json", ...(opts.headers || {}) },
  });
  if (res.status === 204) return null;
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  if (!res.ok) {
    if (res.status === 401 || res.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken(body && body.error);
    }
    throw new APIError(res.status, body);
  }
  return body;
}

function errorBox(err) {
  return el("p", { className: "error", role: "alert" }, `Error: ${err.message}${err.parameter ? ` (parameter ${err.parameter})` : ""}`);
}

// ---- token ----------------------------------------------------------------

// takeTokenFromURL moves a token given as #token=... (make demo prints such
// a URL) into session storage and out of the address bar and history.
function takeTokenFromURL() {
  const m = location.hash.match(/^#token=([^&]*)/);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", `${location.pathname}${location.search}#/findings`);
}

function askToken(reason) {
  const input = el("input", { type: "password", id: "token-input", autocomplete: "off", placeholder: "API token" });
  const form = el("form", {
    className: "panel token-box",
    onsubmit: (ev) => {
      ev.preventDefault();
      if (!input.value.trim()) return;
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      route();
    },
  },
  el("h1", { text: "Vigil" }),
  el("p", { text: "Enter the backend's API token. It is kept for this browser tab only." }),
  reason ? el("p", { className: "error", text: reason }) : null,
  input,
  el("button", { type: "submit", text: "Continue" }));
  show(form);
  input.focus();
}

// ---- findings list --------------------------------------------------------

const SEVERITY_CHOICES = [["", "Any"], ["1", "Low and up"], ["4", "Medium and up"], ["7", "High and up"], ["9", "Critical"]];
// Values match exactly; a trailing * matches a prefix (the placeholders say so).
const TEXT_FILTERS = [
  ["type", "Type", "Execution:*"],
  ["cluster", "ECS cluster", "name or ARN"],
  ["namespace", "Namespace", "kube-*"],
  ["pod", "Pod", "web-*"],
  ["image", "Image", "nginx*"],
  ["hostname", "Host", "ip-10-0-*"],
];

function resourceSummary(f) {
  const r = f.resource || {};
  const parts = [];
  const k8s = r.kubernetesDetails && r.kubernetesDetails.kubernetesWorkloadDetails;
  if (k8s && k8s.name) parts.push(`pod ${k8s.namespace ? k8s.namespace + "/" : ""}${k8s.name}`);
  const ecs = r.ecsClusterDetails;
  if (ecs && ecs.name) parts.push(`ECS ${ecs.name}${ecs.taskDetails && ecs.taskDetails.family ? " / " + ecs.taskDetails.family : ""}`);
  const c = r.containerDetails;
  if (c && (c.image || c.name)) parts.push(c.image || c.name);
  if (r.hostname) parts.push(`host ${r.hostname}`);
  if (r.instanceDetails && r.instanceDetails.instanceId) parts.push(r.instanceDetails.instanceId);
  return parts.join(" · ") || r.resourceType || "";
}

async function viewFindings(params) {
  if (!params.has("archived")) params.set("archived", "false");
  const form = el("form", { className: "panel filters", id: "filters" });
  for (const [name, label, ph] of TEXT_FILTERS) {
    form.append(el("label", {}, label, el("input", { type: "text", name, value: params.get(name) || "", placeholder: ph })));
  }
  const sev = el("select", { name: "severityMin" }, SEVERITY_CHOICES.map(([v, l]) => el("option", { value: v, text: l })));
  sev.value = params.get("severityMin") || "";
  const arch = el("select", { name: "archived" }, [["false", "Active"], ["true", "Archived"], ["any", "All"]].map(([v, l]) => el("option", { value: v, text: l })));
  arch.value = params.get("archived");
  const sort = el("select", { name: "sortBy" }, [["lastSeen", "Last seen"], ["severity", "Severity"]].map(([v, l]) => el("option", { value: v, text: l })));
  sort.value = params.get("sortBy") || "lastSeen";
  form.append(el("label", {}, "Severity", sev), el("label", {}, "Status", arch), el("label", {}, "Sort by", sort));
  form.append(el("button", { type: "submit", id: "apply-filters", text: "Apply" }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim() !== "") q.set(k, String(v).trim());
    location.hash = `#/findings?${q}`;
  });

  const status = el("p", { className: "muted", id: "list-status", text: "Loading…" });
  show(el("h1", { text: "Findings" }), form, status);

  let body;
  try {
    body = await api(`/findings?${params}`);
  } catch (err) {
    status.replaceWith(errorBox(err));
    return;
  }
  let shown = findingsResult(body, params, status);
  main.append(...shown);
  // The first page follows new findings while it is on screen; later pages
  // stay put so a reader paging through does not lose their place.
  if (!params.has("nextToken")) {
    let key = listKey(body);
    refreshTimer = setInterval(async () => {
      if (document.hidden) return;
      let fresh;
      try { fresh = await api(`/findings?${params}`); } catch { return; }
      if (listKey(fresh) === key || !shown[0].isConnected) return;
      key = listKey(fresh);
      const next = findingsResult(fresh, params, status);
      shown.forEach((n, i) => n.replaceWith(next[i]));
      shown = next;
    }, REFRESH_MS);
  }
}

// ?refresh=SECONDS in the page address changes the period (minimum 1 s).
const REFRESH_MS = Math.max(1, Number(new URLSearchParams(location.search).get("refresh")) || 10) * 1000;
let refreshTimer = null;

function listKey(body) {
  return body.findings.map((f) => `${f.id}/${f.updatedAt}/${f.service && f.service.archived}`).join(",");
}

// findingsResult builds the table and pager of one page of findings and
// updates the status line.
function findingsResult(body, params, status) {
  const rows = body.findings.map((f) => {
    const svc = f.service || {};
    return el("tr", { className: svc.archived ? "archived" : "", dataset: { id: f.id } },
      el("td", {}, sevBadge(f)),
      el("td", { className: "wrap" }, el("a", { href: `#/finding/${encodeURIComponent(f.id)}`, className: "finding-link", text: f.title || f.type })),
      el("td", { className: "mono wrap", text: f.type }),
      el("td", { className: "wrap", text: resourceSummary(f) }),
      el("td", { text: String(svc.count || 1) }),
      el("td", { title: fmtTime(svc.eventLastSeen || f.updatedAt), text: ago(svc.eventLastSeen || f.updatedAt) }),
      el("td", { text: svc.archived ? "archived" : "" }));
  });
  const table = el("table", { id: "findings-table" },
    el("thead", {}, el("tr", {}, ["Severity", "Title", "Type", "Resource", "Count", "Last seen", ""].map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
  status.textContent = body.findings.length ? `${body.findings.length} finding(s) on this page` : "No findings match.";
  const pager = el("div", { className: "pager" });
  if (params.has("nextToken")) pager.append(el("button", { type: "button", className: "secondary", text: "Previous", onclick: () => history.back() }));
  if (body.nextToken) {
    const next = new URLSearchParams(params);
    next.set("nextToken", body.nextToken);
    pager.append(el("a", { href: `#/findings?${next}`, id: "next-page", text: "Next page →" }));
  }
  return [table, pager];
}

// ---- finding detail -------------------------------------------------------

// lineageTree nests the acting process under its ancestors, oldest at the
// top. The API lists lineage nearest first (parent, grandparent, ...).
function lineageTree(proc) {
  const chain = [...(proc.lineage || [])].reverse();
  const root = el("ul", { className: "tree", id: "lineage" });
  let parent = root;
  const node = (p, current) => el("span", { className: "node" },
    el("span", { className: "name", text: p.name || "?" }),
    ` pid ${p.pid || "?"}`,
    p.namespacePid && p.namespacePid !== p.pid ? ` (ns ${p.namespacePid})` : "",
    p.executablePath ? el("span", { className: "muted mono" }, `  ${p.executablePath}`) : null,
    current && proc.commandLine ? el("div", { className: "mono wrap cmdline", text: proc.commandLine }) : null);
  for (const a of chain) {
    const li = el("li", {}, node(a, false));
    const ul = el("ul");
    li.append(ul);
    parent.append(li);
    parent = ul;
  }
  parent.append(el("li", { className: "current" }, node(proc, true)));
  return root;
}

function processPanel(title, p) {
  if (!p) return null;
  return el("div", { className: "panel" }, el("h2", { text: title }), kv([
    ["Name", p.name],
    ["Executable", p.executablePath],
    ["Command line", p.commandLine ? el("code", { className: "cmdline", text: p.commandLine }) : ""],
    ["PID", p.pid],
    ["Namespace PID", p.namespacePid],
    // The JSON mapping omits zeros, and uid 0 is the one that matters most.
    ["User", p.user ? `${p.user} (uid ${p.userId || 0})` : `uid ${p.userId || 0}`],
    ["EUID", String(p.euid || 0)],
    ["Working directory", p.pwd],
    ["SHA-256", p.executableSha256],
    ["Started", fmtTime(p.startTime)],
    ["Process id", p.uuid],
    ["Parent id", p.parentUuid],
  ]));
}

function resourcePanel(r = {}) {
  const parts = [el("h2", { text: "Resource" }), kv([
    ["Type", r.resourceType], ["Host", r.hostname], ["Sensor", r.sensorId],
  ])];
  const i = r.instanceDetails;
  if (i) parts.push(el("h3", { text: "Instance" }), kv([["Instance id", i.instanceId], ["Type", i.instanceType], ["AMI", i.imageId], ["Zone", i.availabilityZone]]));
  const e = r.ecsClusterDetails;
  if (e) {
    const t = e.taskDetails || {};
    parts.push(el("h3", { text: "ECS" }), kv([
      ["Cluster", e.name], ["Cluster ARN", e.arn], ["Task ARN", t.arn], ["Task definition", t.definitionArn],
      ["Family", t.family], ["Revision", t.version], ["Launch type", t.launchType],
      ["Containers", (t.containers || []).map((c) => `${c.name || c.id} (${c.image || "?"})`).join(", ")],
    ]));
  }
  const k = r.kubernetesDetails && r.kubernetesDetails.kubernetesWorkloadDetails;
  if (k) parts.push(el("h3", { text: "Kubernetes" }), kv([["Namespace", k.namespace], ["Pod", k.name], ["Kind", k.type], ["UID", k.uid],
    ["Containers", (k.containers || []).map((c) => `${c.name || c.id} (${c.image || "?"})`).join(", ")]]));
  const c = r.containerDetails;
  if (c) parts.push(el("h3", { text: "Container" }), kv([["Id", c.id], ["Name", c.name], ["Image", c.image], ["Runtime", c.containerRuntime],
    ["Privileged", c.securityContext && c.securityContext.privileged ? "yes" : ""]]));
  return el("div", { className: "panel", id: "resource" }, parts);
}

function contextPanel(ctx) {
  if (!ctx) return null;
  const pairs = [];
  for (const [k, v] of Object.entries(ctx)) {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      pairs.push([k, `${v.name || "?"} pid ${v.pid || "?"} ${v.executablePath || ""}`]);
    } else {
      pairs.push([k, Array.isArray(v) ? v.join(", ") : v]);
    }
  }
  if (!pairs.length) return null;
  return el("div", { className: "panel", id: "context" }, el("h2", { text: "Runtime context" }), kv(pairs));
}

const KINDS = ["exec", "fork", "exit", "setId", "capset", "ptrace", "memfdCreate", "moduleLoad", "mount", "namespace", "bpf",
  "userfaultfd", "processVmWrite", "mprotect", "open", "unlink", "rename", "chmod", "chown", "link", "truncate",
  "connect", "accept", "bind", "listen", "dnsQuery", "dnsAnswer", "socket", "dup"];

function eventKind(ev) {
  return KINDS.find((k) => ev[k] !== undefined) || "";
}

function addr(a) {
  if (!a) return "";
  if (a.path) return a.path;
  return a.ip ? `${a.ip}:${a.port || 0}` : "";
}

function eventSummary(ev) {
  const k = eventKind(ev);
  const a = ev[k] || {};
  switch (k) {
    case "exec": return (ev.process && ev.process.args || []).join(" ") || a.filename || "";
    case "open": case "unlink": case "chmod": case "chown": case "truncate": return a.path || "";
    case "rename": return `${a.oldPath || ""} → ${a.newPath || ""}`;
    case "link": return `${a.linkPath || ""} → ${a.target || ""}`;
    case "connect": case "accept": return addr(a.remote);
    case "bind": case "listen": return addr(a.local);
    case "dnsQuery": case "dnsAnswer": return `${a.name || ""} ${a.type || ""}`;
    case "mount": return `${a.source || ""} on ${a.target || ""} (${a.fstype || ""})`;
    case "ptrace": return `${a.requestName || a.request || ""} pid ${a.targetPid || ""}`;
    case "moduleLoad": return a.path || "";
    case "memfdCreate": return a.name || "";
    case "dup": return `${a.oldFdKind || ""} ${addr(a.remote)} → fd ${a.newFd || 0}`;
    default: return "";
  }
}

function evidencePanel(evd) {
  if (!evd) return null;
  const parts = [el("h2", { text: "Evidence" }), kv([["Rule", evd.rule], ["Rule kind", evd.ruleKind]])];
  if (evd.output) parts.push(el("pre", { className: "output", text: evd.output }));
  const fields = Object.entries(evd.fields || {});
  if (fields.length) {
    parts.push(el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "Field" }), el("th", { text: "Value" }))),
      el("tbody", {}, fields.map(([k, v]) => el("tr", {}, el("td", { className: "mono", text: k }), el("td", { className: "mono wrap", text: v }))))));
  }
  const events = evd.events || [];
  if (events.length) {
    parts.push(el("h3", { text: `Events (${events.length})` }));
    parts.push(el("table", { id: "evidence-events" },
      el("thead", {}, el("tr", {}, ["Time", "Syscall", "Kind", "Process", "Detail", "Result"].map((h) => el("th", { text: h })))),
      el("tbody", {}, events.map((ev) => el("tr", {},
        el("td", { text: fmtTime(ev.time) }),
        el("td", { className: "mono", text: (ev.syscall || "") + (ev.ioUring ? " (io_uring)" : "") }),
        el("td", { text: eventKind(ev) }),
        el("td", { className: "mono", text: ev.process ? `${ev.process.comm || "?"} (${ev.process.pid || "?"})` : "" }),
        el("td", { className: "mono wrap", text: eventSummary(ev) }),
        el("td", { text: ev.errno || String(ev.result || 0) }))))));
    parts.push(el("details", {}, el("summary", { text: "Events as JSON" }), el("pre", { id: "evidence-json", text: JSON.stringify(events, null, 2) })));
  }
  return el("div", { className: "panel", id: "evidence" }, parts);
}

function suppressForm(f) {
  const r = f.resource || {};
  const k8s = r.kubernetesDetails && r.kubernetesDetails.kubernetesWorkloadDetails || {};
  const ecs = r.ecsClusterDetails || {};
  const c = r.containerDetails || {};
  const criteria = [
    ["type", "Type", f.type, true],
    ["rule", "Rule", f.evidence && f.evidence.rule, false],
    ["image", "Image", c.image, Boolean(c.image)],
    ["cluster", "ECS cluster", ecs.name, false],
    ["namespace", "Namespace", k8s.namespace, false],
    ["pod", "Pod", k8s.name, false],
    ["hostname", "Host", r.hostname, !c.image],
  ].filter(([, , v]) => v);
  const name = el("input", { type: "text", name: "name", value: `Suppress ${f.type}`, size: 50 });
  const boxes = criteria.map(([key, label, value, checked]) => {
    const box = el("input", { type: "checkbox", checked, value: key });
    return { key, value, box, label: el("label", {}, box, `${label}: `, el("code", { text: value })) };
  });
  let msg = el("p");
  const form = el("form", { className: "panel suppress-form", id: "suppress-form", hidden: true },
    el("h2", { text: "Suppress similar findings" }),
    el("p", { className: "muted", text: "New findings matching every checked value are archived as they arrive. This finding is not changed." }),
    el("label", {}, "Name ", name),
    boxes.map((b) => b.label),
    el("div", {}, el("button", { type: "submit", text: "Create suppression" })),
    msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const filter = {};
    for (const b of boxes) if (b.box.checked) filter[b.key] = b.value;
    let next;
    try {
      await api("/suppressions", { method: "POST", body: JSON.stringify({ name: name.value, filter }) });
      next = el("p", { className: "ok", id: "suppress-result", text: "Suppression created." });
    } catch (err) {
      next = errorBox(err);
    }
    msg.replaceWith(next);
    msg = next;
  });
  return form;
}

async function viewFinding(id) {
  show(el("p", { className: "muted", text: "Loading…" }));
  let f;
  try {
    f = await api(`/findings/${encodeURIComponent(id)}`);
  } catch (err) {
    show(el("p", {}, el("a", { href: "#/findings", text: "← Findings" })), errorBox(err));
    return;
  }
  const svc = f.service || {};
  const rd = svc.runtimeDetails || {};
  const proc = rd.process;
  const archived = Boolean(svc.archived);
  const sform = suppressForm(f);
  const archiveBtn = el("button", {
    type: "button", id: "archive-button", text: archived ? "Unarchive" : "Archive",
    onclick: async () => {
      archiveBtn.disabled = true;
      try {
        await api(`/findings/${encodeURIComponent(f.id)}/${archived ? "unarchive" : "archive"}`, { method: "POST" });
        viewFinding(id);
      } catch (err) {
        archiveBtn.after(errorBox(err));
        archiveBtn.disabled = false;
      }
    },
  });
  const detail = el("div", { id: "finding-detail" },
    el("p", {}, el("a", { href: "#/findings", text: "← Findings" })),
    el("h1", { id: "finding-title" }, sevBadge(f), " ", f.title || f.type),
    el("div", { className: "actions" }, archiveBtn,
      el("button", { type: "button", className: "secondary", id: "suppress-button", text: "Suppress similar…", onclick: () => { sform.hidden = !sform.hidden; } }),
      archived ? el("span", { className: "badge", text: "archived" }) : null),
    sform,
    el("div", { className: "panel" }, kv([
      ["Type", el("code", { text: f.type })],
      ["Description", f.description],
      ["Count", svc.count || 1],
      ["First seen", fmtTime(svc.eventFirstSeen)],
      ["Last seen", fmtTime(svc.eventLastSeen)],
      ["Updated", fmtTime(f.updatedAt)],
      ["MITRE tactics", (f.mitreTactics || []).join(", ")],
      ["MITRE techniques", (f.mitreTechniques || []).join(", ")],
      ["Attack sequence", f.attackSequenceId ? el("a", { href: `#/finding/${encodeURIComponent(f.attackSequenceId)}`, text: f.attackSequenceId }) : ""],
      ["Findings in this sequence", (f.evidence && f.evidence.relatedFindingIds || []).length ? el("span", {},
        f.evidence.relatedFindingIds.map((id) => el("a", { href: `#/finding/${encodeURIComponent(id)}`, className: "related", text: id })).flatMap((a) => [a, " "])) : ""],
      ["Threat lists", (svc.threatIntelligenceDetails || []).map((d) => `${d.threatListName || "?"}: ${(d.threatNames || []).join(", ")}`).join("; ")],
      ["Finding id", f.id],
    ])),
    proc ? el("div", { className: "panel" }, el("h2", { text: "Process lineage" }), lineageTree(proc)) : null,
    el("div", { className: "grid2" }, processPanel("Process", proc), resourcePanel(f.resource)),
    contextPanel(rd.context),
    evidencePanel(f.evidence));
  show(detail);
}

// ---- coverage ---------------------------------------------------------------

async function viewCoverage() {
  show(el("h1", { text: "Coverage" }), el("p", { className: "muted", text: "Loading…" }));
  let body;
  try {
    body = await api("/sensors");
  } catch (err) {
    show(el("h1", { text: "Coverage" }), errorBox(err));
    return;
  }
  const rows = body.sensors.map((s) => {
    const h = s.health || {};
    const host = s.host || h.host || {};
    const skipped = h.skippedProbes || [];
    return el("tr", { dataset: { sensor: s.sensorId } },
      el("td", {}, el("span", { className: `badge ${s.healthy ? "good" : "bad"}`, text: s.healthy ? "healthy" : "unhealthy" }),
        (s.problems || []).length ? el("ul", {}, s.problems.map((p) => el("li", { className: "muted", text: p }))) : null),
      el("td", { className: "wrap" }, el("div", { text: host.hostname || "" }), el("div", { className: "muted mono", text: s.sensorId })),
      el("td", { text: s.version || h.version || "" }),
      el("td", { className: "mono wrap", text: h.kernel || host.kernel || "" }),
      el("td", { text: h.mode || "" }),
      el("td", {}, el("details", {}, el("summary", { text: `${(h.loadedProbes || []).length} loaded` }),
        el("div", { className: "mono wrap", text: (h.loadedProbes || []).join(", ") }))),
      el("td", {}, skipped.length ? el("details", {}, el("summary", { text: `${skipped.length} skipped` }),
        el("ul", {}, skipped.map((p) => el("li", { className: "mono", text: `${p.name}: ${p.reason}` })))) : "none"),
      el("td", { text: s.eventsTotal || "0" }),
      el("td", { text: `${h.lostRecords || 0} lost, ${h.spoolDroppedEvents || 0} spool-dropped` }),
      el("td", { text: h.spoolLimitBytes ? `${h.spoolBytes || 0} / ${h.spoolLimitBytes} B` : "" }),
      el("td", { title: fmtTime(s.lastContact), text: ago(s.lastContact) }));
  });
  show(el("h1", { text: "Coverage" }),
    body.sensors.length ? el("table", { id: "sensors-table" },
      el("thead", {}, el("tr", {}, ["Health", "Host / sensor", "Version", "Kernel", "Mode", "Probes", "Skipped", "Events", "Drops", "Spool", "Last contact"].map((t) => el("th", { text: t })))),
      el("tbody", {}, rows)) : el("p", { className: "muted", text: "No sensor has connected yet." }));
}

// ---- suppressions -----------------------------------------------------------

function filterText(f = {}) {
  return Object.entries(f).filter(([, v]) => v !== "" && v !== 0 && v !== null).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ");
}

async function viewSuppressions() {
  let body;
  try {
    body = await api("/suppressions");
  } catch (err) {
    show(el("h1", { text: "Suppressions" }), errorBox(err));
    return;
  }
  const rows = body.suppressions.map((s) => {
    const del = el("button", { type: "button", className: "danger", text: "Delete" });
    let armed = false;
    del.addEventListener("click", async () => {
      // A second click confirms; the page uses no dialogs.
      if (!armed) { armed = true; del.textContent = "Click again to delete"; return; }
      try { await api(`/suppressions/${encodeURIComponent(s.id)}`, { method: "DELETE" }); viewSuppressions(); } catch (err) { del.after(errorBox(err)); }
    });
    return el("tr", {}, el("td", { text: s.name }), el("td", { className: "mono wrap", text: filterText(s.filter) }),
      el("td", { text: s.description || "" }), el("td", { text: fmtTime(s.createdAt) }), el("td", {}, del));
  });
  show(el("h1", { text: "Suppressions" }),
    el("p", { className: "muted", text: "New findings that match a suppression are archived as they arrive. Create one from a finding's page." }),
    body.suppressions.length ? el("table", { id: "suppressions-table" },
      el("thead", {}, el("tr", {}, ["Name", "Filter", "Description", "Created", ""].map((t) => el("th", { text: t })))),
      el("tbody", {}, rows)) : el("p", { className: "muted", text: "No suppressions." }));
}

// ---- rules ------------------------------------------------------------------

async function viewRules() {
  let rules, errs;
  try {
    [rules, errs] = await Promise.all([api("/rules"), api("/rules/errors")]);
  } catch (err) {
    show(el("h1", { text: "Rules" }), errorBox(err));
    return;
  }
  const parts = [el("h1", { text: `Rules (${rules.rules.length})` })];
  if (errs.errors.length) {
    parts.push(el("div", { className: "panel" }, el("h2", { className: "error", text: "Rejected rule files (the last good set stays in force)" }),
      el("ul", {}, errs.errors.map((e) => el("li", { className: "mono", text: `${e.file}${e.line ? ":" + e.line : ""}: ${e.reason}` })))));
  }
  parts.push(el("table", {}, el("thead", {}, el("tr", {}, ["Rule", "Kind", "Finding type", "Severity", "MITRE", "Enabled", "File"].map((t) => el("th", { text: t })))),
    el("tbody", {}, rules.rules.map((r) => el("tr", {},
      el("td", {}, el("div", { text: r.name }), el("div", { className: "muted", text: r.description || "" })),
      el("td", { text: r.kind }), el("td", { className: "mono", text: r.findingType || "" }),
      el("td", { text: r.severity ? r.severity.toFixed(1) : r.priority || "" }),
      el("td", { className: "mono", text: [...(r.mitreTactics || []), ...(r.mitreTechniques || [])].join(" ") }),
      el("td", { text: r.enabled ? "yes" : "no" }), el("td", { className: "mono wrap", text: r.file || "" }))))));
  show(...parts);
}

// ---- routing ----------------------------------------------------------------

function route() {
  clearInterval(refreshTimer);
  refreshTimer = null;
  takeTokenFromURL();
  if (!token()) {
    askToken();
    return;
  }
  const hash = location.hash || "#/findings";
  const [path, query] = hash.slice(1).split("?");
  const view = path.split("/")[1] || "findings";
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.view === view || (view === "finding" && a.dataset.view === "findings"));
  if (path.startsWith("/finding/")) viewFinding(decodeURIComponent(path.slice("/finding/".length)));
  else if (view === "coverage") viewCoverage();
  else if (view === "suppressions") viewSuppressions();
  else if (view === "rules") viewRules();
  else viewFindings(new URLSearchParams(query || ""));
}

document.getElementById("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  askToken();
});
window.addEventListener("hashchange", route);
route();
