// A person going through a SMART standalone launch in Debian's Chromium,
// driven by playwright-core (conformance-tests/tests/browser.rs runs it):
// the app's authorization URL, sign-in by keyboard, the consent page with
// one scope unticked and observations narrowed to lab results, Allow.
// Prints the app's callback URL (with its code) as JSON; screenshots of
// each page go to SCREENSHOTS.
//
//   node launch.mjs AUTHORIZE_URL CALLBACK_PREFIX SCREENSHOTS USERNAME PASSWORD UNTICK
import { chromium } from "playwright-core";

const [authorizeUrl, callbackPrefix, screenshots, username, password, untick] = process.argv.slice(2);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const result = {};
try {
  const context = await browser.newContext({ viewport: { width: 800, height: 900 } });
  const page = await context.newPage();
  // The app is not running: its callback is answered here, and recorded.
  await page.route(`${callbackPrefix}**`, (route) =>
    route.fulfill({ status: 200, contentType: "text/html", body: "<p>The app has the code.</p>" }),
  );
  const violations = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text());
  });

  const signIn = await page.goto(authorizeUrl);
  result.signInStatus = signIn.status();
  result.signInHeaders = await signIn.allHeaders();
  await page.screenshot({ path: `${screenshots}/1-sign-in.png`, fullPage: true });
  // By label, as assistive technology finds the fields; submitted with Enter.
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await Promise.all([page.waitForNavigation(), page.getByLabel("Password").press("Enter")]);

  await page.screenshot({ path: `${screenshots}/2-consent.png`, fullPage: true });
  result.consentText = await page.locator("main").innerText();
  await page.getByLabel(untick).uncheck();
  await page.getByLabel("Which observations").selectOption({ label: "Only lab results" });
  await page.screenshot({ path: `${screenshots}/3-consent-chosen.png`, fullPage: true });
  const [callback] = await Promise.all([
    page.waitForRequest((r) => r.url().startsWith(callbackPrefix)),
    page.getByRole("button", { name: "Allow" }).click(),
  ]);
  result.callback = callback.url();
  result.cspViolations = violations;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
