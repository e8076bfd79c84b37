// The console in Firefox (Debian's firefox-esr, driven over WebDriver BiDi
// by puppeteer-core), with the keyboard only where a person would use it:
// log in, the queue by money at risk, a hold and why it was held, its case
// and a note added through a form (cookie, CSRF token and POST as Firefox
// sends them), hostile ids as text, the campaign graph followed from the
// keyboard, a post without the CSRF token refused,
// a viewer refused, log out. The Chromium suite (console.mjs) covers the
// rest; this one proves the pages do not depend on one engine.
//
// Runs before console.mjs on the same server and data (which releases the
// holds read here); the only change it makes is a note on a case.
//
// Needs: BASE (the server), FIREFOX (the browser's path), PASSWORD.
import puppeteer from "puppeteer-core";
import assert from "node:assert/strict";

const { BASE, FIREFOX, PASSWORD } = process.env;
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: FIREFOX,
  headless: true,
  // A profile of its own per run; no first-run pages, no updates.
  extraPrefsFirefox: { "browser.shell.checkDefaultBrowser": false, "app.update.enabled": false },
});
const failures = [];
let checks = 0;

async function check(name, body) {
  try {
    await body();
    checks += 1;
    console.log(`ok   ${name} (firefox)`);
  } catch (e) {
    failures.push(name);
    console.log(`FAIL ${name} (firefox)\n     ${String(e.message).split("\n").join("\n     ")}`);
  }
}

const text = (page, selector) => page.$eval(selector, (e) => e.innerText);

/** Presses Tab until the focused element matches `selector` (at most 60 times). */
async function tabTo(page, selector) {
  const focused = () => page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector);
  for (let i = 0; i < 60; i += 1) {
    if (await focused()) {
      return;
    }
    await page.keyboard.press("Tab");
  }
  throw new Error(`the keyboard never reached ${selector}`);
}

/**
 * Polls `condition` (an async function; a throw counts as not yet, as while
 * a page is replaced) for up to 20 s; fails naming `what`, the page's
 * address and the focused element.
 */
async function until(page, what, condition) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      if (await condition()) {
        return;
      }
    } catch {
      // The page is being replaced; try again.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const focused = await page
    .evaluate(() => document.activeElement?.outerHTML.slice(0, 120) ?? "none")
    .catch((e) => `unknown (${e.message})`);
  throw new Error(`${what}: not after 20 s, at ${page.url()}, focus on ${focused}`);
}

/** A session of its own (cookies not shared), logged in as `name` with the keyboard. */
async function session(name) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1366, height: 800 });
  await page.goto(`${BASE}/console/login`);
  await tabTo(page, "input[name=name]");
  await page.keyboard.type(name);
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  if (!page.url().endsWith("/console/queue")) {
    throw new Error(`login as ${name} failed at ${page.url()}`);
  }
  return { context, page };
}

/** The session cookie of a page, for requests sent around the browser. */
async function cookieHeader(page) {
  const cookies = await page.cookies();
  return cookies.map((c) => `${c.name}=${c.value}`).join("; ");
}

let ana;
await check("log in with the keyboard", async () => {
  ana = await session("ana");
  const cookies = await ana.page.cookies();
  const console = cookies.find((c) => c.httpOnly);
  assert.ok(console, `an HttpOnly session cookie: ${JSON.stringify(cookies)}`);
  assert.equal(console.sameSite, "Strict");
});

if (ana) {
  const { page } = ana;

  await check("the queue is ordered by money at risk and says why", async () => {
    const list = await page.$$eval("tbody tr td.num a", (cells) =>
      cells.map((c) => Number(c.textContent.replace(/[^0-9.]/g, ""))),
    );
    assert.ok(list.length >= 1, `rows: ${list}`);
    assert.deepEqual(list, [...list].sort((a, b) => b - a));
    assert.match(await text(page, "ul.why"), /destination/);
  });

  await check("a hold opens from the keyboard and says why it was held", async () => {
    await tabTo(page, "a[href='/console/holds/middle/p1']");
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
    assert.ok(page.url().endsWith("/console/holds/middle/p1"), page.url());
    assert.match(await text(page, "main"), /payout_while_account_at_risk/);
  });

  await check("the hold's case takes a note through its form", async () => {
    const caseLink = await page.$eval("dl.facts a[href^='/console/cases/']", (a) => a.href);
    await page.goto(caseLink);
    await page.focus("form[action$='/notes'] textarea");
    await page.keyboard.type("left a voicemail for the seller");
    await tabTo(page, "form[action$='/notes'] button");
    await page.keyboard.press("Enter");
    // The post answers with a redirect to the case: wait for the note on
    // the page that comes back rather than for one navigation event.
    await until(page, "the note shows on the case", async () =>
      (await text(page, "ul.notes")).includes("left a voicemail for the seller"),
    );
  });

  await check("hostile account ids render as text", async () => {
    await page.goto(`${BASE}/console/queue`);
    assert.ok((await text(page, "main")).includes("<script>alert(1)</script>"));
    assert.equal((await page.$$("main img")).length, 0);
  });

  await check("a post without the CSRF token is refused", async () => {
    const answer = await fetch(`${BASE}/console/holds/small/p1/release`, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        Cookie: await cookieHeader(page),
        Origin: BASE,
      },
      body: "reason=no+token",
      redirect: "manual",
    });
    assert.equal(answer.status, 403);
  });

  await check("a viewer is offered no action and refused one", async () => {
    const vera = await session("vera");
    await vera.page.goto(`${BASE}/console/holds/small/p1`);
    assert.equal((await vera.page.$$("form[action$='/release']")).length, 0);
    const csrf = await vera.page.$eval("header input[name=csrf]", (e) => e.value);
    const answer = await fetch(`${BASE}/console/holds/small/p1/release`, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        Cookie: await cookieHeader(vera.page),
        Origin: BASE,
      },
      body: new URLSearchParams({ reason: "viewer", csrf }).toString(),
      redirect: "manual",
    });
    assert.equal(answer.status, 403);
    await vera.context.close();
  });

  await check("the campaign graph's nodes are reached with Tab and followed with Enter", async () => {
    await page.goto(`${BASE}/console/campaigns/cmp_1`);
    assert.equal((await page.$$("main figure.links svg a.node.account")).length, 5);
    await tabTo(page, "figure.links a.node.account");
    const target = await page.evaluate(() => document.activeElement.getAttribute("href"));
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
    assert.equal(new URL(page.url()).pathname, target);
    assert.match(await text(page, "h1"), /^Account /);
  });

  await check("logging out ends the session", async () => {
    await tabTo(page, "form[action$='/logout'] button");
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
    await page.goto(`${BASE}/console/queue`);
    assert.ok(page.url().includes("/console/login"), page.url());
  });
}

await browser.close();
console.log(`${checks} checks passed in firefox, ${failures.length} failed`);
if (failures.length > 0) {
  console.log(failures.join("\n"));
  process.exit(1);
}
