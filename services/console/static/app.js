// PainCare clinic console: the pages schedulers and specialists use. Plain JS module, no
// framework and no external asset. Every call goes to this origin's /api/<service>/...
// with the signed-in person's token (sessionStorage); the services decide what they may do.
"use strict";

const DISCIPLINES = ["pain_medicine", "physical_therapy", "psychology", "acupuncture"];
const KIND_SECTIONS = {
  intake_assessment: ["presenting_complaint", "history", "examination", "impression", "plan"],
  progress: ["subjective", "objective", "assessment", "plan"],
  treatment_record: ["treatment", "response", "plan"],
  discharge_summary: ["summary", "outcome", "recommendations"],
};
const DAY_START = 8, DAY_END = 18, HOUR_PX = 56;

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const esc = (v) => String(v ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const words = (s) => String(s ?? "").replace(/_/g, " ");
const title = (s) => { const w = words(s); return w.charAt(0).toUpperCase() + w.slice(1); };
const conditionText = (c) => (c === "crps" ? "CRPS" : title(c));  // an acronym, not a word

let config = { kind: "local", clinic_timezone: "Europe/London" };
let me = null;
let names = new Map();  // provider id -> name, for the people reading notes

// ------------------------------------------------------------------ time, in the clinic's zone
const fmt = (opts) => new Intl.DateTimeFormat("en-GB", { timeZone: config.clinic_timezone, ...opts });
const dateText = (iso) => iso ? fmt({ weekday: "short", day: "numeric", month: "short", year: "numeric" }).format(new Date(iso)) : "–";
const timeText = (iso) => fmt({ hour: "2-digit", minute: "2-digit", hour12: false }).format(new Date(iso));
const dateTimeText = (iso) => iso ? `${dateText(iso)} ${timeText(iso)}` : "–";
function localParts(iso) {
  // {day: "2026-11-25", minutes: minutes after local midnight, weekday: 0 = Monday}
  const parts = Object.fromEntries(fmt({ year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hour12: false, weekday: "short" })
    .formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  const wd = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].indexOf(parts.weekday);
  return { day: `${parts.year}-${parts.month}-${parts.day}`,
    minutes: (Number(parts.hour) % 24) * 60 + Number(parts.minute), weekday: wd };
}
function addDays(day, n) {
  const d = new Date(`${day}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}
const mondayOf = (day) => addDays(day, -((new Date(`${day}T12:00:00Z`).getUTCDay() + 6) % 7));
const todayLocal = () => localParts(new Date().toISOString()).day;

// ------------------------------------------------------------------ the token and the API
const TOKEN_KEY = "paincare.console.token";
const WHO_KEY = "paincare.console.who";      // who a provider's token names, as the services map it
const PKCE_KEY = "paincare.console.pkce";    // the code flow's verifier and state, until the code is back
const token = () => sessionStorage.getItem(TOKEN_KEY);

function decode(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch { return null; }
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `the service answered ${status}`);
    this.status = status;
    this.body = body;
    this.fields = body.errors || {};
  }
}

async function call(method, service, path, body, extraHeaders = {}) {
  // {status, data}: for the callers that need to tell a new thing (201) from a repeat (200).
  const headers = { ...extraHeaders, Authorization: `Bearer ${token()}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(`/api/${service}${path}`, { method, headers,
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: "The console cannot be reached. Check the connection and try again." });
  }
  const data = resp.status === 204 ? {} : await resp.json().catch(() => ({}));
  if (resp.status === 401) { signOut("Your sign-in has expired or is not valid; please sign in again."); }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return { status: resp.status, data };
}

const api = async (method, service, path, body) => (await call(method, service, path, body)).data;

function newKey() {
  // One Idempotency-Key per form: a double click or a resend after a lost answer folds
  // into the one thing it meant. randomUUID needs a secure context; the fallback does not.
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------ notices and small bits
let carried = null;  // a notice to show on the next page (a hash change clears the notice)
const noticeAfterMove = (message, kind = "ok") => { carried = [message, kind]; };

function notice(message, kind = "error") {
  const el = $("#notice");
  el.textContent = message || "";
  el.className = `notice ${kind === "ok" ? "ok" : ""}`;
  el.hidden = !message;
}

function explain(err) {
  // A service's problem in words: its detail, then each field's message.
  if (!(err instanceof ApiError)) return String(err.message || err);
  const said = (text) => err.message.includes(text);
  const extra = Object.entries(err.fields || {})
    .filter(([k, v]) => k !== "changes" && ![].concat(v).every(said))
    .map(([k, v]) => `${words(k)}: ${[].concat(v).join("; ")}`);
  const changes = [].concat(err.fields?.changes || []).filter((c) => !said(c));
  const text = [err.message, ...extra, ...changes].filter(Boolean).join(" — ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function badge(text, cls = "") { return `<span class="badge ${esc(cls || text)}">${esc(words(text))}</span>`; }

async function busy(button, work) {
  button.disabled = true;
  try { return await work(); } finally { button.disabled = false; }
}

function applyStyles(root) {
  // The page's CSP forbids style attributes; layout (a visit's place on a calendar) is
  // set through the CSSOM instead, which it allows.
  $$("[data-style]", root).forEach((el) => { el.style.cssText = el.dataset.style; });
}

class Stale extends Error {}

function setMain(here, html, heading) {
  // A page whose answers arrive after the person has gone elsewhere draws nothing.
  if (location.hash !== here) throw new Stale();
  const main = $("#main");
  main.innerHTML = html;
  applyStyles(main);
  document.title = `PainCare · ${heading || "Clinic console"}`;
}

// ------------------------------------------------------------------ sign-in
function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(WHO_KEY);
  me = null;
  catalogue = null;
  renderChrome();
  location.hash = "#/signin";
  if (message) notice(message);
}

// `who` is the console's reading of a provider's token (its roles live elsewhere in the
// claims); a local token names its role itself.
function acceptToken(jwt, who) {
  const claims = decode(jwt);
  if (!claims) return false;
  const person = who ? { ...who, exp: claims.exp } : claims;
  if (!person.role) return false;
  sessionStorage.setItem(TOKEN_KEY, jwt);
  if (who) sessionStorage.setItem(WHO_KEY, JSON.stringify(person)); else sessionStorage.removeItem(WHO_KEY);
  me = person;
  return true;
}

function currentPerson(jwt) {
  const claims = decode(jwt);
  if (!claims) return null;
  try {
    const who = JSON.parse(sessionStorage.getItem(WHO_KEY) || "null");
    if (who && who.sub === claims.sub) return { ...who, exp: claims.exp };
  } catch { /* a local token */ }
  return claims;
}

// Signing out of a provider's session ends it at the provider too (a shared clinic
// workstation must not sign the next person in as the last one). The provider asks the
// person to confirm, then sends them back here; no token goes in that URL.
function signOutEverywhere() {
  const fromProvider = !!sessionStorage.getItem(WHO_KEY);
  signOut();
  const end = config.oidc && config.oidc.end_session_endpoint;
  if (fromProvider && end) {
    const query = new URLSearchParams({ client_id: config.oidc.client_id, post_logout_redirect_uri: redirectUri() });
    location.assign(`${end}?${query}`);
  }
}

// ------------------------------------------------------------------ the code flow with PKCE
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const redirectUri = () => `${location.origin}/`;

async function signInWithProvider() {
  const oidc = config.oidc;
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(48)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(24)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const query = new URLSearchParams({
    response_type: "code", client_id: oidc.client_id, redirect_uri: redirectUri(),
    scope: oidc.scope || "openid", state, code_challenge: challenge, code_challenge_method: "S256",
  });
  location.assign(`${oidc.authorization_endpoint}?${query}`);
}

// The provider sends the person back to /?code=...&state=... (the query, never a token);
// the console exchanges the code with the verifier made before leaving.
async function finishProviderSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return;
  history.replaceState(null, "", "/#/signin");
  let pending = null;
  try { pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null"); } catch { /* none */ }
  sessionStorage.removeItem(PKCE_KEY);
  if (params.has("error")) {
    carried = [`The identity provider did not sign you in: ${params.get("error_description") || params.get("error")}`];
    return;
  }
  if (!pending || pending.state !== params.get("state")) {
    carried = ["That sign-in was not started here (its state does not match); please sign in again."];
    return;
  }
  const resp = await fetch("/auth/oidc/token", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code: params.get("code"), code_verifier: pending.verifier, redirect_uri: redirectUri() }) });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok || !acceptToken(body.token, body.who)) {
    carried = [body.detail || "Sign-in failed."];
    return;
  }
  history.replaceState(null, "", `/${home()}`);
}

function home() {
  if (!me) return "#/signin";
  if (me.role === "specialist") return me.discipline === "pain_medicine" ? "#/queue" : "#/diary";
  return "#/queue";
}

async function pageSignIn() {
  const here = location.hash;
  renderChrome();
  const providerCard = config.oidc
    ? `<div class="card"><p>Sign in with your clinic account.</p><div class="actions">
        <button type="button" id="oidc">Sign in with the clinic's identity provider</button></div></div>`
    : config.kind === "oidc" ? `<p class="notice">The clinic's identity provider does not answer; try again shortly.</p>` : "";
  const wireProvider = () => $("#oidc")?.addEventListener("click", (e) => busy(e.currentTarget, signInWithProvider));
  if (config.kind === "oidc") {
    setMain(here, `<h2>Sign in</h2>${providerCard}`, "Sign in");
    wireProvider();
    $("#oidc")?.focus();
    return;
  }
  if (config.kind === "token") {
    setMain(here, `<h2>Sign in</h2><form class="card" id="paste"><label for="jwt">Bearer token</label>
      <textarea id="jwt" required></textarea><div class="actions"><button>Sign in</button></div></form>`, "Sign in");
    $("#paste").addEventListener("submit", (e) => {
      e.preventDefault();
      if (acceptToken($("#jwt").value.trim())) go(home()); else notice("That is not a token.");
    });
    return;
  }
  setMain(here, `<h2>Sign in</h2>${providerCard}<p class="muted">Local sign-in (this machine's demo users, development only).
    In a clinic, the clinic's identity provider takes its place (services/console/identity.py).</p>
    <div id="users" class="users" role="list"><p class="muted">Loading users…</p></div>`, "Sign in");
  wireProvider();
  let users = [];
  try {
    const resp = await fetch("/auth/users");
    users = await resp.json();
  } catch { notice("The console could not list its users."); return; }
  const who = (u) => u.role === "specialist" ? `${title(u.discipline)}` : title(u.role);
  $("#users").innerHTML = users.map((u) => `<button type="button" role="listitem" class="disc ${esc(u.discipline || "")}"
      data-user="${esc(u.id)}" data-role="${esc(u.role)}" data-discipline="${esc(u.discipline || "")}">
      ${esc(u.name)}<small>${esc(who(u))}</small></button>`).join("");
  $$("#users button").forEach((b) => b.addEventListener("click", () => busy(b, async () => {
    const resp = await fetch("/auth/local", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: b.dataset.user }) });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok || !acceptToken(body.token)) { notice(body.detail || "Sign-in failed."); return; }
    notice("");
    go(home());
  })));
  $("#users button")?.focus();
}

// ------------------------------------------------------------------ chrome and routing
function renderChrome() {
  const nav = $("#nav");
  $("#signout").hidden = !me;
  $("#who").textContent = me ? `${me.name || me.sub} · ${me.role === "specialist" ? words(me.discipline) : me.role}` : "";
  if (!me) { nav.innerHTML = ""; return; }
  const links = [];
  if (me.role !== "specialist" || me.discipline === "pain_medicine") links.push(["#/queue", "Queue"]);
  links.push(["#/diary", me.role === "specialist" ? "My diary" : "Diaries"]);
  if (me.role !== "specialist") links.push(["#/waitlist", "Waitlist"]);
  if (canRecord()) links.push(["#/intake", "New referral"]);
  if (me.role === "admin") links.push(["#/rota", "Duty rota"]);
  nav.innerHTML = links.map(([href, text]) => `<a href="${href}">${text}</a>`).join("");
  const current = location.hash.split("/").slice(0, 2).join("/");
  $$("a", nav).forEach((a) => { if (a.getAttribute("href") === current) a.setAttribute("aria-current", "page"); });
}

function go(hash) { if (location.hash === hash) route(); else location.hash = hash; }

const ROUTES = [
  [/^#\/signin$/, pageSignIn],
  [/^#\/queue(?:\/(at-risk))?$/, pageQueue],
  [/^#\/rota$/, pageRota],
  [/^#\/intake$/, pageIntake],
  [/^#\/referral\/([\w-]+)$/, pageReferral],
  [/^#\/itinerary\/([\w-]+)$/, pageItinerary],
  [/^#\/diary(?:\/(\d{4}-\d{2}-\d{2}))?$/, pageDiary],
  [/^#\/waitlist$/, pageWaitlist],
  [/^#\/patient\/([\w.:-]+)$/, pagePatient],
];

let generation = 0;
async function route() {
  const mine = ++generation;
  const here = location.hash;
  const hash = here || "#/";
  const tokenNow = token();
  me = tokenNow ? currentPerson(tokenNow) : null;
  if (me && me.exp && me.exp * 1000 < Date.now()) { signOut("Your sign-in has expired; please sign in again."); return; }
  if (!me && hash !== "#/signin") { location.hash = "#/signin"; return; }
  if (hash === "#/" || hash === "#") { location.hash = home(); return; }
  renderChrome();
  for (const [pattern, page] of ROUTES) {
    const m = hash.match(pattern);
    if (m) {
      try {
        await page(...m.slice(1));
      } catch (err) {
        if (err instanceof Stale) return;
        if (mine === generation) setMain(here, `<h2>Could not show this page</h2><p class="notice">${esc(explain(err))}</p>`);
      }
      if (mine === generation) $("#main").focus({ preventScroll: true });
      return;
    }
  }
  setMain(here, "<h2>No such page</h2>");
}

// ------------------------------------------------------------------ scheduler: the queue
async function pageQueue(atRisk) {
  const here = location.hash;
  setMain(here, "<div id='home-safety'></div><h2>Triage and booking queue</h2><p class='muted'>Loading…</p>", "Queue");
  const only = atRisk ? "&breach_risk=true" : "";
  const [queue, accepted] = await Promise.all([
    api("GET", "referrals", `/referrals/queue?limit=200${only}`),
    api("GET", "referrals", `/referrals?status=accepted&limit=200${only}`),
  ]);
  const rows = [...queue.items.map((i) => ({ ...i.referral, next: i.next_action })),
    ...accepted.items.map((r) => ({ ...r, next: "book" }))];
  const rank = { urgent: 0, soon: 1, routine: 2 };
  const prio = (r) => r.priority || r.urgency_requested || "routine";
  rows.sort((a, b) => (rank[prio(a)] - rank[prio(b)]) || (b.waiting_days - a.waiting_days));
  const late = rows.filter((r) => r.overdue).length;
  const risky = rows.filter((r) => r.at_breach_risk).length;
  const safety = $("#home-safety")?.innerHTML || "";  // keep the banner drawn meanwhile
  setMain(here, `<div id="home-safety">${safety}</div><h2>Triage and booking queue</h2>
    <p class="muted">${rows.length} referrals ${atRisk ? "at breach risk" : "waiting"}: urgent first, then the longest waiting.
      ${late ? `<span class="badge late">${late} past target</span>` : ""}
      ${risky ? `<span class="badge breach">${risky} at breach risk</span>` : ""}</p>
    <p><label class="inline-check"><input type="checkbox" id="only-at-risk" ${atRisk ? "checked" : ""}> Only referrals at breach risk
      (likely to miss their due date)</label></p>
    <div class="table-wrap"><table id="queue"><thead><tr><th>Priority</th><th>Patient</th><th>Condition</th>
      <th class="hide-narrow">Referrer</th><th>Waiting</th><th>Target date</th><th>Next step</th></tr></thead><tbody>
    ${rows.map((r) => `<tr class="${r.overdue ? "past-target" : ""} ${r.at_breach_risk ? "at-breach-risk" : ""}" data-referral="${esc(r.id)}">
      <td>${badge(prio(r))}${r.priority ? "" : ' <span class="small muted">(requested)</span>'}</td>
      <td><a href="#/referral/${esc(r.id)}">${esc(r.patient.name)}</a></td>
      <td>${esc(conditionText(r.condition))}</td>
      <td class="hide-narrow">${esc(r.referrer.name)}<br><span class="small muted">${esc(r.referrer.organisation)}</span></td>
      <td>${r.waiting_days} days</td>
      <td>${esc(r.due_by ? dateText(`${r.due_by}T12:00:00Z`) : "–")} ${r.overdue ? badge("past target", "late") : ""}
        ${r.at_breach_risk ? `<span class="badge breach" title="${esc(BREACH_TEXT[r.breach_risk?.reason] || "")}">breach risk</span>` : ""}</td>
      <td>${esc(title(r.next))} ${badge(r.status, "")}</td></tr>`).join("")
      || `<tr><td colspan="7" class="muted">${atRisk ? "No referral is at breach risk." : "Nothing waits."}</td></tr>`}
    </tbody></table></div>`, "Queue");
  $("#only-at-risk").addEventListener("change", (e) => go(e.target.checked ? "#/queue/at-risk" : "#/queue"));
  await homeSafety(here);
}

const BREACH_TEXT = {
  first_visit_after_due: "the first visit of its itinerary falls after the due date",
  unscheduled_near_due: "not yet scheduled and due within days (or already past)",
};

// ------------------------------------------------------------------ scheduler: a new referral
const CONDITIONS = ["diabetic_neuropathy", "post_herpetic_neuralgia", "chemotherapy_induced_neuropathy",
  "crps", "multiple_sclerosis", "radiculopathy", "trigeminal_neuralgia", "other"];
const CONDITION_NAMES = { crps: "CRPS (complex regional pain syndrome)", other: "Other (describe it)" };
const MEDICATION_ROWS = 3, MEDICATION_MAX = 30;
const canRecord = () => me && me.role === "scheduler";

function medicationRow(i) {
  const cell = (part, label, attrs = "") => `<td><div class="field">
    <input id="med-${i}-${part}" name="med.${i}.${part}" aria-label="${esc(label)} ${i + 1}"
      aria-describedby="e-med-${i}-${part}" ${attrs}>
    <p class="error" id="e-med-${i}-${part}" data-error-slot="${part}"></p></div></td>`;
  return `<tr data-med="${i}">${cell("name", "Medicine")}${cell("dose", "Dose")}${cell("frequency", "How often")}</tr>`;
}

function intakeForm() {
  const select = (id, name, options, chosen) => `<select id="${id}" name="${name}" aria-describedby="e-${id}">
    ${options.map(([v, text]) => `<option value="${esc(v)}" ${v === chosen ? "selected" : ""}>${esc(text)}</option>`).join("")}</select>`;
  return `<form id="intake" class="intake" novalidate>
    <p class="error" id="intake-errors" role="alert" data-error-summary></p>
    <div class="cols">
      <fieldset class="card"><legend>Patient</legend><div class="form-grid">
        ${field({ id: "p-name", name: "patient.name", label: "Name", required: true, attrs: 'autocomplete="off"' })}
        ${field({ id: "p-id", name: "patient.id", label: "Patient id", required: true, hint: "The clinic's record number" })}
        ${field({ id: "p-dob", name: "patient.date_of_birth", label: "Date of birth", type: "date", required: true })}
        ${field({ id: "p-email", name: "patient.contact.email", label: "Email", type: "email", attrs: 'autocomplete="off"' })}
        ${field({ id: "p-phone", name: "patient.contact.phone", label: "Phone", type: "tel", attrs: 'autocomplete="off"' })}
        ${field({ id: "p-channel", name: "patient.preferred_channel", label: "Prefers to hear by",
          control: select("p-channel", "patient.preferred_channel", [["email", "Email"], ["sms", "SMS"], ["in_app", "In the app"]], "email") })}
      </div></fieldset>
      <fieldset class="card"><legend>Referrer</legend><div class="form-grid">
        ${field({ id: "r-name", name: "referrer.name", label: "Name", required: true })}
        ${field({ id: "r-org", name: "referrer.organisation", label: "Organisation", required: true })}
      </div></fieldset>
    </div>
    <fieldset class="card"><legend>Condition and pain</legend><div class="form-grid">
      ${field({ id: "condition", name: "condition", label: "Condition", required: true,
        control: select("condition", "condition", [["", "Choose…"], ...CONDITIONS.map((c) => [c, CONDITION_NAMES[c] || title(c)])], "") })}
      <div id="detail-box" hidden>${field({ id: "condition-detail", name: "condition_detail", label: "Describe the condition", required: true })}</div>
      <div class="field"><span class="label" id="pain-label">Pain for <span class="req" aria-hidden="true">*</span></span>
        <div class="pair" role="group" aria-labelledby="pain-label">
          <input type="number" id="pain-value" name="pain_duration.value" min="0" max="1200" aria-label="Pain for (number)"
            aria-describedby="e-pain-value" required aria-required="true">
          ${select("pain-unit", "pain_duration.unit", [["days", "days"], ["weeks", "weeks"], ["months", "months"], ["years", "years"]], "months").replace("<select", '<select aria-label="Pain for (unit)"')}
        </div>
        <p class="error" id="e-pain-value" data-error-for="pain_duration.value"></p>
        <p class="error" data-error-for="pain_duration.unit"></p></div>
    </div></fieldset>
    <fieldset class="card"><legend>Medication</legend>
      <table class="meds"><thead><tr><th scope="col">Medicine</th><th scope="col">Dose</th><th scope="col">How often</th></tr></thead>
        <tbody>${Array.from({ length: MEDICATION_ROWS }, (_, i) => medicationRow(i)).join("")}</tbody></table>
      <p class="error" data-error-for="medications"></p>
      <div class="actions"><button type="button" class="secondary" id="add-med">Add another medicine</button>
        <span class="small muted">Rows left empty are not sent.</span></div></fieldset>
    <fieldset class="card"><legend>Reason and urgency</legend>
      ${field({ id: "reason", name: "reason", label: "Reason for referral", required: true,
        control: '<textarea id="reason" name="reason" rows="4" required aria-required="true" aria-describedby="e-reason"></textarea>' })}
      ${field({ id: "urgency", name: "urgency_requested", label: "Urgency the referrer asks for",
        control: select("urgency", "urgency_requested", [["", "Not stated"], ["urgent", "Urgent"], ["soon", "Soon"], ["routine", "Routine"]], "") })}
    </fieldset>
    <div class="actions"><button id="intake-save">Record the referral</button><a class="button quiet" href="#/queue">Back to the queue</a>
      <span class="small muted"><span class="req" aria-hidden="true">*</span> required. Sending it twice records it once.</span></div>
  </form>`;
}

function readIntake(form) {
  // The referral as the API takes it; empty optional fields are left out. Medication rows
  // with anything typed are sent in order, and their error slots take the index they are sent under.
  const f = new FormData(form);
  const text = (name) => String(f.get(name) ?? "").trim();
  const put = (obj, key, value) => { if (value !== "" && value !== undefined) obj[key] = value; };
  const patient = { contact: {} }, referrer = {}, pain = {}, body = { patient, referrer, pain_duration: pain };
  put(patient, "name", text("patient.name"));
  put(patient, "id", text("patient.id"));
  put(patient, "date_of_birth", text("patient.date_of_birth"));
  put(patient.contact, "email", text("patient.contact.email"));
  put(patient.contact, "phone", text("patient.contact.phone"));
  put(patient, "preferred_channel", text("patient.preferred_channel"));
  put(referrer, "name", text("referrer.name"));
  put(referrer, "organisation", text("referrer.organisation"));
  put(body, "condition", text("condition"));
  if (text("condition") === "other") put(body, "condition_detail", text("condition_detail"));
  if (text("pain_duration.value") !== "") pain.value = Number(text("pain_duration.value"));
  put(pain, "unit", text("pain_duration.unit"));
  body.medications = [];
  $$("tr[data-med]", form).forEach((row) => {
    const i = row.dataset.med;
    const med = {};
    for (const part of ["name", "dose", "frequency"]) put(med, part, text(`med.${i}.${part}`));
    const sent = Object.keys(med).length ? body.medications.push(med) - 1 : null;
    $$("[data-error-slot]", row).forEach((slot) => {
      if (sent === null) slot.removeAttribute("data-error-for");
      else slot.dataset.errorFor = `medications.${sent}.${slot.dataset.errorSlot}`;
    });
  });
  put(body, "reason", text("reason"));
  put(body, "urgency_requested", text("urgency_requested"));
  return body;
}

async function pageIntake() {
  const here = location.hash;
  if (!canRecord()) {
    setMain(here, '<h2>New referral</h2><p class="notice">Referrals are recorded by the schedulers.</p>', "New referral");
    return;
  }
  setMain(here, `<p><a href="#/queue">← Queue</a></p><h2>New referral</h2>
    <p class="muted">What the referrer sent. Pain medicine triages it next; the patient hears once it is booked.</p>
    ${intakeForm()}`, "New referral");
  const form = $("#intake");
  const key = newKey();  // once per form: a double click or a resend is the same referral
  clearOnEdit(form);
  const detail = () => {
    const other = $("#condition", form).value === "other";
    $("#detail-box", form).hidden = !other;
  };
  $("#condition", form).addEventListener("change", detail);
  $("#add-med", form).addEventListener("click", (e) => {
    const body = $("table.meds tbody", form);
    const n = $$("tr", body).length;
    body.insertAdjacentHTML("beforeend", medicationRow(n));
    if (n + 1 >= MEDICATION_MAX) e.target.hidden = true;
    $(`#med-${n}-name`, form).focus();
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const button = $("#intake-save", form);
    if (button.disabled) return;
    clearErrors(form);
    busy(button, async () => {
      let answer;
      try {
        answer = await call("POST", "referrals", "/referrals", readIntake(form), { "Idempotency-Key": key });
      } catch (err) { showErrors(form, err, { nothing: "Nothing was recorded." }); return; }
      const r = answer.data;
      noticeAfterMove(answer.status === 201
        ? `Referral recorded for ${r.patient.name}; it waits for triage.`
        : `This referral was already recorded (${dateText(r.received_at)}); here it is.`);
      go(`#/referral/${r.id}`);
    });
  });
}

// ------------------------------------------------------------------ a referral and its pathway
function pathwayTable(steps) {
  if (!steps?.length) return '<p class="muted">No pathway yet: it is set at triage.</p>';
  return `<table class="pathway"><thead><tr><th>Discipline</th><th>Visit</th><th>Sessions</th><th>Every</th></tr></thead><tbody>
    ${steps.map((s) => `<tr><td class="disc ${esc(s.discipline)}">${esc(title(s.discipline))}</td><td>${s.visit_minutes} min</td>
      <td>${s.sessions}</td><td>${s.sessions > 1 ? `${s.interval_days} days` : "–"}</td></tr>`).join("")}</tbody></table>`;
}

function triageForm(r) {
  const step = (d, on, minutes, sessions, interval) => `<tr>
    <td><label class="inline-check"><input type="checkbox" name="use_${d}" ${on ? "checked" : ""}> ${esc(title(d))}</label></td>
    <td><input type="number" name="minutes_${d}" value="${minutes}" min="10" max="240" aria-label="${esc(title(d))} visit minutes"></td>
    <td><input type="number" name="sessions_${d}" value="${sessions}" min="1" max="52" aria-label="${esc(title(d))} sessions"></td>
    <td><input type="number" name="interval_${d}" value="${interval}" min="0" max="90" aria-label="${esc(title(d))} days between sessions"></td></tr>`;
  const prio = r.priority || r.urgency_requested || "routine";
  return `<form id="triage" class="card" novalidate><h3>Triage</h3>
    <div class="inline"><div class="field"><label for="priority">Priority</label><select id="priority" name="priority">
      ${["urgent", "soon", "routine"].map((p) => `<option ${p === prio ? "selected" : ""}>${p}</option>`).join("")}</select></div>
    <div class="field"><label for="tool">Screening</label><select id="tool" name="tool"><option value="">none</option>
      <option value="dn4">DN4</option><option value="lanss">LANSS</option><option value="paindetect">painDETECT</option></select></div>
    <div class="field"><label for="score">Score</label><input type="number" id="score" name="score"><p class="error" data-error-for="screening.score"></p></div></div>
    <table><thead><tr><th>Discipline</th><th>Minutes</th><th>Sessions</th><th>Days apart</th></tr></thead><tbody>
      ${DISCIPLINES.map((d, i) => {
        const had = (r.pathway || []).find((s) => s.discipline === d);
        const [minutes, sessions, interval] = had ? [had.visit_minutes, had.sessions, had.interval_days]
          : [[60, 1, 0], [45, 2, 7], [50, 2, 7], [30, 2, 7]][i];
        return step(d, had || !(r.pathway || []).length, minutes, sessions, interval);
      }).join("")}</tbody></table>
    <p class="error" data-error-for="pathway"></p>
    <div class="actions"><button id="triage-save">Save triage</button></div></form>`;
}

async function pageReferral(id) {
  const here = location.hash;
  const r = await api("GET", "referrals", `/referrals/${id}`);
  // the services decide (triage lead, the patient's pain-medicine lead); the page only
  // hides what this person could not do
  const isPainLead = (me.roles || [me.role]).includes("triage_lead") || (me.role === "specialist" && me.discipline === "pain_medicine");
  const canBook = me.role === "scheduler";
  setMain(here, `<p><a href="#/queue">← Queue</a></p>
    <h2>${esc(r.patient.name)} ${badge(r.status, "")} ${badge(r.priority || r.urgency_requested || "routine")}
      ${r.overdue ? badge("past target", "late") : ""} ${r.at_breach_risk ? badge("breach risk", "breach") : ""}</h2>
    <div class="cols">
      <section class="card"><h3>Referral</h3><dl class="facts">
        <dt>Condition</dt><dd>${esc(conditionText(r.condition))}${r.condition_detail ? `: ${esc(r.condition_detail)}` : ""}</dd>
        <dt>Pain for</dt><dd>${esc(r.pain_duration.value)} ${esc(r.pain_duration.unit)}</dd>
        <dt>Referrer</dt><dd>${esc(r.referrer.name)}, ${esc(r.referrer.organisation)}</dd>
        <dt>Received</dt><dd>${esc(dateText(r.received_at))} (${r.waiting_days} days waiting)</dd>
        <dt>Target</dt><dd>${esc(r.due_by ? dateText(`${r.due_by}T12:00:00Z`) : "–")}</dd>
        ${r.at_breach_risk ? `<dt>Breach risk</dt><dd class="breach-risk"><span class="badge breach">breach risk</span>
          ${esc(BREACH_TEXT[r.breach_risk?.reason] || words(r.breach_risk?.reason))}: due by ${esc(dateText(`${r.due_by}T12:00:00Z`))},
          first visit ${esc(r.breach_risk?.first_visit_at ? dateTimeText(r.breach_risk.first_visit_at) : "not booked yet")}
          <span class="small muted">(seen ${esc(dateTimeText(r.breach_risk?.detected_at))})</span></dd>` : ""}
        ${r.withheld ? '<dt>Clinical detail</dt><dd class="muted">For the care team only</dd>' : `
        <dt>Reason</dt><dd>${esc(r.reason)}</dd>
        <dt>Medication</dt><dd>${(r.medications || []).map((m) => `${esc(m.name)} ${esc(m.dose)}${m.frequency ? `, ${esc(m.frequency)}` : ""}`).join("<br>") || "–"}</dd>`}
      </dl></section>
      <section class="card"><h3>Patient</h3><dl class="facts">
        <dt>Born</dt><dd>${esc(dateText(`${r.patient.date_of_birth}T12:00:00Z`))}</dd>
        <dt>Contact</dt><dd>${esc(r.patient.contact?.email || "")} ${esc(r.patient.contact?.phone || "")}</dd>
        <dt>Prefers</dt><dd>${esc(words(r.patient.preferred_channel))}</dd></dl>
        ${me.role === "specialist" ? `<p><a href="#/patient/${esc(r.patient.id)}">Timeline and notes</a></p>` : ""}
      </section>
    </div>
    <section class="card"><h3>Care pathway</h3>${pathwayTable(r.pathway)}
      ${r.screening ? `<p class="small muted">Screening: ${esc({ dn4: "DN4", lanss: "LANSS", paindetect: "painDETECT" }[r.screening.tool] || r.screening.tool)} ${esc(r.screening.score)}</p>` : ""}
      ${canBook && ["received", "triaged"].includes(r.status) ? '<p class="small muted">Waiting for a pain-medicine specialist to triage and accept it; scheduling then proposes the itinerary.</p>' : ""}</section>
    <div id="decide"></div>
    <section id="itineraries"></section>
    <section class="card"><h3>History</h3><ol class="small">${r.history.map((h) =>
      `<li>${esc(dateTimeText(h.at))}: ${esc(words(h.action))} → ${esc(words(h.to_status))} (${esc(h.by_role)})${h.reason ? `: ${esc(h.reason)}` : ""}</li>`).join("")}</ol></section>`,
  r.patient.name);

  if (isPainLead && r.allowed_moves.includes("triage")) {
    $("#decide").innerHTML = triageForm(r) + (r.allowed_moves.includes("accept")
      ? `<div class="card actions"><button id="accept">Accept the referral</button>
         <label for="reject-reason" class="small">or reject it, saying why</label>
         <input id="reject-reason" size="30"><button id="reject" class="danger">Reject</button></div>` : "");
    wireTriage(r);
  }
  if (canBook && ["accepted", "scheduled", "in_care"].includes(r.status)) await itineraryList(r);
}

function wireTriage(r) {
  const form = $("#triage");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const pathway = DISCIPLINES.filter((d) => f.get(`use_${d}`)).map((d) => ({
      discipline: d, visit_minutes: Number(f.get(`minutes_${d}`)), sessions: Number(f.get(`sessions_${d}`)),
      interval_days: Number(f.get(`interval_${d}`)) }));
    const body = { priority: f.get("priority"), pathway };
    if (f.get("tool")) body.screening = { tool: f.get("tool"), score: Number(f.get("score")) };
    clearErrors(form);
    busy($("#triage-save"), async () => {
      try {
        await api("POST", "referrals", `/referrals/${r.id}/triage`, body);
        notice("Triage saved.", "ok");
        route();
      } catch (err) { showErrors(form, err); }
    });
  });
  $("#accept")?.addEventListener("click", (e) => busy(e.target, async () => {
    try {
      await api("POST", "referrals", `/referrals/${r.id}/accept`, {});
      notice("Accepted: scheduling proposes the itinerary.", "ok");
      route();
    } catch (err) { notice(explain(err)); }
  }));
  $("#reject")?.addEventListener("click", (e) => busy(e.target, async () => {
    try {
      await api("POST", "referrals", `/referrals/${r.id}/reject`, { reason: $("#reject-reason").value });
      route();
    } catch (err) { notice(explain(err)); }
  }));
}

async function itineraryList(r, attempt = 0) {
  const box = $("#itineraries");
  if (!box) return;
  const list = await api("GET", "scheduling", `/itineraries?referral_id=${encodeURIComponent(r.id)}`);
  if (!$("#itineraries")) return;
  if (!list.length) {
    box.innerHTML = `<div class="card"><h3>Itinerary</h3><p class="muted" id="itinerary-wait">Scheduling is proposing an itinerary…</p>
      <div class="actions"><button id="propose" class="secondary">Propose one now</button></div></div>`;
    $("#propose").addEventListener("click", (e) => busy(e.target, async () => {
      try {
        const made = await api("POST", "scheduling", "/itineraries", { patient_id: r.patient.id, referral_id: r.id,
          pathway: r.pathway, priority: r.priority || "routine", due_by: r.due_by });
        go(`#/itinerary/${made.id}`);
      } catch (err) { notice(explain(err)); }
    }));
    if (attempt < 30) setTimeout(() => { if (location.hash === `#/referral/${r.id}`) itineraryList(r, attempt + 1); }, 2000);
    return;
  }
  box.innerHTML = `<div class="card"><h3>Itineraries</h3><ul>${list.map((it) => `<li>
    <a href="#/itinerary/${esc(it.id)}" data-itinerary="${esc(it.id)}">${it.visits.length} visits from
    ${esc(it.visits[0] ? dateTimeText(it.visits[0].start) : "–")}</a> ${badge(it.status, "")}
    ${it.status === "proposed" && it.hold_expires_at ? `<span class="small muted">held until ${esc(timeText(it.hold_expires_at))}</span>` : ""}</li>`).join("")}</ul></div>`;
}

// ------------------------------------------------------------------ the itinerary on a calendar
function weekCalendar(visits, { selected, label } = {}) {
  // Visits grouped by local week; each week a Monday-to-Friday (weekend if needed) grid.
  const weeks = new Map();
  for (const v of visits) {
    const p = localParts(v.start);
    const monday = mondayOf(p.day);
    if (!weeks.has(monday)) weeks.set(monday, []);
    weeks.get(monday).push({ ...v, p, endp: localParts(v.end) });
  }
  let html = "";
  for (const [monday, items] of [...weeks.entries()].sort()) {
    const days = items.some((v) => v.p.weekday > 4) ? 7 : 5;
    const height = (DAY_END - DAY_START) * HOUR_PX;
    html += `<section class="week" aria-label="Week of ${esc(dateText(`${monday}T12:00:00Z`))}">
      <h4>Week of ${esc(dateText(`${monday}T12:00:00Z`))}</h4>
      <div class="grid" data-style="--days:${days}"><div class="head"></div>`;
    for (let d = 0; d < days; d++) html += `<div class="head">${esc(fmt({ weekday: "short", day: "numeric", month: "short" }).format(new Date(`${addDays(monday, d)}T12:00:00Z`)))}</div>`;
    html += `<div class="hours" data-style="height:${height}px">`;
    for (let h = DAY_START; h <= DAY_END; h++) html += `<span data-style="top:${(h - DAY_START) * HOUR_PX}px">${String(h).padStart(2, "0")}:00</span>`;
    html += "</div>";
    for (let d = 0; d < days; d++) {
      const day = addDays(monday, d);
      html += `<div class="day" data-style="height:${height}px;--hour:${HOUR_PX}px">`;
      for (const v of items.filter((x) => x.p.day === day)) {
        const top = Math.max(0, (v.p.minutes - DAY_START * 60) / 60 * HOUR_PX);
        const h = Math.max(18, (v.endp.minutes - v.p.minutes) / 60 * HOUR_PX - 2);
        const id = v.appointment_id || v.id;
        html += `<button type="button" class="visit ${esc(v.discipline)} ${esc(v.status || "")} ${id === selected ? "selected" : ""}"
          data-style="top:${top}px;height:${h}px" data-visit="${esc(id)}"
          title="${esc(`${timeText(v.start)}–${timeText(v.end)} ${v.provider_name || ""} ${v.room_name || ""}`)}"
          aria-label="${esc(label ? label(v) : `${title(v.discipline)} ${timeText(v.start)}`)}">
          <b>${esc(timeText(v.start))}–${esc(timeText(v.end))}</b>${esc(v.provider_name || v.provider_id)}<br>${esc(v.room_name || "")}</button>`;
      }
      html += "</div>";
    }
    html += "</div></section>";
  }
  return html || '<p class="muted">No visits.</p>';
}

function named(text, it) {
  // The services speak of providers by id; the people reading this know them by name.
  for (const v of it.visits) text = text.split(v.provider_id).join(v.provider_name);
  return text;
}

const legend = () => `<div class="legend">${DISCIPLINES.map((d) => `<span data-style="--c:var(--${d})">${esc(title(d))}</span>`).join("")}</div>`;

async function pageItinerary(id, selected) {
  const here = location.hash;
  const it = await api("GET", "scheduling", `/itineraries/${id}`);
  const referral = it.referral_id
    ? await api("GET", "referrals", `/referrals/${it.referral_id}`).catch(() => null) : null;
  const visits = [...it.visits].sort((a, b) => a.start.localeCompare(b.start));
  const canChange = it.status === "proposed";
  // The scheduling API lets schedulers (and admins) cancel; nobody else sees the buttons.
  const canCancel = ["scheduler", "admin"].includes(me.role) && ["proposed", "booked"].includes(it.status);
  const visitCancellable = (v) => canCancel && v.status === "booked";
  setMain(here, `<p>${it.referral_id ? `<a href="#/referral/${esc(it.referral_id)}">← Referral</a>` : ""}</p>
    <h2>Itinerary ${referral ? `for ${esc(referral.patient.name)}` : ""} ${badge(it.status, "")}</h2>
    <div class="card"><dl class="facts"><dt>Patient</dt><dd>${esc(referral?.patient?.name || "")} <span class="muted">${esc(it.patient_id)}</span></dd>
      <dt>Visits</dt><dd>${visits.length}, first on ${esc(visits[0] ? dateTimeText(visits[0].start) : "–")}</dd>
      ${it.hold_expires_at && canChange ? `<dt>Held until</dt><dd>${esc(dateTimeText(it.hold_expires_at))}</dd>` : ""}
      ${(it.notes || []).length ? `<dt>Notes</dt><dd>${it.notes.map(esc).join("<br>")}</dd>` : ""}
      ${(it.reasons || []).length ? `<dt>Why</dt><dd>${it.reasons.map(esc).join("<br>")}</dd>` : ""}</dl>
      <div class="actions">
        ${canChange ? '<button id="confirm">Confirm the whole itinerary</button>' : ""}
        ${canChange ? '<span class="small muted">Choose a visit on the calendar to move it to another offered slot.</span>' : ""}
        ${canCancel ? '<button type="button" id="cancel-itinerary" class="danger push-end">Cancel the whole itinerary…</button>' : ""}
      </div></div>
    <div id="move"></div>
    ${legend()}
    <div id="calendar">${weekCalendar(visits, { selected, label: (v) => `${title(v.discipline)} with ${v.provider_name}, ${dateTimeText(v.start)}` })}</div>
    <h3>Visits</h3><div class="table-wrap"><table id="visits"><thead><tr><th>When</th><th>Discipline</th><th>With</th><th>Room</th><th>Status</th>${canCancel ? '<th><span class="visually-hidden">Actions</span></th>' : ""}</tr></thead><tbody>
      ${visits.map((v) => `<tr data-visit="${esc(v.appointment_id)}" class="${esc(v.status)}"><td>${esc(dateTimeText(v.start))}–${esc(timeText(v.end))}</td><td class="disc ${esc(v.discipline)}">${esc(title(v.discipline))}</td>
        <td>${esc(v.provider_name)}</td><td>${esc(v.room_name || "–")}</td><td>${badge(v.status, "")}</td>
        ${canCancel ? `<td>${visitCancellable(v) ? `<button type="button" class="secondary compact cancel-visit" data-visit="${esc(v.appointment_id)}"
          aria-label="${esc(`Cancel the ${words(v.discipline)} visit with ${v.provider_name}, ${dateTimeText(v.start)}`)}">Cancel visit…</button>` : ""}</td>` : ""}</tr>`).join("")}</tbody></table></div>`,
  "Itinerary");

  $("#cancel-itinerary")?.addEventListener("click", () => {
    const live = visits.filter((v) => ["proposed", "pending", "booked"].includes(v.status)).length;
    askToCancel({
      heading: `Cancel the whole itinerary${referral ? ` for ${referral.patient.name}` : ""}?`,
      what: `${live} ${live === 1 ? "visit is" : "visits are"} cancelled and the patient is told; the freed slots go to the waitlist. This cannot be undone.`,
      action: "Cancel the itinerary",
      send: (reason) => api("POST", "scheduling", `/itineraries/${id}/cancel`, { reason }),
      done: "Itinerary cancelled: every visit is cancelled and its slot offered to the waitlist.",
      after: () => pageItinerary(id),
    });
  });
  $$("#visits .cancel-visit").forEach((b) => b.addEventListener("click", () => {
    const v = visits.find((x) => x.appointment_id === b.dataset.visit);
    askToCancel({
      heading: `Cancel this ${words(v.discipline)} visit?`,
      what: `${title(v.discipline)} with ${v.provider_name}, ${dateTimeText(v.start)}–${timeText(v.end)}. The rest of the itinerary stays booked; the patient is told and the slot is offered to the waitlist.`,
      action: "Cancel the visit",
      send: (reason) => api("POST", "scheduling", `/appointments/${v.appointment_id}/cancel`, { reason }),
      done: `Visit cancelled: ${words(v.discipline)} with ${v.provider_name}, ${dateTimeText(v.start)}.`,
      after: () => pageItinerary(id),
    });
  }));

  $("#confirm")?.addEventListener("click", (e) => busy(e.target, async () => {
    try {
      await api("POST", "scheduling", `/itineraries/${id}/confirm`);
      notice("Booked: every visit of the itinerary is confirmed.", "ok");
    } catch (err) {
      // All or nothing: nothing was booked. A lost slot comes back as a new proposal.
      notice(`Nothing was booked. ${named(explain(err), it)}`);
    }
    await pageItinerary(id);
  }));
  if (!canChange) return;
  $$("#calendar .visit").forEach((b) => b.addEventListener("click", () => offerSlots(it, b.dataset.visit)));
}

function askToCancel({ heading, what, action, send, done, after }) {
  // A modal dialog (keyboard: focus starts in the reason, Escape keeps things as they are)
  // asking why; the service's refusal is said beside the reason or in the dialog.
  $("#cancel-dialog")?.remove();
  document.body.insertAdjacentHTML("beforeend", `<dialog id="cancel-dialog" aria-labelledby="cancel-title" aria-describedby="cancel-what">
    <form id="cancel-form" novalidate><h3 id="cancel-title">${esc(heading)}</h3><p id="cancel-what">${esc(what)}</p>
      <p class="error" role="alert" data-error-summary></p>
      ${field({ id: "cancel-reason", name: "reason", label: "Reason", required: true, hint: "Kept with the booking and shown to the care team.",
        control: '<textarea id="cancel-reason" name="reason" rows="3" required aria-required="true" aria-describedby="h-cancel-reason e-cancel-reason" autofocus></textarea>' })}
      <div class="actions"><button class="danger" id="cancel-go">${esc(action)}</button>
        <button type="button" class="quiet" id="cancel-keep">Keep it</button></div></form></dialog>`);
  const dialog = $("#cancel-dialog"), form = $("#cancel-form", dialog);
  const opener = document.activeElement;
  clearOnEdit(form);
  dialog.addEventListener("close", () => { dialog.remove(); if (opener?.isConnected) opener.focus(); });
  $("#cancel-keep", dialog).addEventListener("click", () => dialog.close());
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    clearErrors(form);
    const reason = $("#cancel-reason", form).value.trim();
    if (!reason) {
      showErrors(form, new ApiError(422, { errors: { reason: ["Say why: the reason is kept with the booking."] } }),
        { nothing: "Nothing was cancelled." });
      return;
    }
    busy($("#cancel-go", form), async () => {
      try { await send(reason); } catch (err) {
        showErrors(form, err, { nothing: "Nothing was cancelled." });
        return;
      }
      dialog.close();
      notice(done, "ok");
      await after();
      $("#main").focus({ preventScroll: true });
    });
  });
  dialog.showModal();
}

async function offerSlots(it, appointmentId) {
  const v = it.visits.find((x) => x.appointment_id === appointmentId);
  $$("#calendar .visit").forEach((b) => b.classList.toggle("selected", b.dataset.visit === appointmentId));
  const box = $("#move");
  box.innerHTML = `<div class="card"><h3>Move ${esc(title(v.discipline))} with ${esc(v.provider_name)} (${esc(dateTimeText(v.start))})</h3>
    <p class="muted">Loading the slots the pathway allows with ${esc(v.provider_name)}…</p></div>`;
  // Scheduling lists the moves its own move would accept (the pathway's intervals, gaps,
  // order, rooms and the patient's time): the console offers exactly those, no guess of its own.
  const slots = await api("GET", "scheduling",
    `/itineraries/${it.id}/visits/${appointmentId}/moves?provider_id=${encodeURIComponent(v.provider_id)}&days=2&step_minutes=30`);
  const byDay = new Map();
  slots.forEach((s) => { const d = localParts(s.start).day; if (!byDay.has(d)) byDay.set(d, []); byDay.get(d).push(s); });
  box.innerHTML = `<div class="card" id="move-card"><h3>Move ${esc(title(v.discipline))} with ${esc(v.provider_name)} (${esc(dateTimeText(v.start))})</h3>
    ${byDay.size ? [...byDay.entries()].map(([d, list]) => `<div class="slotday"><b>${esc(dateText(`${d}T12:00:00Z`))}</b><div class="slots">
      ${list.slice(0, 16).map((s) => `<button type="button" data-start="${esc(s.start)}" aria-label="Move to ${esc(dateTimeText(s.start))}">${esc(timeText(s.start))}</button>`).join("")}</div></div>`).join("")
      : '<p class="muted">The pathway\'s rules (follow-up interval, gaps, clinical order, rooms, the patient\'s time) allow no other slot within two days of it.</p>'}
    <div class="actions"><button type="button" class="quiet" id="move-cancel">Keep it where it is</button></div></div>`;
  $("#move-cancel").addEventListener("click", () => { box.innerHTML = ""; });
  $$("#move-card .slots button").forEach((b) => b.addEventListener("click", () => busy(b, async () => {
    try {
      await api("POST", "scheduling", `/itineraries/${it.id}/visits/${appointmentId}/move`,
        { start: b.dataset.start, provider_id: v.provider_id });
      notice(`Moved to ${dateTimeText(b.dataset.start)}.`, "ok");
    } catch (err) {
      notice(`The visit was not moved. ${named(explain(err), it)}`);
    }
    await pageItinerary(it.id, appointmentId);
  })));
  $("#move-card .slots button, #move-cancel")?.focus();
}

// ------------------------------------------------------------------ diaries (day view)
async function pageDiary(day) {
  const here = location.hash;
  day = day || todayLocal();
  const own = me.role === "specialist";
  const [providers, appts] = await Promise.all([
    api("GET", "scheduling", "/providers"),
    api("GET", "scheduling", `/appointments?from=${day}T00:00:00Z&to=${addDays(day, 1)}T00:00:00Z&limit=500`),
  ]);
  const shown = own ? providers.filter((p) => p.id === me.provider_id) : providers;
  shown.sort((a, b) => DISCIPLINES.indexOf(a.discipline) - DISCIPLINES.indexOf(b.discipline) || a.name.localeCompare(b.name));
  const live = appts.filter((a) => !["cancelled", "expired"].includes(a.status));
  const height = (DAY_END - DAY_START) * HOUR_PX;
  let grid = `<div class="week"><div class="grid" data-style="--days:${Math.max(1, shown.length)}"><div class="head"></div>
    ${shown.map((p) => `<div class="head disc ${esc(p.discipline)}">${esc(p.name)}<br><span class="small muted">${esc(title(p.discipline))}</span></div>`).join("")}
    <div class="hours" data-style="height:${height}px">${Array.from({ length: DAY_END - DAY_START + 1 }, (_, i) =>
      `<span data-style="top:${i * HOUR_PX}px">${String(DAY_START + i).padStart(2, "0")}:00</span>`).join("")}</div>`;
  for (const p of shown) {
    grid += `<div class="day" data-style="height:${height}px;--hour:${HOUR_PX}px" data-provider="${esc(p.id)}">`;
    for (const a of live.filter((x) => x.provider_id === p.id)) {
      const s = localParts(a.start), e = localParts(a.end);
      const top = Math.max(0, (s.minutes - DAY_START * 60) / 60 * HOUR_PX);
      const h = Math.max(18, (e.minutes - s.minutes) / 60 * HOUR_PX - 2);
      const link = own || me.role === "admin" ? `#/patient/${encodeURIComponent(a.patient_id)}` : (a.itinerary_id ? `#/itinerary/${a.itinerary_id}` : "");
      grid += `<a class="visit ${esc(a.discipline)} ${esc(a.status)}" data-style="top:${top}px;height:${h}px" ${link ? `href="${link}"` : ""}
        data-appointment="${esc(a.id)}"><b>${esc(timeText(a.start))}–${esc(timeText(a.end))}</b>${esc(a.patient_id)}<br>${esc(words(a.visit_type || a.status))}</a>`;
    }
    grid += "</div>";
  }
  grid += "</div></div>";
  setMain(here, `<div id="home-safety"></div><h2>${own ? "My diary" : "Diaries"} · ${esc(dateText(`${day}T12:00:00Z`))}</h2>
    <div class="actions"><a class="button quiet" href="#/diary/${addDays(day, -1)}">← Previous day</a>
      <label for="day" class="small">Day</label><input type="date" id="day" value="${day}">
      <a class="button quiet" href="#/diary/${addDays(day, 1)}">Next day →</a>
      <span class="muted small">${live.length} appointment${live.length === 1 ? "" : "s"}</span></div>
    ${own && !shown.length ? '<p class="notice">Your sign-in names no provider of the scheduling service, so there is no diary to show.</p>' : grid}`,
  "Diary");
  $("#day").addEventListener("change", (e) => go(`#/diary/${e.target.value}`));
  await homeSafety(here);
}

// ------------------------------------------------------------------ the waitlist
async function pageWaitlist() {
  const here = location.hash;
  const wishes = await api("GET", "scheduling", "/waitlist");
  const active = wishes.filter((w) => ["waiting", "offered"].includes(w.status));
  setMain(here, `<h2>Waitlist</h2><p class="muted">${active.length} ${active.length === 1 ? "patient" : "patients"} waiting for an earlier or a first slot.</p>
    <div class="table-wrap"><table id="waitlist"><thead><tr><th>Patient</th><th>Discipline</th><th>Visit</th><th>Priority</th><th>Window</th><th>Status</th></tr></thead><tbody>
    ${active.map((w) => `<tr><td>${esc(w.patient_id)}</td><td class="disc ${esc(w.discipline)}">${esc(title(w.discipline))}</td>
      <td>${w.visit_minutes} min</td><td>${badge(w.priority)}</td><td>${esc(w.earliest || "now")} – ${esc(w.latest || "any time")}</td>
      <td>${badge(w.status, "")}${w.offer_expires_at ? ` <span class="small muted">offer until ${esc(dateTimeText(w.offer_expires_at))}</span>` : ""}</td></tr>`).join("")
      || '<tr><td colspan="6" class="muted">Nobody is waiting.</td></tr>'}</tbody></table></div>`, "Waitlist");
}

// ------------------------------------------------------------------ the patient: timeline, trend, notes
function lineChart(trend, { max, cls, bands = [] }) {
  const w = 420, h = 170, left = 30, right = 10, top = 10, bottom = 26;
  const points = trend?.points || [];
  if (!points.length) return '<p class="muted">No signed measure yet.</p>';
  const t0 = new Date(points[0].at).getTime();
  const t1 = Math.max(t0 + 86400000, new Date(points[points.length - 1].at).getTime());
  const x = (at) => left + ((new Date(at).getTime() - t0) / (t1 - t0)) * (w - left - right);
  const y = (v) => top + (1 - v / max) * (h - top - bottom);
  let svg = `<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(trend.label)}: ${points.map((p) => p.value).join(", ")}">`;
  for (const [lo, hi, name] of bands) {
    svg += `<rect class="band ${esc(name || "")}" data-band="${esc(name || "")}" x="${left}" y="${y(hi)}" width="${w - left - right}" height="${y(lo) - y(hi)}"><title>${esc(words(name || ""))} ${lo}–${hi}</title></rect>`;
  }
  for (let v = 0; v <= max; v += max > 10 ? 9 : 2) {
    svg += `<line class="grid-line" x1="${left}" x2="${w - right}" y1="${y(v)}" y2="${y(v)}"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`;
  }
  svg += `<polyline class="trend ${cls}" points="${points.map((p) => `${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ")}"/>`;
  for (const p of points) {
    svg += `<circle class="dot ${cls}" cx="${x(p.at).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="4"><title>${esc(dateText(p.at))}: ${p.value} (${esc(p.band)})</title></circle>`;
  }
  svg += `<text x="${left}" y="${h - 6}">${esc(dateText(points[0].at))}</text><text x="${w - right}" y="${h - 6}" text-anchor="end">${esc(dateText(points[points.length - 1].at))}</text>`;
  return svg + "</svg>";
}

function noteCard(n, byId, canWrite) {
  const order = KIND_SECTIONS[n.kind] || [];
  const sections = Object.entries(n.sections || {})
    .sort(([a], [b]) => order.indexOf(a) - order.indexOf(b)).map(([k, v]) => `<div class="section"><b>${esc(words(k))}</b>${esc(v)}</div>`).join("");
  const scores = (n.scores || []).map((s) => (s.code === "phq9_item9" && s.value > 0
    ? `<span class="badge warning safety-item" title="PHQ-9 item 9, the self-harm item: positive">⚠ ${esc(s.label)} ${esc(s.value)} · self-harm item</span>`
    : `<span class="badge" title="${esc(s.band)}">${esc(s.label)} ${esc(s.value)}</span>`)).join("");
  const addenda = (n.addenda || []).map((aid) => byId.get(aid)).filter(Boolean)
    .map((a) => `<div class="addendum"><b class="small">Addendum ${esc(dateTimeText(a.signed_at || a.created_at))} ${badge(a.status, "")}</b>
      <div>${esc(a.sections?.text || "")}</div></div>`).join("");
  const mine = n.author_id === (me.provider_id || me.sub);
  return `<article class="note disc ${esc(n.discipline)}" data-note="${esc(n.id)}">
    <header><h4>${esc(title(n.discipline))} · ${esc(title(n.kind))}</h4>${badge(n.status, "")}
      <span class="small muted">${esc(dateTimeText(n.encounter_at))} · ${esc(names.get(n.author_id) || n.author_id)}</span></header>
    ${scores ? `<div class="scores">${scores}</div>` : ""}${sections}${addenda}
    <div class="actions">
      ${n.status === "draft" && mine ? `<button type="button" class="sign" data-note="${esc(n.id)}">Sign</button>` : ""}
      ${n.status === "signed" && canWrite ? `<button type="button" class="secondary add-addendum" data-note="${esc(n.id)}">Add an addendum</button>` : ""}
      ${canWrite ? `<button type="button" class="secondary flag-risk" data-note="${esc(n.id)}">Flag a risk concern…</button>` : ""}
      ${n.safety_alert ? `<span class="badge warning">safety alert ${esc(n.safety_alert_status)}</span>` : ""}
    </div><div class="addendum-form"></div><div class="flag-form"></div></article>`;
}

function noteForm(discipline) {
  const num = (name, labelText, min, max, step = 1) => `<div class="field"><label for="m-${name}">${esc(labelText)}</label>
    <input type="number" id="m-${name}" name="${name}" step="${step}" aria-describedby="e-${name}" placeholder="${min}–${max}">
    <p class="error" id="e-${name}" data-error-for="measures.${name}"></p></div>`;
  return `<form id="note-form" class="card" novalidate><h3>Write a note (${esc(title(discipline))})</h3>
    <p class="error" id="note-errors" role="alert" data-error-summary></p>
    <div class="inline"><div class="field"><label for="kind">Kind</label><select id="kind" name="kind">
      ${Object.keys(KIND_SECTIONS).map((k) => `<option value="${k}" ${k === "progress" ? "selected" : ""}>${esc(title(k))}</option>`).join("")}</select></div>
      <div class="field"><label for="encounter">Visit</label><input type="datetime-local" id="encounter" name="encounter_at"></div></div>
    <div id="sections"></div>
    <fieldset><legend>Pain (NRS, 0–10)</legend><div class="inline">
      ${num("nrs.current", "Current", 0, 10)}${num("nrs.average", "Average", 0, 10)}${num("nrs.worst", "Worst", 0, 10)}</div></fieldset>
    ${phq9Fieldset()}
    <fieldset><legend>Other measures</legend><div class="inline">
      ${dn4Fields()}${num("gad7", "GAD-7", 0, 21)}${num("pseq", "PSEQ", 0, 60)}${num("bpi.severity", "BPI severity", 0, 10, 0.25)}${num("bpi.interference", "BPI interference", 0, 10, 0.1)}</div>
      ${pgicField()}</fieldset>
    <div class="actions"><button id="save-sign">Save and sign</button><button type="button" id="save-draft" class="secondary">Save as draft</button>
      <span class="small muted">A signed note cannot be changed; corrections are addenda.</span></div></form>`;
}

function phq9Fieldset() {
  // The nine questions as notes' catalogue gives them (verbatim, free to reproduce); item 9
  // marked as the self-harm item: any answer above 0 raises a safety alert on saving.
  const phq = instrument("phq9");
  const answers = (phq?.answers || []).map((a) => `${a.value} = ${a.label}`).join(", ");
  const items = phq?.items?.length ? phq.items : Array.from({ length: 9 }, (_, i) => ({ number: i + 1, text: `Item ${i + 1}`, safety: i === 8 }));
  return `<fieldset class="phq9-set"><legend>PHQ-9: ${esc(phq?.stem || "nine items, 0–3 each")}</legend>
    ${answers ? `<p class="small muted">${esc(answers)}</p>` : ""}
    <ol class="phq9">${items.map((it) => { const i = it.number - 1; return `<li class="field ${it.safety ? "safety-item" : ""}">
      <label for="m-phq9-${i}">${esc(it.text)}${it.safety ? ' <span class="badge warning">self-harm item: any answer above 0 raises a safety alert</span>' : ""}</label>
      <input type="number" id="m-phq9-${i}" name="phq9.${i}" min="0" max="3" placeholder="0–3" aria-describedby="e-phq9-${i}">
      <p class="error" id="e-phq9-${i}" data-error-for="measures.phq9.items.${i}"></p></li>`; }).join("")}</ol>
    <p class="error" data-error-for="measures.phq9.items"></p><p class="error" data-error-for="measures.phq9"></p></fieldset>`;
}

function dn4Fields() {
  const forms = instrument("dn4")?.forms?.length ? instrument("dn4").forms
    : [{ form: "full", name: "DN4", min: 0, max: 10 }, { form: "interview", name: "DN4-interview", min: 0, max: 7 }];
  return `<div class="field"><label for="m-dn4-form">DN4 form</label><select id="m-dn4-form" name="dn4_form" aria-describedby="e-dn4_form">
      ${forms.map((f) => `<option value="${esc(f.form)}" data-max="${f.max}">${esc(f.name)}${f.cutoff ? ` (≥ ${f.cutoff} likely neuropathic)` : ""}</option>`).join("")}</select>
      <p class="error" id="e-dn4_form" data-error-for="measures.dn4_form"></p></div>
    <div class="field"><label for="m-dn4">DN4 score</label>
      <input type="number" id="m-dn4" name="dn4" aria-describedby="e-dn4" placeholder="${forms[0].min}–${forms[0].max}">
      <p class="error" id="e-dn4" data-error-for="measures.dn4"></p></div>`;
}

function pgicField() {
  const pgic = instrument("pgic");
  const answers = pgic?.answers?.length ? pgic.answers : Array.from({ length: 7 }, (_, i) => ({ value: i + 1, label: String(i + 1) }));
  return `<div class="field"><label for="m-pgic">PGIC${pgic?.stem ? `: ${esc(pgic.stem)}` : " (1–7)"}</label>
    <select id="m-pgic" name="pgic" aria-describedby="e-pgic"><option value="">Not asked</option>
      ${answers.map((a) => `<option value="${a.value}">${a.value} · ${esc(a.label)}</option>`).join("")}</select>
    <p class="error" id="e-pgic" data-error-for="measures.pgic"></p></div>`;
}

function renderSections(form) {
  const kind = $("#kind", form).value;
  $("#sections", form).innerHTML = KIND_SECTIONS[kind].map((s) => `<div class="field"><label for="s-${s}">${esc(title(s))}</label>
    <textarea id="s-${s}" name="section.${s}" rows="2"></textarea><p class="error" data-error-for="sections.${s}"></p></div>`).join("");
}

function readNote(form) {
  const f = new FormData(form);
  const number = (name) => { const v = String(f.get(name) ?? "").trim(); return v === "" ? undefined : Number(v); };
  const body = { kind: f.get("kind"), sections: {}, measures: {} };
  for (const [k, v] of f.entries()) if (k.startsWith("section.") && String(v).trim()) body.sections[k.slice(8)] = String(v).trim();
  const encounter = f.get("encounter_at");
  if (encounter) body.encounter_at = new Date(encounter).toISOString();
  const nrs = {};
  for (const k of ["current", "average", "worst"]) if (number(`nrs.${k}`) !== undefined) nrs[k] = number(`nrs.${k}`);
  if (Object.keys(nrs).length) body.measures.nrs = nrs;
  const items = Array.from({ length: 9 }, (_, i) => number(`phq9.${i}`));
  if (items.some((v) => v !== undefined)) body.measures.phq9 = { items: items.map((v) => v ?? 0) };
  for (const k of ["dn4", "gad7", "pseq", "pgic"]) if (number(k) !== undefined) body.measures[k] = number(k);
  if (body.measures.dn4 !== undefined && f.get("dn4_form")) body.measures.dn4_form = f.get("dn4_form");
  const bpi = {};
  for (const k of ["severity", "interference"]) if (number(`bpi.${k}`) !== undefined) bpi[k] = number(`bpi.${k}`);
  if (Object.keys(bpi).length) body.measures.bpi = bpi;
  return body;
}

// ------------------------------------------------------------------ forms: errors beside fields
// Every form marks its slots: `data-error-for="<the API's field name>"` beside the field
// (e.g. patient.contact.email, measures.nrs.worst) and one `data-error-summary` (role=alert)
// for what has no place. A 422's `errors` land beside their fields; the first gets focus.
function clearErrors(form) {
  $$("[data-error-for]", form).forEach((el) => { el.textContent = ""; });
  $$(".field.invalid", form).forEach((el) => el.classList.remove("invalid"));
  $$("[aria-invalid]", form).forEach((el) => el.removeAttribute("aria-invalid"));
  const summary = $("[data-error-summary]", form);
  if (summary) summary.textContent = "";
}

function showErrors(form, err, { nothing = "Nothing was saved." } = {}) {
  // Each field's message beside its field; anything without a place goes in the summary.
  const loose = [];
  for (const [key, messages] of Object.entries(err.fields || {})) {
    const text = [].concat(messages).join("; ");
    const slot = key && $(`[data-error-for="${CSS.escape(key)}"]`, form);
    if (slot) {
      slot.textContent = text;
      const box = slot.closest(".field");
      if (box) {
        box.classList.add("invalid");
        $$("input, textarea, select", box).forEach((el) => el.setAttribute("aria-invalid", "true"));
      }
    } else loose.push(`${words(key)}: ${text}`);
  }
  const summary = $("[data-error-summary]", form);
  const placed = Object.keys(err.fields || {}).length - loose.length;
  const message = err.status === 422
    ? `${nothing} ${placed ? `Please correct the ${placed === 1 ? "field" : `${placed} fields`} marked below.` : ""} ${loose.join(" — ")}`
    : `${err.message}${loose.length ? ` — ${loose.join(" — ")}` : ""}`;
  if (summary) summary.textContent = message; else notice(message);
  $(".field.invalid input, .field.invalid textarea, .field.invalid select", form)?.focus();
}

function clearOnEdit(form) {
  // A field's message goes once the person changes that field (the rest stay until sent).
  const clear = (e) => {
    const box = e.target.closest?.(".field.invalid");
    if (!box) return;
    box.classList.remove("invalid");
    $$("[data-error-for]", box).forEach((el) => { el.textContent = ""; });
    $$("[aria-invalid]", box).forEach((el) => el.removeAttribute("aria-invalid"));
  };
  form.addEventListener("input", clear);
  form.addEventListener("change", clear);
}

function field({ id, name, label, type = "text", required = false, hint = "", control = "", attrs = "" }) {
  // A labelled control with its error slot (named as the API names the field).
  const described = `e-${id}${hint ? ` h-${id}` : ""}`;
  const input = control || `<input type="${type}" id="${id}" name="${esc(name)}" aria-describedby="${described}"
    ${required ? 'required aria-required="true"' : ""} ${attrs}>`;
  return `<div class="field"><label for="${id}">${esc(label)}${required ? ' <span class="req" aria-hidden="true">*</span>' : ""}</label>
    ${input}${hint ? `<p class="hint small muted" id="h-${id}">${esc(hint)}</p>` : ""}
    <p class="error" id="e-${id}" data-error-for="${esc(name)}"></p></div>`;
}

function flagForm(button, patientId) {
  // A risk concern on any note, by hand: a reason is required; it is routed and escalated
  // like a positive PHQ-9 item 9. The reason stays in notes (never in an event).
  const box = $(".flag-form", button.closest(".note"));
  const id = button.dataset.note;
  box.innerHTML = `<form class="flag-new card" novalidate><h4>Flag a risk concern</h4>
    <p class="error" role="alert" data-error-summary></p>
    ${field({ id: `flag-reason-${id}`, name: "reason", label: "Why you are concerned", required: true, hint: "Seen by the care team and the duty clinician; kept in the notes service.",
      control: `<textarea id="flag-reason-${esc(id)}" name="reason" rows="3" required aria-required="true" aria-describedby="h-flag-reason-${esc(id)} e-flag-reason-${esc(id)}"></textarea>` })}
    ${field({ id: `flag-severity-${id}`, name: "severity", label: "Severity",
      control: `<select id="flag-severity-${esc(id)}" name="severity"><option value="1">1 · low</option><option value="2" selected>2 · moderate</option><option value="3">3 · high</option></select>` })}
    <div class="actions"><button class="danger">Raise a safety alert</button><button type="button" class="quiet flag-cancel">Cancel</button></div></form>`;
  const form = $("form", box);
  const key = newKey();
  clearOnEdit(form);
  $("textarea", form).focus();
  $(".flag-cancel", form).addEventListener("click", () => { box.innerHTML = ""; button.focus(); });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    clearErrors(form);
    const reason = $("textarea", form).value.trim();
    if (!reason) {
      showErrors(form, new ApiError(422, { errors: { reason: ["Say why: a risk concern needs its reason."] } }), { nothing: "No alert was raised." });
      return;
    }
    busy($("button", form), async () => {
      try {
        await call("POST", "notes", `/notes/${id}/safety-flag`, { reason, severity: Number($("select", form).value) }, { "Idempotency-Key": key });
      } catch (err) { showErrors(form, err, { nothing: "No alert was raised." }); return; }
      notice("Safety alert raised: the care team and the duty clinician are told now.", "ok");
      await pagePatient(patientId);
    });
  });
}

async function pagePatient(patientId) {
  const here = location.hash;
  patientId = decodeURIComponent(patientId);
  const [tl, , people, referrals] = await Promise.all([
    api("GET", "notes", `/patients/${encodeURIComponent(patientId)}/timeline?limit=200`),
    measures().catch(() => null),
    api("GET", "scheduling", "/providers").catch(() => []),
    api("GET", "referrals", `/referrals?patient_id=${encodeURIComponent(patientId)}&limit=5`).catch(() => ({ items: [] })),
  ]);
  names = new Map(people.map((p) => [p.id, p.name]));
  const patientName = referrals.items[0]?.patient?.name;
  const byId = new Map(tl.notes.map((n) => [n.id, n]));
  const main = tl.notes.filter((n) => n.kind !== "addendum");
  const canWrite = me.role === "specialist";
  const nrs = tl.trends.nrs_average?.points?.length ? tl.trends.nrs_average : tl.trends.nrs_current;
  const safetyDrawn = $("#patient-safety")?.innerHTML || "";
  setMain(here, `<div id="patient-safety">${safetyDrawn}</div>
    <h2>${esc(patientName || `Patient ${patientId}`)} <span class="small muted">· ${esc(patientId)} · timeline across the disciplines</span></h2>
    ${tl.access && tl.access !== "care_team" ? `<p class="notice">Access: ${esc(words(tl.access))}</p>` : ""}
    <div class="charts">
      <figure id="chart-nrs"><figcaption>${esc(nrs?.label || "NRS pain")} (0–10)${nrs?.meaningful ? ` · ${esc(words(nrs.meaningful))}` : ""}</figcaption>${lineChart(nrs, { max: 10, cls: "nrs", bands: shadedBands(nrs?.code || "nrs_average", ["severe"]) })}</figure>
      <figure id="chart-phq9"><figcaption>PHQ-9 (0–27)${tl.trends.phq9?.latest_band ? ` · latest ${esc(words(tl.trends.phq9.latest_band))}` : ""}</figcaption>${lineChart(tl.trends.phq9, { max: 27, cls: "phq9", bands: shadedBands("phq9", ["moderately_severe", "severe"]) })}</figure>
    </div>
    ${canWrite ? '<p><a href="#note-form" id="to-form">Write a note ↓</a></p>' : ""}
    <h3>Notes (${main.length})</h3><div id="timeline">${main.map((n) => noteCard(n, byId, canWrite)).join("") || '<p class="muted">No notes yet.</p>'}</div>
    ${canWrite ? noteForm(me.discipline) : ""}`,
  `Patient ${patientId}`);

  $("#to-form")?.addEventListener("click", (e) => { e.preventDefault(); $("#kind").focus(); });
  patientSafety(patientId);
  $("#m-dn4-form")?.addEventListener("change", (e) => {
    $("#m-dn4").placeholder = `0–${e.target.selectedOptions[0].dataset.max}`;
  });
  $$("#timeline .flag-risk").forEach((b) => b.addEventListener("click", () => flagForm(b, patientId)));
  const form = $("#note-form");
  if (form) {
    renderSections(form);
    $("#kind", form).addEventListener("change", () => renderSections(form));
    const save = async (sign, button) => busy(button, async () => {
      clearErrors(form);
      let note;
      try {
        note = await api("POST", "notes", `/patients/${encodeURIComponent(patientId)}/notes`, readNote(form));
      } catch (err) { showErrors(form, err); return; }
      if (sign) {
        try { await api("POST", "notes", `/notes/${note.id}/sign`); } catch (err) {
          notice(`The note was saved as a draft but not signed: ${explain(err)}`);
          await pagePatient(patientId);
          return;
        }
      }
      notice(`${sign ? "Note signed; the care team is told." : "Draft saved."}${note.safety_alert
        ? " PHQ-9 item 9 is positive: a safety alert is raised and the care team and the duty clinician are told now." : ""}`, "ok");
      await pagePatient(patientId);
    });
    form.addEventListener("submit", (e) => { e.preventDefault(); save(true, $("#save-sign")); });
    $("#save-draft").addEventListener("click", (e) => save(false, e.target));
  }
  $$("#timeline .sign").forEach((b) => b.addEventListener("click", () => busy(b, async () => {
    try { await api("POST", "notes", `/notes/${b.dataset.note}/sign`); notice("Note signed.", "ok"); } catch (err) { notice(explain(err)); }
    await pagePatient(patientId);
  })));
  $$("#timeline .add-addendum").forEach((b) => b.addEventListener("click", () => {
    const box = $(".addendum-form", b.closest(".note"));
    box.innerHTML = `<form class="addendum-new" novalidate><p class="error" role="alert" data-error-summary></p><div class="field"><label for="add-${esc(b.dataset.note)}">Addendum</label>
      <textarea id="add-${esc(b.dataset.note)}" name="text"></textarea><p class="error" data-error-for="text"></p></div>
      <div class="actions"><button>Sign the addendum</button></div></form>`;
    const f = $("form", box);
    $("textarea", f).focus();
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      clearErrors(f);
      busy($("button", f), async () => {
        let made;
        try { made = await api("POST", "notes", `/notes/${b.dataset.note}/addenda`, { text: $("textarea", f).value }); } catch (err) { showErrors(f, err); return; }
        try { await api("POST", "notes", `/notes/${made.id}/sign`); notice("Addendum signed.", "ok"); } catch (err) {
          notice(`The addendum was saved as a draft but not signed: ${explain(err)}`);
        }
        await pagePatient(patientId);
      });
    });
  }));
}

// ------------------------------------------------------------------ the instrument catalogue
// Question texts, bands and forms come from notes' GET /measures (one source of truth),
// fetched once per sign-in; the console keeps no copy of an instrument.
let catalogue = null;
async function measures() {
  if (!catalogue) catalogue = await api("GET", "notes", "/measures");
  return catalogue;
}
const instrument = (code) => (catalogue || []).find((i) => i.code === code);
const scoreDef = (code) => (catalogue || []).flatMap((i) => i.scores || []).find((s) => s.code === code);
function shadedBands(code, names) {
  // [lower, upper] of the named bands of a score, as the catalogue says them.
  // Whole-number bands (15-19, 20-27) are drawn edge to edge, up to the next one's start.
  const all = scoreDef(code)?.bands || [];
  return all.map((b, i) => [b.lower, all[i + 1] && all[i + 1].lower > b.upper ? all[i + 1].lower : b.upper, b.name])
    .filter(([, , name]) => names.includes(name));
}

// ------------------------------------------------------------------ safety alerts
const ACK_ACTIONS = [["risk_assessment", "Risk assessment done"], ["crisis_plan", "Crisis plan made or reviewed"],
  ["gp_informed", "GP informed"], ["crisis_team_informed", "Crisis team informed"], ["other", "Other (describe it)"]];
const CLOSE_REASONS = [["risk_managed", "Risk managed"], ["crisis_team_took_over", "Crisis team took over"],
  ["raised_in_error", "Raised in error"], ["patient_discharged", "Patient discharged"], ["other", "Other (describe it)"]];
const SOURCE_TEXT = { phq9_item9: "PHQ-9 item 9 (thoughts of self-harm) answered above 0", clinician_flag: "a risk concern flagged by a clinician" };
const canSeeAlerts = () => me && me.role === "specialist";

async function ensureNames() {
  if (names.size) return;
  const people = await api("GET", "scheduling", "/providers").catch(() => []);
  names = new Map(people.map((p) => [p.id, p.name]));
}
const personName = (id) => names.get(id) || (String(id).startsWith("role:") ? title(String(id).slice(5)) : id);

function choice(id, name, options, required = true) {
  return `<select id="${id}" name="${name}" aria-describedby="e-${id}" ${required ? 'required aria-required="true"' : ""}>
    <option value="">Choose…</option>${options.map(([v, t]) => `<option value="${esc(v)}">${esc(t)}</option>`).join("")}</select>`;
}

function alertCard(a, { patientLink = false, patientName = "" } = {}) {
  // An open alert: the red banner with its acknowledge form. An acknowledged one: a
  // quieter card with the close form. Free text shown only here (the service decided we may read it).
  const who = `${esc(dateTimeText(a.raised_at))} by ${esc(personName(a.raised_by))}`;
  const facts = `<p class="alert-facts">Severity <b>${esc(a.severity)} of 3</b> · ${esc(SOURCE_TEXT[a.source] || words(a.source))} ·
    raised ${who}${a.last_raised_at && a.last_raised_at !== a.raised_at ? ` · raised again ${esc(dateTimeText(a.last_raised_at))}` : ""} ·
    <b>${a.escalations ? `escalated ${a.escalations} time${a.escalations === 1 ? "" : "s"}` : "not escalated yet"}</b>
    ${a.next_escalation_at && a.status === "open" ? `(next ${esc(timeText(a.next_escalation_at))})` : ""}</p>
    ${a.flag_reason ? `<p class="alert-facts">Concern: ${esc(a.flag_reason)}</p>` : ""}
    ${patientLink ? `<p><a href="#/patient/${encodeURIComponent(a.patient_id)}">${esc(patientName || `Patient ${a.patient_id}`)}: timeline and notes</a></p>` : ""}`;
  if (a.status === "open") {
    return `<section class="safety-banner" role="alert" data-alert="${esc(a.id)}" aria-labelledby="t-${esc(a.id)}">
      <h3 id="t-${esc(a.id)}">Safety alert${patientLink ? ` · ${esc(patientName || a.patient_id)}` : ""}: not yet acknowledged</h3>${facts}
      <form class="ack-form" novalidate data-alert="${esc(a.id)}"><p class="error" role="alert" data-error-summary></p>
        <div class="inline">
          ${field({ id: `ack-action-${a.id}`, name: "action", label: "Action taken", required: true, control: choice(`ack-action-${a.id}`, "action", ACK_ACTIONS) })}
          <div class="other-detail" hidden>${field({ id: `ack-detail-${a.id}`, name: "detail", label: "What was done", required: true })}</div>
        </div>
        <div class="actions"><button class="danger">Acknowledge</button>
          <span class="small">Acknowledging stops the escalation; everyone told hears it is handled.</span></div></form></section>`;
  }
  if (a.status === "acknowledged") {
    return `<section class="card safety-acknowledged" data-alert="${esc(a.id)}"><h3>Safety alert acknowledged</h3>${facts}
      <p class="alert-facts">Acknowledged ${esc(dateTimeText(a.acknowledged_at))} by ${esc(personName(a.acknowledged_by))}:
        ${esc(title(a.acknowledged_action))}${a.acknowledged_detail ? ` (${esc(a.acknowledged_detail)})` : ""}</p>
      <form class="close-form" novalidate data-alert="${esc(a.id)}"><p class="error" role="alert" data-error-summary></p>
        <div class="inline">
          ${field({ id: `close-reason-${a.id}`, name: "reason", label: "Close because", required: true, control: choice(`close-reason-${a.id}`, "reason", CLOSE_REASONS) })}
          <div class="other-detail" hidden>${field({ id: `close-detail-${a.id}`, name: "detail", label: "Say why", required: true })}</div>
        </div>
        <div class="actions"><button class="secondary">Close the alert</button></div></form></section>`;
  }
  return "";
}

function wireAlertForms(box, after) {
  // Acknowledge and close: "other" needs its text; a 422 lands beside its field through
  // showErrors; one Idempotency-Key per form so a double click is one acknowledgement.
  for (const form of $$("form.ack-form, form.close-form", box)) {
    const acking = form.classList.contains("ack-form");
    const key = newKey();
    const select = $("select", form), other = $(".other-detail", form);
    clearOnEdit(form);
    select.addEventListener("change", () => { other.hidden = select.value !== "other"; });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const button = $("button", form);
      if (button.disabled) return;
      clearErrors(form);
      const field = acking ? "action" : "reason";
      const body = { [field]: select.value };
      const detail = $("input", other).value.trim();
      if (select.value === "other") body.detail = detail;
      const missing = {};
      if (!select.value) missing[field] = [acking ? "Choose the action taken." : "Choose why it is closed."];
      if (select.value === "other" && !detail) missing.detail = ["Say what: 'other' needs a description."];
      const nothing = acking ? "The alert was not acknowledged." : "The alert was not closed.";
      if (Object.keys(missing).length) { showErrors(form, new ApiError(422, { errors: missing }), { nothing }); return; }
      busy(button, async () => {
        try {
          await call("POST", "notes", `/safety-alerts/${form.dataset.alert}/${acking ? "acknowledge" : "close"}`, body, { "Idempotency-Key": key });
        } catch (err) { showErrors(form, err, { nothing }); return; }
        notice(acking ? "Safety alert acknowledged: the escalation stops and everyone told hears it is handled." : "Safety alert closed.", "ok");
        await after();
      });
    });
  }
}

async function homeSafety(here) {
  // The red banner on a care-team member's or the duty clinician's home page, and their
  // in-app feed with urgent items first.
  // Schedulers see their (the schedulers') feed only: alerts carry clinical detail.
  if (!me || !["specialist", "scheduler"].includes(me.role)) return;
  const box = $("#home-safety");
  if (!box) return;
  const alerts = canSeeAlerts();
  const [open, acked, feed] = await Promise.all([
    alerts ? api("GET", "notes", "/safety-alerts/mine").catch(() => []) : [],
    alerts ? api("GET", "notes", "/safety-alerts?status=acknowledged&limit=20").catch(() => []) : [],
    api("GET", "notifier", "/my/feed?limit=8").catch(() => null),
    ensureNames(),
  ]);
  if (location.hash !== here || !$("#home-safety")) return;
  const patients = new Map();
  await Promise.all([...new Set([...open, ...acked].map((a) => a.patient_id))].map(async (pid) => {
    const found = await api("GET", "referrals", `/referrals?patient_id=${encodeURIComponent(pid)}&limit=1`).catch(() => ({ items: [] }));
    patients.set(pid, found.items?.[0]?.patient?.name || "");
  }));
  if (location.hash !== here) return;
  box.innerHTML = [...open, ...acked].map((a) => alertCard(a, { patientLink: true, patientName: patients.get(a.patient_id) })).join("")
    + feedList(feed);
  wireAlertForms(box, () => homeSafety(here));
}

function feedList(feed) {
  if (!feed) return "";
  const urgentFirst = [...feed].sort((a, b) => (rankOf(a) - rankOf(b)));
  return `<details class="card feed" ${feed.some((i) => rankOf(i) === 0) ? "open" : ""}><summary>
    <svg class="bell" viewBox="0 0 24 24" aria-hidden="true"><path d="M12 22a2.5 2.5 0 0 0 2.4-2h-4.8a2.5 2.5 0 0 0 2.4 2zm7-6V11a7 7 0 0 0-5.5-6.8V3.5a1.5 1.5 0 0 0-3 0v.7A7 7 0 0 0 5 11v5l-2 2v1h18v-1z"/></svg> Messages (${feed.length}${feed.some((i) => rankOf(i) === 0) ? `, ${feed.filter((i) => rankOf(i) === 0).length} urgent` : ""})</summary>
    ${feed.length ? `<ul id="feed">${urgentFirst.map((i) => `<li class="feed-item ${rankOf(i) === 0 ? "urgent" : ""}">
      ${rankOf(i) === 0 ? '<span class="badge urgent">urgent</span> ' : ""}<b>${esc(i.subject)}</b>
      <span class="small muted">${esc(dateTimeText(i.sent_at))}${i.acknowledged_at ? " · acknowledged" : ""}</span>
      <div class="small">${esc(i.body)}</div></li>`).join("")}</ul>` : '<p class="muted">No messages.</p>'}</details>`;
}
const rankOf = (i) => (i.priority === "urgent" && !i.acknowledged_at ? 0 : 1);

async function patientSafety(patientId) {
  // Every alert of the patient not yet closed, on the timeline's page: open ones as the red banner.
  const box = $("#patient-safety");
  if (!box || !canSeeAlerts()) return;
  const here = location.hash;
  let alerts = [];
  try {
    alerts = await api("GET", "notes", `/safety-alerts?patient_id=${encodeURIComponent(patientId)}&limit=50`);
  } catch (err) {
    if (err.status !== 403) box.innerHTML = `<p class="notice">Safety alerts could not be read: ${esc(explain(err))}</p>`;
    return;
  }
  if (location.hash !== here || !$("#patient-safety")) return;
  const live = alerts.filter((a) => a.status !== "closed").sort((a, b) => (a.status === "open" ? 0 : 1) - (b.status === "open" ? 0 : 1));
  box.innerHTML = live.map((a) => alertCard(a)).join("");
  // the whole page again: each note's alert badge changes with the alert
  wireAlertForms(box, () => pagePatient(patientId));
}

// ------------------------------------------------------------------ admin: the duty rota
async function pageRota() {
  const here = location.hash;
  if (me.role !== "admin") {
    setMain(here, '<h2>Duty rota</h2><p class="notice">The duty rota is set by the clinic\'s administrators.</p>', "Duty rota");
    return;
  }
  const first = todayLocal(), last = addDays(first, 27);
  const [rota, people, today] = await Promise.all([
    api("GET", "notes", `/duty-rota?from=${first}&to=${last}`),
    api("GET", "scheduling", "/providers").catch(() => []),
    api("GET", "notes", "/duty-rota/today").catch(() => null),
  ]);
  const byDay = new Map(rota.map((r) => [r.date, r]));
  const clinicians = people.filter((p) => p.active !== false)
    .sort((a, b) => DISCIPLINES.indexOf(a.discipline) - DISCIPLINES.indexOf(b.discipline) || a.name.localeCompare(b.name));
  const days = Array.from({ length: 28 }, (_, i) => addDays(first, i));
  setMain(here, `<h2>Duty rota</h2>
    <p class="muted">Who is the duty clinician each day for the next four weeks: a safety alert reaches them at once (SMS,
      email and in the app). A day with no one falls back to the triage lead.</p>
    ${today ? `<p class="card">Today: <b>${today.on_rota ? esc(today.name) : "no one on the rota"}</b>${today.on_rota ? "" : ` · alerts reach ${esc(personName(today.recipient.recipient_id))}`}</p>` : ""}
    <div class="table-wrap"><table id="rota"><thead><tr><th>Day</th><th>On duty</th><th>Change</th></tr></thead><tbody>
    ${days.map((d) => { const r = byDay.get(d); return `<tr data-day="${d}" class="${r ? "" : "no-duty"}">
      <td>${esc(dateText(`${d}T12:00:00Z`))}</td>
      <td class="on-duty">${r ? `<b>${esc(r.name)}</b> <span class="small muted">set by ${esc(r.set_by)}</span>` : '<span class="muted">no one: the triage lead</span>'}</td>
      <td><form class="rota-form inline" novalidate data-day="${d}"><p class="error" role="alert" data-error-summary></p>
        <div class="field"><label class="visually-hidden" for="rota-${d}">Duty clinician on ${esc(dateText(`${d}T12:00:00Z`))}</label>
          <select id="rota-${d}" name="clinician_id" aria-describedby="e-rota-${d}"><option value="">Choose…</option>
          ${clinicians.map((p) => `<option value="${esc(p.id)}" ${r?.clinician_id === p.id ? "selected" : ""}>${esc(p.name)} (${esc(words(p.discipline))})</option>`).join("")}</select>
          <p class="error" id="e-rota-${d}" data-error-for="clinician_id"></p><p class="error" data-error-for="name"></p><p class="error" data-error-for="date"></p></div>
        <button class="compact">Set</button>${r ? '<button type="button" class="secondary compact clear-duty">Clear</button>' : ""}</form></td></tr>`; }).join("")}
    </tbody></table></div>`, "Duty rota");
  $$("#rota form.rota-form").forEach((form) => {
    clearOnEdit(form);
    const day = form.dataset.day;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      clearErrors(form);
      const id = $("select", form).value;
      if (!id) { showErrors(form, new ApiError(422, { errors: { clinician_id: ["Choose who is on duty."] } })); return; }
      const person = clinicians.find((p) => p.id === id);
      busy($("button", form), async () => {
        try { await api("PUT", "notes", `/duty-rota/${day}`, { clinician_id: id, name: person?.name || id }); } catch (err) { showErrors(form, err); return; }
        notice(`${person?.name || id} is on duty on ${dateText(`${day}T12:00:00Z`)}.`, "ok");
        await pageRota();
      });
    });
    $(".clear-duty", form)?.addEventListener("click", (e) => busy(e.target, async () => {
      try { await api("DELETE", "notes", `/duty-rota/${day}`); } catch (err) { showErrors(form, err); return; }
      notice(`No one is on duty on ${dateText(`${day}T12:00:00Z`)}: alerts reach the triage lead.`, "ok");
      await pageRota();
    }));
  });
}

// ------------------------------------------------------------------ start
async function start() {
  try { config = { ...config, ...(await (await fetch("/auth/config")).json()) }; } catch { /* defaults */ }
  try { await finishProviderSignIn(); } catch { carried = ["The sign-in could not be completed; please try again."]; }
  $("#signout").addEventListener("click", () => signOutEverywhere());
  $("#skip").addEventListener("click", (e) => { e.preventDefault(); $("#main").focus(); });
  window.addEventListener("hashchange", () => {
    const [message, kind] = carried || [""];
    carried = null;
    notice(message, kind);
    route();
  });
  const early = carried;  // a sign-in that came back refused says why
  carried = null;
  route();
  if (early) notice(...early);
}

start();
