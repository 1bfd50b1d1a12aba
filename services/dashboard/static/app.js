// PainCare ops dashboard: signs in with an admin token (kept in sessionStorage), polls
// the JSON API every 2.5 s and draws its charts as inline SVG. No external assets.
"use strict";

const POLL_MS = 2500;
const HISTORY = 60;
const throughputHistory = [];
let timer = null;

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const waited = (minutes) => (minutes < 60 ? `${minutes} min`
  : minutes < 2880 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${Math.floor(minutes / 1440)} days`);
const label = (s) => String(s).replace(/_/g, " ");
const ORDER = ["received", "triaged", "accepted", "scheduled", "in_care", "on_hold", "discharged",
  "rejected", "cancelled", "urgent", "soon", "routine", "untriaged", "pain_medicine",
  "physical_therapy", "psychology", "acupuncture", "email", "sms", "in_app"];
// The API's objects come with sorted keys; show them in the clinic's own order.
const ordered = (obj) => Object.entries(obj).sort(([a], [b]) => {
  const [i, j] = [ORDER.indexOf(a), ORDER.indexOf(b)];
  return (i < 0 ? 99 : i) - (j < 0 ? 99 : j) || a.localeCompare(b);
});
const pct = (r) => (r === null || r === undefined ? "–" : `${Math.round(r * 1000) / 10}%`);

function token() { return sessionStorage.getItem("paincare.token"); }

function takeTokenFromUrl() {
  const params = new URLSearchParams(location.search);
  if (params.has("token")) {
    sessionStorage.setItem("paincare.token", params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : ""));
  }
}

async function call(method, path) {
  const resp = await fetch(path, { method, headers: { Authorization: `Bearer ${token()}` } });
  if (resp.status === 401 || resp.status === 403) {
    const body = await resp.json().catch(() => ({}));
    const err = new Error(body.detail || resp.statusText);
    err.auth = true;
    throw err;
  }
  if (!resp.ok) throw new Error(`${path}: ${resp.status}`);
  return resp.json();
}

function showSignIn(message) {
  clearTimeout(timer);
  $("board").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("status").textContent = "Signed out";
}

// ------------------------------------------------------------------ SVG charts
function hbars(items, opts = {}) {
  // Horizontal bars: [{label, value, cls, text}] scaled to opts.max or the largest value.
  if (!items.length) return '<div class="empty">Nothing yet</div>';
  const w = 360, row = 20, left = 120, right = 48;
  const max = opts.max ?? Math.max(1, ...items.map((i) => i.value || 0));
  const h = items.length * row + 4;
  let out = `<svg viewBox="0 0 ${w} ${h}" role="img">`;
  items.forEach((it, n) => {
    const y = n * row + 2;
    const len = Math.max(0, Math.min(1, (it.value || 0) / max)) * (w - left - right);
    out += `<text x="${left - 6}" y="${y + 13}" text-anchor="end">${esc(label(it.label))}</text>`;
    out += `<rect class="bar track" x="${left}" y="${y + 2}" width="${w - left - right}" height="${row - 6}" rx="2"/>`;
    out += `<rect class="bar ${it.cls || ""}" x="${left}" y="${y + 2}" width="${len.toFixed(1)}" height="${row - 6}" rx="2"/>`;
    out += `<text x="${w - right + 6}" y="${y + 13}">${esc(it.text ?? it.value)}</text>`;
  });
  return out + "</svg>";
}

function stacked(items) {
  // Two-part bars (sent/failed): [{label, a, b}].
  const w = 360, row = 20, left = 120, right = 60;
  const max = Math.max(1, ...items.map((i) => i.a + i.b));
  const scale = (v) => (v / max) * (w - left - right);
  let out = `<svg viewBox="0 0 ${w} ${items.length * row + 4}" role="img">`;
  items.forEach((it, n) => {
    const y = n * row + 2;
    out += `<text x="${left - 6}" y="${y + 13}" text-anchor="end">${esc(label(it.label))}</text>`;
    out += `<rect class="bar ok" x="${left}" y="${y + 2}" width="${scale(it.a).toFixed(1)}" height="${row - 6}"/>`;
    out += `<rect class="bar bad" x="${(left + scale(it.a)).toFixed(1)}" y="${y + 2}" width="${scale(it.b).toFixed(1)}" height="${row - 6}"/>`;
    out += `<text x="${w - right + 6}" y="${y + 13}">${it.a} / ${it.b}</text>`;
  });
  return out + "</svg>";
}

function sparkline(values) {
  const w = 360, h = 90, pad = 4;
  const max = Math.max(1, ...values);
  if (values.length < 2) return '<div class="empty">Sampling…</div>';
  const x = (i) => pad + (i / (values.length - 1)) * (w - 2 * pad);
  const y = (v) => h - 14 - (v / max) * (h - 30);
  const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const last = values[values.length - 1];
  return `<svg viewBox="0 0 ${w} ${h}" role="img">
    <polygon class="area" points="${x(0)},${h - 14} ${pts} ${x(values.length - 1).toFixed(1)},${h - 14}"/>
    <polyline class="line" points="${pts}"/>
    <text x="${pad}" y="${h - 2}" class="muted">last ${values.length} samples</text>
    <text x="${w - pad}" y="12" text-anchor="end">${last.toFixed(1)} msg/s (max ${max.toFixed(1)})</text>
  </svg>`;
}

// ------------------------------------------------------------------ rendering
function renderClinic(c) {
  const r = c.referrals;
  const open = Object.values(r.open_by_priority).reduce((a, b) => a + b, 0);
  $("kpi-referrals-open").textContent = open;
  $("kpi-past-target").textContent = r.past_target;
  // Referrals about to miss their target (referral.breach_risk): ids, dates, reasons only.
  const risks = c.breach_risk;
  $("kpi-breach-risk").textContent = risks.count;
  const why = { first_visit_after_due: "first visit after the due date",
    unscheduled_near_due: "not scheduled, due soon" };
  $("breach-risks").innerHTML = risks.referrals.length ? `<h3>Referrals at breach risk</h3>
    <table><tr><th>Referral</th><th>Due by</th><th>Why</th><th>Priority</th>
      <th>First visit (UTC)</th></tr>
    ${risks.referrals.map((b) => `<tr class="breach"><td><code>${esc(b.referral_id)}</code></td>
      <td>${esc(b.due_by)}</td><td>${esc(why[b.reason] || b.reason)}</td>
      <td>${esc(b.priority || "–")}</td>
      <td>${b.first_visit_at ? esc(b.first_visit_at.slice(0, 16).replace("T", " ")) : "–"}</td>
      </tr>`).join("")}</table>` : "";
  // Safety alerts (notes' patient.safety_alert*): counts and ages only, never a patient.
  const sa = c.safety_alerts;
  $("kpi-safety-open").textContent = sa.open;
  $("kpi-safety-oldest").textContent = sa.oldest_open_minutes === null ? "–" : waited(sa.oldest_open_minutes);
  $("kpi-alerts-box").className = `kpi ${sa.open ? "alarm" : ""}`;
  $("kpi-alert-age-box").className = `kpi ${sa.open_escalated ? "alarm" : sa.open ? "warn" : ""}`;
  $("safety-note").textContent = `Safety alerts: ${sa.open} waiting for acknowledgement` +
    `${sa.open_escalated ? ` (${sa.open_escalated} escalated to the clinical lead)` : ""}, ` +
    `${sa.acknowledged_not_closed} acknowledged and not yet closed, ${sa.closed} closed.` +
    `${sa.oldest_open_raised_at ? ` Oldest waiting since ${sa.oldest_open_raised_at.slice(0, 16).replace("T", " ")} UTC.` : ""}`;
  // Recent break-glass use (patient.break_glass): who, which patient id, when; no reason.
  const glass = c.break_glass || [];
  $("break-glass").innerHTML = glass.length ? `<h3>Recent break-glass use</h3>
    <table><tr><th>Opened (UTC)</th><th>By</th><th>Patient</th><th>Until (UTC)</th></tr>
    ${glass.map((b) => `<tr><td>${esc(b.opened_at.slice(0, 16).replace("T", " "))}</td>
      <td><code>${esc(b.by)}</code>${b.discipline ? ` (${esc(b.discipline.replace("_", " "))})` : ""}</td>
      <td><code>${esc(b.patient_id)}</code></td>
      <td>${esc(b.expires_at.slice(0, 16).replace("T", " "))}</td></tr>`).join("")}</table>` : "";
  $("kpi-median-days").textContent = r.median_days_to_first_visit ?? "–";
  $("kpi-appointments-today").textContent = c.appointments_today.total;
  $("kpi-no-show").textContent = pct(c.no_show.rate);
  $("kpi-notifications").textContent = `${c.notifications.sent} / ${c.notifications.failed}`;
  $("chart-status").innerHTML = hbars(ordered(r.by_status)
    .map(([k, v]) => ({ label: k, value: v })));
  const prioCls = { urgent: "bad", soon: "warn", routine: "teal", untriaged: "" };
  $("chart-priority").innerHTML = hbars(ordered(r.open_by_priority)
    .map(([k, v]) => ({ label: k, value: v, cls: prioCls[k] })));
  $("chart-today").innerHTML = hbars(ordered(c.appointments_today.by_discipline)
    .map(([k, v]) => ({ label: k, value: v, cls: "teal" })));
  $("week-start").textContent = `week of ${c.utilisation.week_start}`;
  // Capacity is each provider's template minus leave and closures (provider.capacity_changed);
  // a provider whose capacity has not arrived counts the fallback hours, marked with *.
  const u = c.utilisation;
  $("chart-utilisation").innerHTML = hbars(u.by_discipline.map((d) => ({
    label: d.discipline, value: d.utilisation || 0,
    text: pct(d.utilisation) + (d.capacity_unknown ? "*" : ""),
    cls: (d.utilisation || 0) > 0.9 ? "bad" : "ok" })), { max: 1 });
  $("chart-notifications").innerHTML = stacked(ordered(c.notifications.by_channel)
    .map(([k, v]) => ({ label: k, a: v.sent, b: v.failed })));
  const provs = u.by_provider;
  $("table-providers").innerHTML = provs.length ? hbars(provs.map((p) => ({
    label: p.name, value: p.utilisation || 0,
    text: pct(p.utilisation) + (p.capacity_known ? "" : "*"),
    cls: p.capacity_known ? "teal" : "warn" })),
  { max: 1 }) : '<div class="empty">No providers yet</div>';
  const unknown = provs.filter((p) => !p.capacity_known).map((p) => p.name);
  $("capacity-note").textContent = unknown.length
    ? `* capacity unknown for ${unknown.join(", ")}: counted at ${u.fallback_weekly_hours} h a `
      + "week until scheduling publishes their template"
    : "Capacity: each provider's weekly template minus leave and closures";
  const fails = c.notifications.latest_failures;
  $("failures").innerHTML = fails.length ? `<h3>Latest failed notifications</h3><table>
    <tr><th>When (UTC)</th><th>Event</th><th>Channel</th><th>Reason</th></tr>
    ${fails.map((f) => `<tr><td>${esc(f.at.slice(0, 19).replace("T", " "))}</td>
      <td>${esc(f.event_type)}</td><td>${esc(f.channel)}</td>
      <td class="reason">${esc(f.reason)}</td></tr>`).join("")}</table>` : "";
  $("generation").textContent = c.read_model_generation;
}

function renderPlatform(p) {
  const k = p.kafka;
  const dl = k.dead_letters || {};
  $("services").innerHTML = p.services.map((s) => {
    const state = s.ready ? "ready" : s.alive ? "alive" : "down";
    const fails = Object.entries(s.failures || {}).map(([n, why]) => `${n}: ${why}`).join("; ");
    return `<div class="svc ${state}" data-service="${esc(s.service)}" title="${esc(fails)}">
      <h4>${esc(s.service)}</h4><dl>
      <dt>state</dt><dd class="state">${state}</dd>
      <dt>outbox backlog</dt><dd>${s.outbox_backlog ?? "–"}</dd>
      <dt>consumer lag</dt><dd>${(k.lag_by_service || {})[s.service] ?? "–"}</dd>
      <dt>dead letters</dt><dd>${dl[s.service] ? dl[s.service].count : "–"}</dd></dl></div>`;
  }).join("");
  const total = k.topics.reduce((a, t) => a + (t.per_second || 0), 0);
  if (k.topics.some((t) => t.per_second !== null)) {
    throughputHistory.push(total);
    if (throughputHistory.length > HISTORY) throughputHistory.shift();
  }
  $("chart-throughput").innerHTML = k.reachable ? sparkline(throughputHistory)
    : `<div class="error">Kafka unreachable ${esc(k.error || "")}</div>`;
  $("chart-topics").innerHTML = hbars(k.topics.filter((t) => !t.topic.endsWith(".dlq"))
    .map((t) => ({ label: t.topic, value: t.messages,
      text: `${t.messages}${t.per_second ? ` · ${t.per_second}/s` : ""}` })));
  $("chart-lag").innerHTML = hbars(Object.entries(k.lag_by_service || {})
    .map(([s, v]) => ({ label: s, value: v, cls: v > 100 ? "bad" : v > 0 ? "warn" : "ok" })));
  $("chart-outbox").innerHTML = hbars(p.services.map((s) => ({
    label: s.service, value: s.outbox_backlog || 0, text: s.outbox_backlog ?? "–",
    cls: s.outbox_backlog ? "warn" : "ok" })));
  const rows = Object.entries(dl);
  $("dead-letters").innerHTML = `<table><tr><th>Service</th><th class="num">Dead letters</th>
    <th class="num">Not replayed</th><th>Latest reasons</th><th></th></tr>
    ${rows.map(([svc, d]) => `<tr data-dlq="${esc(svc)}"><td>${esc(svc)}</td>
      <td class="num">${d.count}</td><td class="num">${d.waiting ?? "–"}</td>
      <td>${(d.latest || []).map((l) => `<div class="reason">${esc(l.event_type || "?")}
        from ${esc(l.source_topic)}: ${esc(l.reason)}</div>`).join("")}</td>
      <td><button class="replay" data-service="${esc(svc)}" ${d.waiting ? "" : "disabled"}>
        Replay</button></td></tr>`).join("")}</table>`;
}

async function refresh() {
  try {
    const [clinic, platform] = await Promise.all([call("GET", "/api/clinic"),
      call("GET", "/api/platform")]);
    $("signin").hidden = true;
    $("board").hidden = false;
    $("signout").hidden = false;
    renderClinic(clinic);
    renderPlatform(platform);
    $("status").textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
    $("status").className = "status";
  } catch (err) {
    if (err.auth) { showSignIn(err.message); return; }
    $("status").textContent = `Stale: ${err.message}`;
    $("status").className = "status stale";
  }
  timer = setTimeout(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromUrl();
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem("paincare.token", $("token-input").value.trim());
    refresh();
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem("paincare.token");
    showSignIn("");
  });
  $("dead-letters").addEventListener("click", async (e) => {
    const btn = e.target.closest("button.replay");
    if (!btn) return;
    btn.disabled = true;
    $("notice").textContent = `Replaying ${btn.dataset.service}'s dead letters…`;
    try {
      const out = await call("POST", `/api/dead-letters/${btn.dataset.service}/replay`);
      $("notice").textContent = `Replayed ${out.replayed} from ${out.service}`;
    } catch (err) { $("notice").textContent = `Replay failed: ${err.message}`; }
  });
  $("rebuild").addEventListener("click", async () => {
    if (!confirm("Empty the read model and rebuild it from the beginning of every topic?")) return;
    try {
      const out = await call("POST", "/api/read-model/rebuild");
      $("notice").textContent = `Rebuilding the read model (generation ${out.generation})`;
    } catch (err) { $("notice").textContent = `Rebuild failed: ${err.message}`; }
  });
  if (token()) refresh(); else showSignIn("");
});
