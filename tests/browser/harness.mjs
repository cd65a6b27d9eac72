// Starting sesame and Chromium for the browser tests. Nothing is downloaded:
// the browser is Debian's /usr/bin/chromium (or $CHROMIUM), the server is the
// `sesame` binary built by cargo ($SESAME_BIN).
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const artifacts = resolve(process.env.ARTIFACTS ?? join(root, 'test-artifacts', 'browser'));
mkdirSync(artifacts, { recursive: true });

const bin = process.env.SESAME_BIN ?? join(root, 'target', 'debug', 'sesame');

export function freePort() {
  return new Promise((ok, fail) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

/** Starts `sesame serve` on a free port with a fresh SQLite database. */
export async function startSesame(name, extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), `sesame-browser-${name}-`));
  const port = await freePort();
  const log = openSync(join(artifacts, `server-${name}.log`), 'w');
  const args = [
    'serve',
    '--listen', `127.0.0.1:${port}`,
    '--database', `sqlite:${join(dir, 'sesame.db')}`,
    '--hash-m-cost', '256',
    '--hash-t-cost', '1',
    '--event-log', join(artifacts, `events-${name}.jsonl`),
    ...extraArgs,
  ];
  // Plain HTTP: cookies without Secure, unless a test asks for them.
  if (!args.includes('--cookie-secure')) args.push('--cookie-secure', 'false');
  const child = spawn(bin, args, { stdio: ['ignore', log, log], env: { ...process.env, RUST_LOG: 'info' } });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise((ok) => child.once('exit', (code) => ok(code)));
  for (let i = 0; ; i++) {
    const status = await Promise.race([
      fetch(`${url}/healthz`).then((r) => r.status, () => 0),
      exited.then((code) => `exited with ${code}`),
    ]);
    if (status === 200) break;
    if (typeof status === 'string' || i > 300) {
      child.kill('SIGKILL');
      throw new Error(`sesame (${name}) did not start: ${status}; see ${artifacts}/server-${name}.log`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A fresh browser context (its own cookies) that records console errors,
 * CSP violations among them. */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => page.consoleErrors.push(String(err)));
  return page;
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

// axe-core, from tests/browser/node_modules (pinned in package-lock.json).
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** The rule sets every page must pass: WCAG 2.1 A and AA, and axe's best practices. */
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];

/** Runs axe-core on the page as it is now; returns its violations, each as
 * `rule (impact): help` with the offending elements. The page's context
 * must bypass the CSP (`bypassCSP: true`), which forbids the inline script
 * axe is injected as. */
export async function axeViolations(page) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] }),
    AXE_TAGS,
  );
  return result.violations.map((v) => ({
    rule: `${v.id} (${v.impact}): ${v.help}`,
    nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary ?? ''}`.trim()),
  }));
}
