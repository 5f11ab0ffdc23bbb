// Drives Swagger UI in headless Chromium as a newcomer would (see run.sh): register, authorize with
// the OAuth2 password flow, browse the catalogue, order and pay; then execute every GET operation
// of the document and check that each request went to that operation's own path; then reload and
// check that the authorization is still there.
import { chromium } from 'playwright-core';

const base = process.env.BASE ?? 'http://127.0.0.1:3000';
const skus = (process.env.PRODUCT_SKUS ?? '').split(',').filter(Boolean);
const email = `swagger-${Date.now()}@example.com`;
const password = 'correct horse battery';
const failures = [];

function check(condition, message) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${message}`);
  if (!condition) failures.push(message);
}

const document = await (await fetch(`${base}/api-docs/openapi.json`)).json();
const operations = [];
for (const [path, item] of Object.entries(document.paths)) {
  for (const [method, operation] of Object.entries(item)) {
    operations.push({ path, method, id: operation.operationId, tag: operation.tags[0] });
  }
}
const byId = (id) => operations.find((op) => op.id === id);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } });
page.on('console', (m) => { if (m.type() === 'error') console.log('console error:', m.text()); });

async function open() {
  await page.goto(`${base}/swagger-ui/`);
  await page.waitForSelector('.opblock-summary', { timeout: 30000 });
}

// Expands an operation, fills its path parameters and body, executes it, and returns the
// request the browser sent with the status and body Swagger UI shows.
async function execute(id, { params = {}, body } = {}) {
  const { tag } = byId(id);
  const op = page.locator(`#operations-${tag}-${id}`);
  if (!(await op.locator('.try-out__btn').isVisible())) {
    await op.locator('.opblock-summary').first().click();
  }
  const tryOut = op.locator('.try-out__btn');
  if ((await tryOut.innerText()).trim() === 'Try it out') await tryOut.click();
  for (const [name, value] of Object.entries(params)) {
    const row = op.locator(`tr[data-param-name="${name}"]`);
    if (await row.locator('select').count()) await row.locator('select').selectOption(value);
    else await row.locator('input').fill(value);
  }
  if (body !== undefined) await op.locator('textarea.body-param__text').fill(JSON.stringify(body));
  const textarea = op.locator('textarea.body-param__text');
  const sentBody = (await textarea.count()) ? await textarea.inputValue() : undefined;
  const [request] = await Promise.all([
    page.waitForRequest((r) => ['fetch', 'xhr'].includes(r.resourceType()), { timeout: 15000 }),
    op.locator('button.execute').click(),
  ]);
  const status = op.locator('.live-responses-table tbody .response-col_status').first();
  await status.waitFor({ timeout: 15000 });
  const code = Number((await status.innerText()).trim());
  const text = await op.locator('.live-responses-table .response-col_description pre').first().innerText();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  // Collapse it again, so that the next operation's controls are the only ones in view.
  await op.locator('.opblock-summary').first().click();
  return { request, status: code, json, sentBody };
}

await open();

// Every operation has its own id, so Swagger UI knows which one it executes.
const ids = operations.map((op) => op.id);
check(ids.every(Boolean) && new Set(ids).size === ids.length, `${ids.length} operations, each with its own operationId`);

// A documented problem shows an example of what that route answers.
{
  const op = page.locator('#operations-users-registerUser');
  await op.locator('.opblock-summary').first().click();
  const conflict = op.locator('tr.response[data-code="409"]');
  await conflict.waitFor({ timeout: 15000 });
  const text = await conflict.innerText();
  check(text.includes('EMAIL_TAKEN') && !text.includes('INSUFFICIENT_STOCK'),
    'registerUser documents its 409 with an EMAIL_TAKEN example');
  await op.locator('.opblock-summary').first().click();
}

// Register, then authorize: the dialog asks for a username and a password only.
const registered = await execute('registerUser', { body: { email, password, name: 'Swagger User' } });
check(registered.status === 201, `registerUser: ${registered.status}`);
await page.locator('.btn.authorize').first().click();
await page.waitForSelector('.modal-ux');
const oauth = page.locator('.modal-ux .auth-container').filter({ hasText: 'oauth2' });
check(await oauth.locator('#oauth_username').isVisible() && await oauth.locator('#oauth_password').isVisible(),
  'the Authorize dialog asks for a username and a password');
const extra = ['#client_id_password', '#client_secret_password', '#password_type'];
const shown = [];
for (const selector of extra) if (await oauth.locator(selector).isVisible()) shown.push(selector);
check(shown.length === 0, `the Authorize dialog asks for nothing else (shown: ${shown.join(', ') || 'none'})`);
await oauth.locator('#oauth_username').fill(email);
await oauth.locator('#oauth_password').fill(password);
await oauth.locator('button.authorize').click();
await oauth.getByRole('button', { name: 'Remove authorization' }).waitFor({ timeout: 15000 });
check(true, 'authorized with the password flow');
await page.locator('.modal-ux .btn-done, .modal-ux button.close-modal').first().click();

// Browse the catalogue, order the first product, pay with the example body.
const listed = await execute('listProducts');
const found = (listed.json?.data ?? []).map((p) => p.sku);
check(listed.status === 200 && skus.every((sku) => found.includes(sku)),
  `listProducts: ${listed.status}, shows ${found.join(', ')}`);
const product = listed.json?.data?.[0];
const shownProduct = await execute('getProduct', { params: { id: product.id } });
check(shownProduct.status === 200 && shownProduct.json?.name === product.name,
  `getProduct: ${shownProduct.status}, ${shownProduct.json?.name}`);
const me = await execute('getCurrentUser');
check(me.status === 200 && me.json?.email === email, `getCurrentUser: ${me.status}`);
const placed = await execute('placeOrder', { body: { items: [{ product_id: product.id, quantity: 1 }] } });
check(placed.status === 201, `placeOrder: ${placed.status}`);
const order = placed.json;
const paid = await execute('transitionOrder', { params: { id: order.id } });
const example = JSON.parse(paid.sentBody ?? '{}');
check(example.action === 'pay', `the transition example is ${JSON.stringify(example)}`);
check(paid.status === 201 && paid.json?.to === 'paid', `transitionOrder (the example): ${paid.status}, ${paid.json?.to}`);

// Every GET operation, executed from its own panel, must reach its own path.
const values = {
  '/api/v1/users/{id}': me.json.id,
  '/api/v1/users/{id}/orders': me.json.id,
  '/api/v1/products/{id}': product.id,
  '/api/v1/orders/{id}': order.id,
  '/api/v1/orders/{id}/transitions': order.id,
  '/problems/{slug}': 'insufficient-stock',
};
// What a customer gets: all of it, but the list of users (admins only).
const expectedStatus = { listUsers: 403 };
for (const op of operations.filter((o) => o.method === 'get')) {
  const params = {};
  const name = op.path.match(/\{(\w+)\}/)?.[1];
  if (name) params[name] = values[op.path];
  const expected = op.path.replace(/\{\w+\}/, values[op.path]);
  const { request, status } = await execute(op.id, { params });
  const url = new URL(request.url());
  check(request.method() === 'GET' && url.pathname === expected,
    `${op.id}: GET ${url.pathname} (expected ${expected}) answered ${status}`);
  check(status === (expectedStatus[op.id] ?? 200), `${op.id}: status ${status}`);
}

// The authorization survives a reload.
await open();
check(await page.locator('.btn.authorize.locked').count() > 0, 'after a reload, Swagger UI is still authorized');
const again = await execute('getCurrentUser');
check(again.status === 200, `after a reload, getCurrentUser: ${again.status}`);

await page.screenshot({ path: process.env.SCREENSHOT ?? 'swagger-ui.png', fullPage: false });
await browser.close();
console.log(failures.length ? `e2e: ${failures.length} failed` : 'e2e: every check passed');
process.exit(failures.length ? 1 : 0);
