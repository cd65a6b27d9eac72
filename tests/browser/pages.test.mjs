// sesame's pages in headless Chromium: create an account, sign in, the
// signed-in page, sign out, password change, the messages for a wrong
// password, rate limiting and overload, CSRF refusals, production (Secure)
// cookies, the security headers, keyboard focus and a phone-sized screen,
// the not-found page, and axe-core's WCAG 2.1 AA and best-practice rules.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { axeViolations, launchChromium, newPage, screenshot, startSesame } from './harness.mjs';

const PASSWORD = 'correct horse battery staple';
let browser;
let sesame;
let users = 0;

/** A user name unique to this run's server. */
function newUser(prefix) {
  users += 1;
  return `${prefix}${users}`;
}

/** Only CSP or script failures count; a 4xx page load is logged by Chromium too. */
function scriptErrors(page) {
  return page.consoleErrors.filter((e) => !e.includes('Failed to load resource'));
}

async function signUp(page, base, user, password = PASSWORD) {
  await page.goto(`${base}/signup`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Repeat the password').fill(password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForURL(/\/\?notice=registered/);
}

async function signIn(page, base, user, password) {
  if (!page.url().startsWith(`${base}/`) || new URL(page.url()).pathname !== '/') {
    await page.goto(`${base}/`);
  }
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  await page.waitForLoadState();
  return response;
}

before(async () => {
  browser = await launchChromium();
  sesame = await startSesame('main');
});

after(async () => {
  await browser?.close();
  await sesame?.stop();
});

describe('sign-in page', () => {
  test('is labelled, carries the security headers and runs its script under the CSP', async () => {
    const page = await newPage(browser, { viewport: { width: 1024, height: 720 } });
    const response = await page.goto(`${sesame.url}/`);
    assert.equal(response.status(), 200);
    const h = response.headers();
    assert.match(h['content-security-policy'], /default-src 'none'/);
    assert.match(h['content-security-policy'], /script-src 'self'/);
    assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
    assert.doesNotMatch(h['content-security-policy'], /unsafe/);
    assert.equal(h['referrer-policy'], 'no-referrer');
    assert.equal(h['x-content-type-options'], 'nosniff');
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['cache-control'], 'no-store');
    assert.equal(await page.title(), 'Sign in · sesame');
    await page.getByRole('button', { name: 'Show password' }).waitFor({ state: 'visible' });
    await screenshot(page, 'sign-in');
    await page.getByLabel('User name').waitFor();
    await page.getByLabel('Password', { exact: true }).waitFor();
    // The script ran (CSP allowed the file): it reveals the "Show password" button.
    const toggle = page.getByRole('button', { name: 'Show password' });
    await toggle.waitFor({ state: 'visible' });
    await page.getByLabel('Password', { exact: true }).fill('secret words');
    await toggle.click();
    assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('type'), 'text');
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    await toggle.click();
    await page.getByLabel('Password', { exact: true }).fill('');
    // The CSRF nonce cookie is HttpOnly: the page's script cannot read it.
    assert.equal(await page.evaluate(() => document.cookie), '');
    const cookies = await page.context().cookies();
    const csrf = cookies.find((c) => c.name === 'sesame_csrf');
    assert.ok(csrf?.httpOnly, 'CSRF cookie is HttpOnly');
    assert.deepEqual(scriptErrors(page), []);
    await page.context().close();
  });

  test('keyboard focus is visible and the page fits a phone', async () => {
    const page = await newPage(browser, { viewport: { width: 360, height: 640 }, isMobile: true, hasTouch: true });
    await page.goto(`${sesame.url}/`);
    // Tab from the top: the brand link, then the user name field.
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return { id: el.id, outline: style.outlineStyle, width: parseFloat(style.outlineWidth) };
    });
    assert.equal(focused.id, 'user');
    assert.equal(focused.outline, 'solid');
    assert.ok(focused.width >= 2, `outline ${focused.width}px`);
    const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    assert.ok(fits, 'no horizontal scrolling at 360px');
    const box = await page.getByRole('button', { name: 'Sign in' }).boundingBox();
    assert.ok(box.height >= 44, `touch target ${box.height}px high`);
    await screenshot(page, 'sign-in-phone');
    await page.context().close();
  });
});

describe('account life cycle', () => {
  test('create an account, sign in, see the signed-in page, sign out', async () => {
    const page = await newPage(browser);
    const user = newUser('Alice');
    await page.goto(`${sesame.url}/`);
    await page.getByRole('link', { name: 'Create an account' }).click();
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Create an account');
    await screenshot(page, 'sign-up');
    await signUp(page, sesame.url, user);
    await page.getByRole('status').getByText('Your account is ready').waitFor();
    // The new (canonical, lower-case) user name is filled in.
    assert.equal(await page.getByLabel('User name').inputValue(), user.toLowerCase());
    await screenshot(page, 'registered');

    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${sesame.url}/account`);
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Your account');
    assert.equal(await page.locator('#signed-in-user').textContent(), user.toLowerCase());
    const session = (await page.context().cookies()).find((c) => c.name === 'sesame_session');
    assert.ok(session, 'session cookie set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    assert.equal(await page.evaluate(() => document.cookie.includes('sesame_session')), false);
    // The API sees the same session.
    const api = await page.evaluate(async () => (await fetch('/v1/session')).json());
    assert.equal(api.user, user.toLowerCase());
    await screenshot(page, 'signed-in');
    // Signed in, the sign-in page sends you on to your account.
    await page.goto(`${sesame.url}/`);
    assert.equal(new URL(page.url()).pathname, '/account');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/\?notice=signed_out/);
    await page.getByRole('status').getByText('You have signed out').waitFor();
    const after = (await page.context().cookies()).find((c) => c.name === 'sesame_session');
    assert.equal(after, undefined, 'sign-out clears the cookie');
    await page.goto(`${sesame.url}/account`);
    assert.equal(new URL(page.url()).pathname, '/', 'signed out: back to sign-in');
    assert.deepEqual(scriptErrors(page), []);
    await page.context().close();
  });

  test('a wrong password says so, announced and focused', async () => {
    const page = await newPage(browser);
    const user = newUser('bob');
    await signUp(page, sesame.url, user);
    const response = await signIn(page, sesame.url, user, 'not the password at all');
    assert.equal(response.status(), 401);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.textContent(), /user name or password is not correct/);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'alert', 'focus moves to the error');
    assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByLabel('User name').inputValue(), user);
    assert.match(await page.title(), /^Error: /);
    await screenshot(page, 'wrong-password');
    await page.context().close();
  });

  test('change the password: signed out everywhere, the new one works', async () => {
    const page = await newPage(browser);
    const user = newUser('carol');
    await signUp(page, sesame.url, user);
    await signIn(page, sesame.url, user, PASSWORD);
    await page.waitForURL(`${sesame.url}/account`);
    await page.getByRole('link', { name: 'Change your password' }).click();
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByLabel('New password', { exact: true }).fill('a completely new passphrase');
    await page.getByLabel('Repeat the new password').fill('a completely new passphrase');
    await screenshot(page, 'change-password');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.waitForURL(/notice=password_changed/);
    await page.getByRole('status').getByText('Your password was changed').waitFor();
    assert.equal((await page.context().cookies()).find((c) => c.name === 'sesame_session'), undefined);
    const old = await signIn(page, sesame.url, user, PASSWORD);
    assert.equal(old.status(), 401);
    await signIn(page, sesame.url, user, 'a completely new passphrase');
    await page.waitForURL(`${sesame.url}/account`);
    await page.context().close();
  });
});

describe('production cookies', () => {
  test('Secure and __Host- cookies work on a secure origin', async () => {
    // Chromium counts http://localhost as a secure context, so the cookies
    // sesame sets in production (Secure, __Host-sesame_session and
    // __Host-sesame_csrf) can be tried without TLS.
    const secure = await startSesame('secure', ['--cookie-secure', 'true']);
    const base = secure.url.replace('127.0.0.1', 'localhost');
    try {
      const page = await newPage(browser);
      const user = newUser('heidi');
      await signUp(page, base, user);
      await signIn(page, base, user, PASSWORD);
      await page.waitForURL(`${base}/account`);
      const cookies = await page.context().cookies();
      const csrf = cookies.find((c) => c.name === '__Host-sesame_csrf');
      const session = cookies.find((c) => c.name === '__Host-sesame_session');
      assert.ok(csrf?.secure && csrf.httpOnly, 'CSRF cookie: __Host-, Secure, HttpOnly');
      assert.ok(session?.secure && session.httpOnly && session.sameSite === 'Lax', 'session cookie: __Host-, Secure, HttpOnly, Lax');
      assert.equal(session.path, '/');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(/notice=signed_out/);
      assert.equal((await page.context().cookies()).find((c) => c.name.endsWith('sesame_session')), undefined);
      await page.context().close();
    } finally {
      await secure.stop();
    }
  });
});

describe('CSRF', () => {
  test('a form post without the token is refused', async () => {
    const page = await newPage(browser);
    const user = newUser('dave');
    await signUp(page, sesame.url, user);
    await page.goto(`${sesame.url}/`);
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.evaluate(() => document.querySelector('input[name="csrf"]').remove());
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/login')),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    assert.equal(response.status(), 403);
    await page.getByRole('alert').getByText('nothing was done').waitFor();
    assert.equal((await page.context().cookies()).find((c) => c.name === 'sesame_session'), undefined);
    await screenshot(page, 'csrf-refused');
    // The form that comes back has a fresh token: sending it again works.
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${sesame.url}/account`);
    await page.context().close();
  });

  test('another site cannot sign you out or sign you in', async () => {
    const page = await newPage(browser);
    const user = newUser('erin');
    await signUp(page, sesame.url, user);
    await signIn(page, sesame.url, user, PASSWORD);
    await page.waitForURL(`${sesame.url}/account`);
    // An attacker's page on another site (localhost vs 127.0.0.1) that
    // posts forms to sesame the moment it loads.
    const target = sesame.url;
    const evil = createServer((req, res) => {
      const action = req.url === '/login' ? 'login' : 'logout';
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><form method="post" action="${target}/${action}">
        <input name="csrf" value="${'0'.repeat(64)}"><input name="user" value="${user}">
        <input name="password" value="${PASSWORD}"></form>
        <script>document.forms[0].submit()</script>`);
    });
    await new Promise((ok) => evil.listen(0, '127.0.0.1', ok));
    const evilUrl = `http://localhost:${evil.address().port}`;
    try {
      for (const path of ['/logout', '/login']) {
        const [response] = await Promise.all([
          page.waitForResponse((r) => r.url() === `${target}${path}`),
          page.goto(`${evilUrl}${path}`),
        ]);
        assert.equal(response.status(), 403, `${path} from another site`);
      }
      await page.goto(`${sesame.url}/account`);
      assert.equal(new URL(page.url()).pathname, '/account', 'still signed in');
    } finally {
      evil.close();
    }
    await page.context().close();
  });
});

describe('load and abuse', () => {
  test('overload: "try again" with the wait', async () => {
    // A budget of 0 ms: every login is shed at once with 503 + Retry-After.
    const busy = await startSesame('busy', ['--latency-budget-ms', '0', '--hash-workers', '1']);
    try {
      const page = await newPage(browser);
      const response = await signIn(page, busy.url, 'frank', 'any password at all');
      assert.equal(response.status(), 503);
      const wait = Number(response.headers()['retry-after']);
      assert.ok(wait >= 1, `Retry-After ${wait}`);
      const alert = page.getByRole('alert');
      assert.match(await alert.textContent(), new RegExp(`very busy.*try again in ${wait} second`));
      // The script counts the wait down on the (disabled) button.
      await page.locator('.countdown').getByText(/You can try again (in \d+ seconds?|now)/).waitFor();
      await screenshot(page, 'overloaded');
      await page.context().close();
    } finally {
      await busy.stop();
    }
  });

  test('rate limiting: the message says how long to wait', async () => {
    const page = await newPage(browser);
    const user = newUser('grace');
    // sesame's default limits: a handful of failures per account and address
    // per minute, then 429 with Retry-After.
    const limited = await startSesame('limited');
    try {
      await signUp(page, limited.url, user);
      let response;
      const attempts = 30;
      for (let i = 0; i < attempts; i++) {
        response = await signIn(page, limited.url, user, `wrong password number ${i}`);
        if (response.status() === 429) break;
        assert.equal(response.status(), 401);
      }
      assert.equal(response.status(), 429, `no 429 after ${attempts} wrong passwords`);
      const wait = Number(response.headers()['retry-after']);
      assert.ok(wait >= 1, `Retry-After ${wait}`);
      const alert = page.getByRole('alert');
      assert.match(await alert.textContent(), new RegExp(`Too many attempts.*wait ${wait} seconds?`));
      assert.equal(await page.evaluate(() => document.activeElement.id), 'alert');
      await page.locator('.countdown').getByText(/You can try again in \d+ seconds?/).waitFor();
      assert.ok(await page.getByRole('button', { name: /Sign in/ }).isDisabled(), 'button waits out the limit');
      await screenshot(page, 'rate-limited');
    } finally {
      await page.context().close();
      await limited.stop();
    }
  });
});

describe('not-found page', () => {
  test('a browser gets a sesame page, in the layout and under the CSP', async () => {
    const page = await newPage(browser);
    const response = await page.goto(`${sesame.url}/no/such/page`);
    assert.equal(response.status(), 404);
    const h = response.headers();
    assert.match(h['content-type'], /^text\/html/);
    assert.match(h['content-security-policy'], /default-src 'none'/);
    assert.equal(h['x-content-type-options'], 'nosniff');
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(await page.title(), 'Page not found · sesame');
    assert.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Page not found');
    await screenshot(page, 'not-found');
    // The layout's stylesheet applied (under the CSP): the card has its padding.
    const padding = await page.locator('.card').evaluate((el) => parseFloat(getComputedStyle(el).paddingTop));
    assert.ok(padding > 0, `card padding ${padding}px`);
    await page.getByRole('link', { name: 'Go to the sign-in page' }).click();
    await page.waitForURL(`${sesame.url}/`);
    assert.deepEqual(scriptErrors(page), []);
    // An API path answers the browser in JSON all the same.
    const api = await page.goto(`${sesame.url}/v1/nope`);
    assert.equal(api.status(), 404);
    assert.equal((await api.json()).error.code, 'not_found');
    await page.context().close();
  });
});

describe('accessibility (axe-core: WCAG 2.1 A/AA and best practices)', () => {
  /** The page at `path` (after `prepare`, if given) passes axe in the
   * light and the dark color scheme. */
  async function noViolations(path, { status = 200, prepare } = {}) {
    for (const colorScheme of ['light', 'dark']) {
      // axe is injected as an inline script, which the pages' CSP forbids.
      const page = await newPage(browser, { bypassCSP: true, colorScheme });
      try {
        const response = await page.goto(`${sesame.url}${path}`);
        assert.equal(response.status(), status, path);
        if (prepare) await prepare(page);
        const violations = await axeViolations(page);
        assert.deepEqual(violations, [], `${path} (${colorScheme}): ${JSON.stringify(violations, null, 2)}`);
      } finally {
        await page.context().close();
      }
    }
  }

  test('the checker finds a violation where there is one', async () => {
    // Guards the check itself: a form field without a label must fail.
    const page = await newPage(browser, { bypassCSP: true });
    await page.goto(`${sesame.url}/`);
    await page.evaluate(() => document.querySelector('label[for="user"]').remove());
    const violations = await axeViolations(page);
    assert.ok(violations.some((v) => v.rule.startsWith('label ')), JSON.stringify(violations));
    await page.context().close();
  });

  test('sign-in page', async () => {
    await noViolations('/');
  });

  test('sign-in page with an error', async () => {
    await noViolations('/', {
      prepare: async (page) => {
        await page.getByLabel('User name').fill('nobody');
        await page.getByLabel('Password', { exact: true }).fill('not the password at all');
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByRole('alert').waitFor();
      },
    });
  });

  test('sign-up page', async () => {
    await noViolations('/signup');
  });

  test('not-found page', async () => {
    await noViolations('/no/such/page', { status: 404 });
  });
});
