// The cashier station. Every action is one POST to /cage/... with the CSRF token; the server's
// services decide; this script only shows what they said. Money arrives and leaves as integer cents
// (amounts typed by the cashier go up as the typed string and are parsed on the server).
"use strict";

const $ = id => document.getElementById(id);
const CSRF = document.querySelector("meta[name=csrf-token]").content;

function money(cents) {
  const sign = cents < 0 ? "-" : "";
  const a = Math.abs(cents);
  const dollars = Math.floor(a / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${sign}$${dollars}.${String(a % 100).padStart(2, "0")}`;
}
const groups = n => n.length === 18 ? [n.slice(0, 2), n.slice(2, 6), n.slice(6, 10), n.slice(10, 14), n.slice(14)].join("-") : n;

const REASONS = {
  voucher_redeemed: "Already redeemed: nothing paid.",
  voucher_pending: "In use at a terminal right now: nothing paid. Try again in a moment.",
  voucher_expired: "Expired: nothing paid. A manager must reinstate it first.",
  voucher_voided: "Voided: nothing paid.",
  voucher_not_found: "No such voucher.",
  invalid_validation_number: "A validation number is 18 digits.",
  drawer_not_open: "Open a drawer first.",
  drawer_already_open: "You already have an open drawer.",
  drawer_closed: "This drawer is already closed.",
  handpay_paid: "This handpay is already paid.",
  handpay_void: "This handpay was voided.",
};
const STATE_TEXT = {issued: "payable", pending: "pending", redeemed: "redeemed", voided: "voided", expired: "expired",
                    not_found: "not found"};

async function call(method, url, body) {
  const opts = {method, credentials: "same-origin", headers: {"Accept": "application/json"}};
  if (method !== "GET") {
    opts.headers["X-CSRFToken"] = CSRF;
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body || {});
  }
  let r;
  try {
    r = await fetch(url, opts);
  } catch (e) {
    return {ok: false, status: 0, error: {code: "offline", message: "No connection to the host; nothing was done."}};
  }
  if (r.status === 401) { location.href = "/login?next=/cage"; return {ok: false, status: 401, error: {}}; }
  let data = null;
  try { data = await r.json(); } catch (e) { /* a CSRF refusal is an HTML page */ }
  if (r.ok) return {ok: true, status: r.status, data};
  const error = (data && data.error) || {code: "http_" + r.status,
    message: r.status === 400 ? "The page has expired: reload it." : "Refused (" + r.status + ")."};
  return {ok: false, status: r.status, error};
}
const reason = e => REASONS[e.code] || e.message || e.code;

function say(el, text, kind) {
  const p = $(el);
  p.textContent = text || "";
  p.className = "msg" + (kind ? " " + kind : "");
}

// ---- drawer ----------------------------------------------------------------------------------

let drawer = null;
let drawerEpoch = 0;  // bumped by every action that shows a fresher drawer than a poll in flight

function showDrawer(d, fromPoll) {
  if (!fromPoll) drawerEpoch++;
  drawer = d;
  $("open-form").hidden = !!d;
  $("drawer-open").hidden = !d;
  if (!d) return;
  $("d-id").textContent = "#" + d.id + " · " + d.cashier;
  $("d-opened").textContent = d.opened_at_local;
  $("d-float").textContent = money(d.opening_cents);
  $("d-expected").textContent = money(d.expected_cents);
  $("d-expected").dataset.cents = d.expected_cents;
  const rows = d.transactions.map(t => {
    const tr = document.createElement("tr");
    tr.innerHTML = "<td></td><td></td><td></td><td class='num'></td>";
    const cells = tr.children;
    cells[0].textContent = t.at_local;
    cells[1].textContent = t.kind.replace("_", " ");
    cells[2].textContent = t.ref.length === 18 ? groups(t.ref) : t.ref;
    cells[3].textContent = money(t.amount_cents);
    cells[3].className = "num " + (t.amount_cents < 0 ? "neg" : "pos");
    return tr;
  });
  $("tx").tBodies[0].replaceChildren(...rows);
}

$("open-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const r = await call("POST", "/cage/drawer", {opening: $("float").value});
  if (!r.ok) { say("d-msg", reason(r.error), "bad"); $("float").focus(); return; }
  $("float").value = "";
  $("closed").hidden = true;
  showDrawer(r.data.drawer);
  say("d-msg", "Drawer opened with " + money(r.data.drawer.opening_cents) + ".", "ok");
  focusScan();
});

$("close-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  if (!drawer) return;
  const r = await call("POST", `/cage/drawer/${drawer.id}/close`, {counted: $("counted").value});
  if (!r.ok) { say("d-msg", reason(r.error), "bad"); $("counted").focus(); return; }
  const c = r.data.closed;
  $("counted").value = "";
  $("c-title").textContent = `Drawer #${c.id} closed ${c.closed_at.slice(0, 19).replace("T", " ")} UTC`;
  $("c-expected").textContent = money(c.expected_cents);
  $("c-counted").textContent = money(c.counted_cents);
  $("c-variance").textContent = (c.variance_cents > 0 ? "+" : "") + money(c.variance_cents);
  $("c-variance").className = c.variance_cents < 0 ? "neg" : c.variance_cents > 0 ? "pos" : "";
  $("closed").hidden = false;
  showDrawer(null);
  say("d-msg", c.variance_cents === 0 ? "Drawer closed: it balances." : "Drawer closed with a variance.",
      c.variance_cents === 0 ? "ok" : "warn");
  $("float").focus();
});

// ---- voucher lookup and pay --------------------------------------------------------------------

let current = null;   // the voucher on screen
let busy = false;     // a lookup or a payment is in flight: further Enters wait for it

function focusScan() { $("scan").focus(); $("scan").select(); }

function showVoucher(v) {
  current = v;
  $("voucher").hidden = !v;
  if (!v) return;
  $("v-amount").textContent = money(v.amount_cents);
  $("v-state").textContent = STATE_TEXT[v.state] || v.state;
  $("v-state").dataset.state = v.state;
  $("v-type").textContent = v.credit_type === "promo" ? "promo" : "cashable";
  $("v-number").textContent = groups(v.validation_number);
  $("v-issued").textContent = `${v.issued_at_local} by ${v.issued_source === "terminal" ? "terminal" : "cashier"} ${v.issued_by}`;
  $("v-expires").textContent = v.expires_at_local;
  const redeemed = !!v.redeemed_at_local;
  $("v-redeemed-l").hidden = $("v-redeemed").hidden = !redeemed;
  if (redeemed) $("v-redeemed").textContent = `${v.redeemed_at_local} by ${v.redeemed_by}`;
  $("v-pay").disabled = !v.payable;
  $("v-pay").textContent = v.payable ? "Pay " + money(v.amount_cents) + " (Enter)" : "Not payable";
  $("v-pdf").href = v.pdf;
}

function notPayableText(v) {
  if (v.state === "redeemed") return `Already redeemed ${v.redeemed_at_local} by ${v.redeemed_by}: do not pay.`;
  if (v.state === "pending") return `Held by terminal ${v.held_by || ""} right now: do not pay.`;
  if (v.state === "expired") return "Expired: a manager must reinstate it before it can be paid.";
  if (v.state === "voided") return "Voided: do not pay.";
  return "";
}

async function lookup(vn) {
  busy = true;
  say("v-msg", "Looking up…");
  const r = await call("GET", "/cage/vouchers/" + vn);
  busy = false;
  if (!r.ok) {
    showVoucher(null);
    $("voucher").hidden = true;
    say("v-msg", (r.error.code === "voucher_not_found" ? `No voucher ${groups(vn)}.` : reason(r.error)), "bad");
    focusScan();
    return;
  }
  showVoucher(r.data);
  $("scan").select();  // Enter pays this one; the next scan types over it
  if (r.data.payable) say("v-msg", "Payable. Enter or Pay to pay it from your drawer.", "ok");
  else say("v-msg", notPayableText(r.data), r.data.state === "redeemed" || r.data.state === "voided" ? "bad" : "warn");
}

async function pay() {
  if (!current || !current.payable || busy) return;
  busy = true;
  $("v-pay").disabled = true;
  const vn = current.validation_number;
  const r = await call("POST", `/cage/vouchers/${vn}/pay`);
  busy = false;
  if (!r.ok) {
    if ((r.error.code || "").startsWith("voucher_")) await lookup(vn);  // show what the voucher is now
    else if (current) $("v-pay").disabled = !current.payable;
    say("v-msg", reason(r.error), "bad");
    return;
  }
  showVoucher(r.data.voucher);
  current = null;  // the next Enter on this number looks it up again, it never pays twice
  showDrawer(r.data.drawer);
  say("v-msg", `Paid ${money(r.data.voucher.amount_cents)}: voucher ${groups(vn)}.`, "ok");
  $("scan").value = "";
  $("scan").focus();
}

$("scan").addEventListener("keydown", ev => {
  if (ev.key !== "Enter") return;
  ev.preventDefault();
  if (busy) return;
  const vn = $("scan").value.replace(/\D/g, "");
  if (!vn) return;
  if (vn.length !== 18) { say("v-msg", "A validation number is 18 digits; this has " + vn.length + ".", "bad"); return; }
  if (current && current.validation_number === vn && current.payable) pay();
  else lookup(vn);
});
$("v-pay").addEventListener("click", pay);

// ---- issue -------------------------------------------------------------------------------------

$("issue-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const r = await call("POST", "/cage/vouchers", {amount: $("issue-amount").value, credit_type: $("issue-type").value});
  if (!r.ok) { say("i-msg", reason(r.error), "bad"); $("issue-amount").focus(); return; }
  const v = r.data.voucher;
  $("issue-amount").value = "";
  $("i-amount").textContent = money(v.amount_cents) + (v.credit_type === "promo" ? " promo" : "");
  $("i-number").textContent = groups(v.validation_number);
  $("i-number").dataset.number = v.validation_number;
  $("i-pdf").href = v.pdf;
  $("issued").hidden = false;
  showDrawer(r.data.drawer);
  say("i-msg", "Issued. Print it and hand it over.", "ok");
  $("i-pdf").focus();
});

// ---- handpays ----------------------------------------------------------------------------------

let handpays = [];
let paying = null;  // the handpay in the pay form
let handpaysKey = "";

function showHandpays(list) {
  const key = JSON.stringify(list);
  if (key === handpaysKey) return;  // unchanged: keep focus and selection where they are
  handpaysKey = key;
  handpays = list;
  const body = $("hp-table").tBodies[0];
  if (!list.length) {
    body.innerHTML = "<tr><td colspan='7' class='muted'>No pending handpays.</td></tr>";
  } else {
    body.replaceChildren(...list.map(h => {
      const tr = document.createElement("tr");
      tr.dataset.id = h.id;
      tr.dataset.slip = h.slip_number;
      tr.innerHTML = "<td></td><td></td><td class='num'></td><td></td><td></td><td></td>" +
        "<td><button type='button' class='pay'>Pay</button> <a class='slip' target='_blank' rel='noopener'>Slip</a></td>";
      const c = tr.children;
      c[0].textContent = h.slip_number;
      c[1].textContent = h.egm_id;
      c[2].textContent = money(h.amount_cents);
      c[3].textContent = h.kind.replace("_", " ");
      if (h.flagged) {  // e.g. an excluded player's card was presented (players, rules.md 20)
        const f = document.createElement("b");
        f.className = "flagged";
        f.textContent = " ⚑ " + h.flagged.replaceAll("_", " ");
        c[3].append(f);
      }
      c[4].textContent = h.tax_form_required ? "required" : "no";
      c[5].textContent = h.created_at_local.slice(11);
      tr.querySelector("a.slip").href = h.pdf;
      tr.querySelector("button.pay").addEventListener("click", () => openPay(h));
      if (paying && paying.id === h.id) tr.classList.add("sel");
      return tr;
    }));
  }
  if (paying && !list.some(h => h.id === paying.id)) closePay();
}

function openPay(h) {
  paying = h;
  $("hp-form").reset();
  $("hp-form").hidden = false;
  $("hp-title").textContent = `Slip ${h.slip_number} · ${h.egm_id} · ${money(h.amount_cents)}`;
  const needs = [];
  if (h.tax_form_required) needs.push("the patron's identity (W-2G)");
  if (h.needs_second_signer) needs.push("a second signer");
  $("hp-needs").textContent = needs.length ? "Needs " + needs.join(" and ") + "." : "No patron form or second signer needed.";
  $("hp-patron").hidden = false;
  $("hp-signer").hidden = !h.needs_second_signer;
  $("hp-slip").href = h.pdf;
  say("hp-msg", "");
  for (const tr of $("hp-table").tBodies[0].rows) tr.classList.toggle("sel", tr.dataset.id == h.id);
  (h.tax_form_required ? $("hp-first") : $("hp-submit")).focus();
}

function closePay() {
  paying = null;
  $("hp-form").hidden = true;
  for (const tr of $("hp-table").tBodies[0].rows) tr.classList.remove("sel");
}

$("hp-cancel").addEventListener("click", () => { closePay(); focusScan(); });

$("hp-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  if (!paying) return;
  const f = $("hp-form").elements;
  const patron = {};
  for (const k of ["first_name", "last_name", "birth_date", "id_type", "id_number", "address"]) patron[k] = f[k].value.trim();
  const typed = ["first_name", "last_name", "birth_date", "id_number", "address"].some(k => patron[k]);
  const body = {};
  if (paying.tax_form_required || typed) body.patron = patron;
  if (paying.needs_second_signer) body.second_signer = {username: f.username.value.trim(), password: f.password.value};
  $("hp-submit").disabled = true;
  const r = await call("POST", `/cage/handpays/${paying.id}/pay`, body);
  $("hp-submit").disabled = false;
  if (!r.ok) {
    say("hp-msg", reason(r.error), "bad");
    return;
  }
  const h = r.data.handpay;
  closePay();
  showDrawer(r.data.drawer);
  say("d-msg", `Handpay slip ${h.slip_number} paid: ${money(h.amount_cents)}` +
      (r.data.w2g_id ? " · W-2G recorded" : "") + ".", "ok");
  refresh();
  focusScan();
});

// ---- keys and polling --------------------------------------------------------------------------

document.addEventListener("keydown", ev => {
  if (ev.key === "Escape") {
    if (paying) closePay();
    showVoucher(null);
    say("v-msg", "");
    $("scan").value = "";
    $("scan").focus();
  } else if (ev.key === "F2") { ev.preventDefault(); focusScan(); }
  else if (ev.key === "F3") { ev.preventDefault(); $("issue-amount").focus(); }
  else if (ev.key === "F4") {
    ev.preventDefault();
    const b = $("hp-table").querySelector("button.pay");
    if (b) b.focus();
  } else if (ev.key === "F8") { ev.preventDefault(); if (drawer) $("counted").focus(); }
});

async function refresh() {
  const epoch = drawerEpoch;
  const r = await call("GET", "/cage/state.json");
  if (!r.ok) return;
  const first = drawer === null && $("open-form").hidden && $("drawer-open").hidden;
  // An action answered while this poll was out: its drawer is newer than the poll's.
  if (!busy && epoch === drawerEpoch) showDrawer(r.data.drawer, true);
  showHandpays(r.data.handpays);
  if (first) (r.data.drawer ? $("scan") : $("float")).focus();
}

refresh();
setInterval(refresh, 3000);
