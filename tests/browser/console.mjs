// Drives the analyst console in a real headless Chromium: log in, the queue
// by money at risk, why a payout was held, a large release waiting for a
// lead's approval from a second browser session, a campaign confirmed, all
// of a campaign's holds released by an analyst's request and a lead's
// approval in two sessions, the campaign's link graph (drawn, and reached
// and followed with the keyboard), the audit trail, CSRF and role refusals,
// hostile account ids shown as text.
// Screenshots go to SHOTS (docs/img when run by scripts/browser-tests.sh).
//
// Needs: BASE (the server), CHROMIUM (the browser's path), SHOTS, and the
// users created by the runner (PASSWORD).
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const { BASE, CHROMIUM, SHOTS, PASSWORD } = process.env;
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
const failures = [];
let checks = 0;

async function check(name, body) {
  try {
    await body();
    checks += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failures.push(name);
    console.log(`FAIL ${name}\n     ${e.message.split("\n").join("\n     ")}`);
  }
}

/** A browser session of its own (cookies not shared), logged in as `name`. */
async function session(name) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const page = await context.newPage();
  page.on("dialog", (d) => {
    failures.push(`a dialog opened: ${d.message()}`);
    d.dismiss();
  });
  await page.goto(`${BASE}/console/login`);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Password").fill(PASSWORD);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  if (!page.url().endsWith("/console/queue")) {
    throw new Error(`login as ${name} failed: ${(await page.content()).slice(0, 600)}`);
  }
  return { context, page };
}

const amounts = (page) =>
  page.$$eval("tbody tr td.num a", (cells) =>
    cells.map((c) => Number(c.textContent.replace(/[^0-9.]/g, ""))),
  );

const ana = await session("ana");

await check("the queue is ordered by money at risk and says why", async () => {
  const list = await amounts(ana.page);
  assert.ok(list.length >= 3, `rows: ${list}`);
  assert.deepEqual(list, [...list].sort((a, b) => b - a));
  const why = await ana.page.locator("ul.why").first().innerText();
  assert.match(why, /destination/);
  await ana.page.screenshot({ path: `${SHOTS}/console-queue.png`, fullPage: true });
});

await check("a hold shows why it was held", async () => {
  await ana.page.click("text=9,000.00 GBP");
  await ana.page.waitForURL(/\/console\/holds\/large\/p1$/);
  assert.match(await ana.page.innerText("main"), /payout_while_account_at_risk/);
  await ana.page.screenshot({ path: `${SHOTS}/console-hold.png`, fullPage: true });
});

await check("a large release waits for a lead", async () => {
  await ana.page.locator("form[action$='/release'] textarea").fill("owner called from the known number");
  await ana.page.click("text=Ask a lead to release");
  assert.match(await ana.page.innerText(".notice"), /waits for a lead/);
});

await check("a second session (a lead) approves; the hold is released", async () => {
  const lea = await session("lea");
  await lea.page.goto(`${BASE}/console/approvals`);
  await lea.page.screenshot({ path: `${SHOTS}/console-approvals.png`, fullPage: true });
  await lea.page.locator("form[action$='/approve'] input[name=reason]").first().fill("called the seller back");
  await lea.page.click("text=Approve and release");
  assert.match(await lea.page.innerText(".notice"), /approved/);
  await lea.page.goto(`${BASE}/console/holds/large/p1`);
  assert.match(await lea.page.innerText("dl.facts"), /released/);
  await lea.context.close();
});

await check("an analyst confirms the campaign", async () => {
  await ana.page.goto(`${BASE}/console/campaigns/cmp_1`);
  await ana.page.locator("form[action$='/confirm'] textarea").fill("same mule account");
  await ana.page.click("button:has-text('Confirm')");
  assert.match(await ana.page.innerText("dl.facts"), /confirmed/);
});

await check("a hold leads to its case, which takes a note", async () => {
  await ana.page.goto(`${BASE}/console/holds/middle/p1`);
  await ana.page.click("dl.facts a[href^='/console/cases/']");
  assert.match(await ana.page.innerText("h1"), /^Case case-/);
  await ana.page.locator("form[action$='/notes'] textarea").fill("called the seller: not them");
  await ana.page.click("form[action$='/notes'] button");
  assert.ok((await ana.page.innerText("ul.notes")).includes("called the seller: not them"));
  await ana.page.screenshot({ path: `${SHOTS}/console-case.png`, fullPage: true });
});

await check("search finds the accounts on the attacker's network", async () => {
  await ana.page.goto(`${BASE}/console/search?q=185.220.`);
  for (const account of ["small", "large", "middle"]) {
    assert.equal(await ana.page.locator(`main a[href='/console/accounts/${account}']`).count(), 1, account);
  }
  await ana.page.screenshot({ path: `${SHOTS}/console-search.png`, fullPage: true });
});

await check("a post without the CSRF token is refused", async () => {
  const answer = await ana.context.request.post(`${BASE}/console/holds/small/p1/release`, {
    form: { reason: "no token" },
  });
  assert.equal(answer.status(), 403);
});

await check("an analyst cannot approve, a viewer cannot act", async () => {
  await ana.page.goto(`${BASE}/console/approvals`);
  assert.equal(await ana.page.locator("text=Approve and release").count(), 0);
  const vera = await session("vera");
  await vera.page.goto(`${BASE}/console/holds/small/p1`);
  assert.equal(await vera.page.locator("form[action$='/release']").count(), 0);
  const csrf = await vera.page.inputValue("header input[name=csrf]");
  const answer = await vera.context.request.post(`${BASE}/console/holds/small/p1/release`, {
    form: { reason: "viewer", csrf },
  });
  assert.equal(answer.status(), 403);
  await vera.context.close();
});

await check("hostile account ids render as text", async () => {
  await ana.page.goto(`${BASE}/console/queue`);
  const text = await ana.page.innerText("main");
  assert.ok(text.includes("<script>alert(1)</script>"), "shown as text");
  assert.equal(await ana.page.locator("main img").count(), 0);
});

await check("the campaign graph draws every victim and the mule, each node a link the keyboard reaches", async () => {
  await ana.page.goto(`${BASE}/console/campaigns/cmp_1`);
  const graph = ana.page.locator("main figure.links svg");
  assert.ok(await graph.isVisible(), "the graph is visible");
  const box = await graph.boundingBox();
  assert.ok(box && box.width > 300 && box.height > 50, `drawn: ${JSON.stringify(box)}`);
  // Five victims (two with hostile ids, shown as text) and the mule they share.
  const accounts = graph.locator("a.node.account");
  assert.equal(await accounts.count(), 5);
  assert.equal(await graph.locator("a.node.destination").count(), 1);
  assert.equal(await graph.locator("line").count(), 5 + 2 * 3);
  const labels = await accounts.locator("text").allTextContents();
  assert.ok(labels.includes("<script>alert(1)</script>"), `labels: ${labels}`);
  for (const kind of ["device", "ip", "network"]) {
    assert.equal(await graph.locator(`a.node.${kind}`).count(), 1, kind);
  }
  await ana.page.locator("main figure.links").screenshot({ path: `${SHOTS}/console-campaign-graph.png` });
  // Reached with the keyboard: Tab from the figure's heading lands on a node.
  const first = graph.locator("a.node").first();
  await first.focus();
  assert.ok(await first.evaluate((a) => document.activeElement === a), "a node takes the focus");
  await ana.page.keyboard.press("Tab");
  assert.ok(
    await ana.page.evaluate(() => document.activeElement.matches("figure.links a.node")),
    "Tab moves to the next node",
  );
  // Enter follows the focused account node to its page.
  const target = await accounts.nth(0).getAttribute("href");
  await accounts.nth(0).focus();
  await Promise.all([ana.page.waitForURL((url) => url.pathname === target), ana.page.keyboard.press("Enter")]);
  assert.match(await ana.page.innerText("h1"), /^Account /);
});

await check("an analyst asks to release a whole campaign; a lead approves in another session", async () => {
  await ana.page.goto(`${BASE}/console/campaigns/cmp_1`);
  // The institution's burst, drawn on the server: one bar per day.
  assert.equal(await ana.page.locator("main figure.burst svg rect.all").count(), 7);
  await ana.page.locator("form[action$='/release-all'] textarea").fill("the sellers confirmed by phone");
  await ana.page.click("text=Ask a lead to release all");
  assert.match(await ana.page.innerText(".notice"), /waits for a lead/);
  assert.match(await ana.page.innerText("dl.facts"), /Open holds\s+4 /);
  await ana.page.screenshot({ path: `${SHOTS}/console-campaign.png`, fullPage: true });
  // The analyst is offered no approval of her own request.
  await ana.page.goto(`${BASE}/console/approvals`);
  assert.equal(await ana.page.locator("form[action$='/approve']").count(), 0);
  const lea = await session("lea");
  await lea.page.goto(`${BASE}/console/approvals`);
  const row = lea.page.locator("tr", { hasText: "release every open hold of campaign" });
  await row.locator("form[action$='/approve'] input[name=reason]").fill("checked the calls");
  await row.locator("button", { hasText: "Approve and release" }).click();
  assert.match(await lea.page.innerText(".notice"), /4 of 4 holds released/);
  for (const account of ["small", "middle"]) {
    await lea.page.goto(`${BASE}/console/holds/${account}/p1`);
    assert.match(await lea.page.innerText("dl.facts"), /released/, account);
  }
  await lea.context.close();
});

await check("the audit trail shows the request and the approval", async () => {
  const adm = await session("adm");
  await adm.page.goto(`${BASE}/console/audit`);
  const text = await adm.page.innerText("main");
  for (const action of ["release_requested", "release_approved", "campaign_confirmed",
                        "campaign_release_requested", "campaign_release_approved", "login"]) {
    assert.ok(text.includes(action), action);
  }
  await adm.page.screenshot({ path: `${SHOTS}/console-audit.png`, fullPage: true });
  await adm.context.close();
});

await browser.close();
console.log(`${checks} checks passed, ${failures.length} failed`);
if (failures.length > 0) {
  console.log(failures.join("\n"));
  process.exit(1);
}
