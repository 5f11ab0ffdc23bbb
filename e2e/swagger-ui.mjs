// Drives Swagger UI in headless Chromium as a newcomer would (see run.sh), once per API version,
// in the order the visitor meets them: v2 first (the definition Swagger UI opens), then v1, picked
// in the top bar's definition selector. For each version, from that version's own document:
// register, authorize with the OAuth2 password flow, browse the catalogue, order and pay; as the
// administrator, make a webhook endpoint in the webhooks tag (its secret shown once), read and list
// it (no secret), rotate its secret, list its deliveries, and open the Webhooks section (every event
// type, the envelopes' schemas resolved); then, as the customer again, execute every GET operation
// and check that each request went to that operation's own path (under /api/<version>/, or the
// unversioned /health, /ready and /problems/{slug}); then reload and check that the authorization
// and the chosen definition are still there.
//
// Every check prints `ok` or `FAIL`; the script goes on after a failure and exits 1 if any failed.
import { chromium } from 'playwright-core';

const base = process.env.BASE ?? 'http://127.0.0.1:3000';
const skus = (process.env.PRODUCT_SKUS ?? '').split(',').filter(Boolean);
// The product run.sh has a review of (the first SKU unless told otherwise).
const reviewedSku = process.env.REVIEWED_SKU ?? skus[0];
const screenshot = process.env.SCREENSHOT ?? 'swagger-ui-{version}.png';
const password = 'correct horse battery';
// The administrator run.sh made, for the webhook endpoints (admins only).
const adminEmail = process.env.ADMIN_EMAIL ?? 'admin@e2e.example';
const adminPassword = process.env.ADMIN_PASSWORD ?? 'an e2e admin password';
const failures = [];

// The versions, in the order Swagger UI lists them and the visitor meets them.
const VERSIONS = ['v2', 'v1'];
const documentPath = (version) => `/api-docs/${version}/openapi.json`;
// The operations outside the versions: same path in every document.
const UNVERSIONED = new Set(['/health', '/ready', '/problems/{slug}']);

let prefix = '';
function check(condition, message) {
  const line = `${prefix}${message}`;
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${line}`);
  if (!condition) failures.push(line);
  return condition;
}

async function getJson(path) {
  const response = await fetch(`${base}${path}`);
  return { status: response.status, json: response.ok ? await response.json() : undefined };
}

// The documents: each version's, and the older address, which still serves v1.
const documents = {};
for (const version of VERSIONS) {
  const { status, json } = await getJson(documentPath(version));
  check(status === 200 && json?.paths, `GET ${documentPath(version)}: ${status}`);
  documents[version] = json ?? { paths: {} };
}
{
  const { status, json } = await getJson('/api-docs/openapi.json');
  check(status === 200 && JSON.stringify(json) === JSON.stringify(documents.v1),
    `GET /api-docs/openapi.json: ${status}, the v1 document`);
}

function operationsOf(document) {
  const operations = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'].includes(method)) continue;
      operations.push({ path, method, id: operation.operationId, tag: operation.tags?.[0] });
    }
  }
  return operations;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } });
page.on('console', (m) => { if (m.type() === 'error') console.log('console error:', m.text()); });

// What Swagger UI shows now: the definition picked in the top bar, the document it rendered.
async function shown() {
  const select = page.locator('.topbar select');
  return {
    options: await select.locator('option').evaluateAll(
      (options) => options.map((o) => ({ label: o.textContent.trim(), value: o.value }))),
    selected: await select.inputValue(),
    url: (await page.locator('.information-container .info .url').first().innerText()).trim(),
    version: (await page.locator('.information-container .info .version').first().innerText()).trim(),
    // The operations, not the OpenAPI 3.1 webhooks Swagger UI lists after them (see the webhooks flow).
    paths: await page.locator('.opblock-summary-path').evaluateAll(
      (paths) => paths.filter((p) => !p.closest('.webhooks')).map((p) => p.getAttribute('data-path'))),
  };
}

// Waits until Swagger UI has rendered the document of `version`.
async function rendered(version) {
  await page.waitForFunction((path) => {
    const url = document.querySelector('.information-container .info .url');
    return url && url.textContent.trim() === path && document.querySelector('.opblock-summary');
  }, documentPath(version), { timeout: 30000 });
}

// One version's flows, with `operations` from its document.
async function runVersion(version, document, { carriedFrom } = {}) {
  prefix = `[${version}] `;
  const api = `/api/${version}`;
  const operations = operationsOf(document);
  const byId = (id) => operations.find((op) => op.id === id);
  const email = `swagger-${version}-${Date.now()}@example.com`;

  // Opens or closes an operation's panel (Swagger UI keeps panels open across definitions).
  const isOpen = async (op) => (await op.getAttribute('class')).split(/\s+/).includes('is-open');
  async function expand(op) { if (!(await isOpen(op))) await op.locator('.opblock-summary').first().click(); }
  async function collapse(op) { if (await isOpen(op)) await op.locator('.opblock-summary').first().click(); }

  // Expands an operation, fills its parameters and body, executes it, and returns the request
  // the browser sent, its response, and the status, headers and body Swagger UI shows.
  async function execute(id, { params = {}, body } = {}) {
    const operation = byId(id);
    if (!operation) throw new Error(`no operation ${id} in the ${version} document`);
    const op = page.locator(`#operations-${operation.tag}-${id}`);
    await expand(op);
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
    const response = await request.response();
    const status = op.locator('.live-responses-table tbody .response-col_status').first();
    await status.waitFor({ timeout: 15000 });
    const code = Number((await status.innerText()).trim());
    const description = op.locator('.live-responses-table tbody .response-col_description').first();
    const text = await description.locator('pre').first().innerText();
    const shownHeaders = await description.innerText();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    // Collapse it again, so that the next operation's controls are the only ones in view.
    await collapse(op);
    return { request, response, status: code, json, text, sentBody, shownHeaders };
  }

  // Money as this version writes it: v1 integer minor units, v2 a decimal string.
  const money = (value, minor, currency = 'EUR') => version === 'v1'
    ? value?.amount === minor && value?.currency === currency
    : value?.amount === (minor / 100).toFixed(2) && value?.currency === currency;

  // Swagger UI shows this version's document, and every path of it is this version's.
  {
    const now = await shown();
    check(now.selected === documentPath(version) && now.url === documentPath(version),
      `the definition shown is ${now.url} (selected: ${now.selected})`);
    check(now.version === document.info?.version, `the title shows version ${now.version}`);
    const strays = now.paths.filter((p) => !p.startsWith(`${api}/`) && !UNVERSIONED.has(p));
    check(now.paths.length === operations.length && strays.length === 0,
      `${now.paths.length} operations shown, all under ${api}/ or unversioned (others: ${strays.join(', ') || 'none'})`);
  }

  // Every operation has its own id, so Swagger UI knows which one it executes.
  const ids = operations.map((op) => op.id);
  check(ids.every(Boolean) && new Set(ids).size === ids.length, `${ids.length} operations, each with its own operationId`);

  // A documented problem shows an example of what that route answers.
  {
    const op = page.locator(`#operations-${byId('registerUser').tag}-registerUser`);
    await expand(op);
    const conflict = op.locator('tr.response[data-code="409"]');
    await conflict.waitFor({ timeout: 15000 });
    const text = await conflict.innerText();
    check(text.includes('EMAIL_TAKEN') && !text.includes('INSUFFICIENT_STOCK'),
      'registerUser documents its 409 with an EMAIL_TAKEN example');
    await collapse(op);
  }

  // Swagger UI may still hold the earlier version's authorization (same scheme name, persisted in
  // the browser): that token is good for this version too.
  if (carriedFrom && await page.locator('.btn.authorize.locked').count() > 0) {
    const carried = await execute('getCurrentUser');
    check(carried.status === 200 && new URL(carried.request.url()).pathname === `${api}/users/me`,
      `with the ${carriedFrom} authorization, getCurrentUser: GET ${new URL(carried.request.url()).pathname} answered ${carried.status}`);
  }

  // Register.
  const registered = await execute('registerUser', { body: { email, password, name: `Swagger User ${version}` } });
  check(registered.status === 201 && new URL(registered.request.url()).pathname === `${api}/users`,
    `registerUser: POST ${new URL(registered.request.url()).pathname} answered ${registered.status}`);

  // Authorize: the dialog asks for a username and a password only, and logs in at this version's
  // token URL (after logging out of the authorization Swagger UI holds: one carried over from the
  // earlier version, or the other user's of this version).
  let authorizedAs;
  async function authorize(username, secret, who) {
    await page.locator('.btn.authorize').first().click();
    await page.waitForSelector('.modal-ux');
    const oauth = page.locator('.modal-ux .auth-container').filter({ hasText: 'oauth2' });
    const logout = oauth.getByRole('button', { name: 'Remove authorization' });
    if (await logout.isVisible()) {
      console.log(`     ${prefix}Swagger UI holds an authorization (${authorizedAs ?? `the ${carriedFrom ?? 'earlier'} one`}); logging out`);
      await logout.click();
    }
    check(await oauth.locator('#oauth_username').isVisible() && await oauth.locator('#oauth_password').isVisible(),
      `the Authorize dialog asks ${who} for a username and a password`);
    const extra = ['#client_id_password', '#client_secret_password', '#password_type'];
    const extras = [];
    for (const selector of extra) if (await oauth.locator(selector).isVisible()) extras.push(selector);
    check(extras.length === 0, `the Authorize dialog asks ${who} for nothing else (shown: ${extras.join(', ') || 'none'})`);
    await oauth.locator('#oauth_username').fill(username);
    await oauth.locator('#oauth_password').fill(secret);
    const [tokenRequest] = await Promise.all([
      page.waitForRequest((r) => r.method() === 'POST' && r.url().includes('/auth/token'), { timeout: 15000 }),
      oauth.locator('button.authorize').click(),
    ]);
    const tokenResponse = await tokenRequest.response();
    check(new URL(tokenRequest.url()).pathname === `${api}/auth/token` && tokenResponse?.status() === 200,
      `the password flow for ${who}: POST ${new URL(tokenRequest.url()).pathname} answered ${tokenResponse?.status()}`);
    await oauth.getByRole('button', { name: 'Remove authorization' }).waitFor({ timeout: 15000 });
    check(true, `authorized ${who} with the password flow`);
    await page.locator('.modal-ux .btn-done, .modal-ux button.close-modal').first().click();
    authorizedAs = who;
  }
  await authorize(email, password, 'the customer');

  // Browse the catalogue: this version's list shape and money.
  const listed = await execute('listProducts');
  const found = (listed.json?.data ?? []).map((p) => p.sku);
  check(listed.status === 200 && skus.every((sku) => found.includes(sku)),
    `listProducts: ${listed.status}, shows ${found.join(', ')}`);
  if (version === 'v1') {
    check(listed.json && 'next_cursor' in listed.json && !('has_more' in listed.json),
      `listProducts answers a v1 page (data, next_cursor): ${Object.keys(listed.json ?? {}).join(', ')}`);
  } else {
    check(listed.json?.has_more === false && listed.json?.next === null && !('next_cursor' in listed.json),
      `listProducts answers a v2 page (data, has_more, next): ${JSON.stringify({ ...listed.json, data: undefined })}`);
  }
  const product = listed.json?.data?.find((p) => p.sku === reviewedSku) ?? listed.json?.data?.[0];
  if (!product) throw new Error('no product to order');
  // The same product, read outside the browser in v1's integer minor units.
  const price = (await getJson(`/api/v1/products/${product.id}`)).json?.price?.amount;
  check(Number.isInteger(price) && money(product.price, price),
    `${product.sku} costs ${JSON.stringify(product.price)} (${price} minor units)`);
  if (version === 'v2') {
    // One product a page: the next page's absolute URL, on this host and version.
    const paged = await execute('listProducts', { params: { limit: '1' } });
    const next = paged.json?.next;
    check(paged.status === 200 && paged.json?.data?.length === 1 && paged.json?.has_more === true
      && typeof next === 'string' && next.startsWith(`${base}${api}/products?`) && next.includes('cursor='),
      `listProducts with limit=1: ${paged.status}, has_more ${paged.json?.has_more}, next ${next}`);
  }
  const shownProduct = await execute('getProduct', { params: { id: product.id } });
  check(shownProduct.status === 200 && shownProduct.json?.name === product.name,
    `getProduct: ${shownProduct.status}, ${shownProduct.json?.name}`);
  const me = await execute('getCurrentUser');
  check(me.status === 200 && me.json?.email === email, `getCurrentUser: ${me.status}, ${me.json?.email}`);

  // Order, then pay with the example body.
  const placed = await execute('placeOrder', { body: { items: [{ product_id: product.id, quantity: 1 }] } });
  const order = placed.json;
  check(placed.status === 201 && order?.status === 'pending_payment' && money(order?.total, price),
    `placeOrder: ${placed.status}, ${order?.status}, total ${JSON.stringify(order?.total)}`);
  if (!order?.id) throw new Error('no order to pay');
  const paid = await execute('transitionOrder', { params: { id: order.id } });
  const example = JSON.parse(paid.sentBody ?? '{}');
  check(example.action === 'pay', `the transition example is ${JSON.stringify(example)}`);
  check(new URL(paid.request.url()).pathname === `${api}/orders/${order.id}/transitions`,
    `transitionOrder: POST ${new URL(paid.request.url()).pathname}`);
  if (version === 'v1') {
    check(paid.status === 201 && paid.json?.to === 'paid',
      `transitionOrder (the example): ${paid.status}, a history entry to ${paid.json?.to}`);
  } else {
    // v2 answers with the order itself and its new ETag, which a read of the order gives too.
    const etag = paid.response?.headers().etag;
    check(paid.status === 200 && paid.json?.id === order.id && paid.json?.status === 'paid'
      && money(paid.json?.total, price) && paid.json?.payment?.status === 'captured',
      `transitionOrder (the example): ${paid.status}, the order ${paid.json?.status}, payment ${paid.json?.payment?.status}`);
    check(Boolean(etag) && /^"[^"]+"$/.test(etag) && paid.shownHeaders.includes(`etag: ${etag}`),
      `transitionOrder answers ETag ${etag}, shown in Swagger UI`);
    const reread = await execute('getOrder', { params: { id: order.id } });
    check(reread.status === 200 && reread.json?.status === 'paid' && reread.response?.headers().etag === etag,
      `getOrder after paying: ${reread.status}, ${reread.json?.status}, ETag ${reread.response?.headers().etag}`);
  }

  // Order lists: v2 gives summaries unless include=items.
  if (version === 'v2') {
    const summaries = await execute('listOrders');
    const mine = summaries.json?.data?.find((o) => o.id === order.id);
    check(summaries.status === 200 && mine?.status === 'paid' && !('items' in (mine ?? {}))
      && money(mine?.total, price),
      `listOrders: ${summaries.status}, the order as a summary without items: ${mine ? Object.keys(mine).join(', ') : 'missing'}`);
    const whole = await execute('listOrders', { params: { include: 'items' } });
    const wholeMine = whole.json?.data?.find((o) => o.id === order.id);
    check(new URL(whole.request.url()).searchParams.get('include') === 'items' && whole.status === 200
      && wholeMine?.items?.length === 1 && wholeMine.items[0].product_id === product.id,
      `listOrders with include=items: ${whole.status}, ${wholeMine?.items?.length} item(s)`);
  }

  // The review run.sh wrote, for the review paths.
  const reviews = await execute('listProductReviews', { params: { id: product.id } });
  const review = reviews.json?.data?.[0];
  check(reviews.status === 200 && Boolean(review?.id), `listProductReviews: ${reviews.status}, ${reviews.json?.data?.length} review(s)`);

  // Webhooks, as the administrator run.sh made (the endpoints are for admins only): in the webhooks
  // tag, make an endpoint (its secret shown this once), read it back and list it (never the secret),
  // rotate its secret, and list its deliveries (none: it takes user deletions only, and nobody is
  // deleted here). Then the OpenAPI 3.1 webhooks: the event types, and their envelopes.
  await authorize(adminEmail, adminPassword, 'the administrator');
  const tag = page.locator('h3.opblock-tag[data-tag="webhooks"]');
  if (!check(await tag.count() === 1, 'the webhooks tag is shown')) throw new Error('no webhooks tag');
  if (await tag.getAttribute('data-is-open') !== 'true') await tag.click();
  check(await tag.getAttribute('data-is-open') === 'true'
    && await page.locator('#operations-webhooks-createWebhookEndpoint').isVisible(),
    'the webhooks tag is open, createWebhookEndpoint in it');
  // A secret as the log shows it: its prefix and length, not the key.
  const hidden = (value) => typeof value === 'string' ? `${value.slice(0, 6)}… (${value.length} characters)` : String(value);
  const pathOf = (result) => `${result.request.method()} ${new URL(result.request.url()).pathname}`;
  const hookUrl = 'http://1.1.1.1/hook';
  const created = await execute('createWebhookEndpoint',
    { body: { url: hookUrl, event_types: ['orderly.user.deleted.v1'] } });
  const hook = created.json;
  check(created.status === 201 && pathOf(created) === `POST ${api}/webhook-endpoints` && hook?.url === hookUrl
    && JSON.stringify(hook?.event_types) === '["orderly.user.deleted.v1"]' && hook?.enabled === true,
    `createWebhookEndpoint: ${pathOf(created)} answered ${created.status}, ${hook?.url} for ${JSON.stringify(hook?.event_types)}`);
  const secret = hook?.secret;
  check(typeof secret === 'string' && secret.startsWith('whsec_') && created.text.includes(secret),
    `createWebhookEndpoint shows its secret: ${hidden(secret)}`);
  if (!hook?.id) throw new Error('no webhook endpoint');
  const endpointPath = `${api}/webhook-endpoints/${hook.id}`;

  const read = await execute('getWebhookEndpoint', { params: { id: hook.id } });
  check(read.status === 200 && pathOf(read) === `GET ${endpointPath}` && read.json?.id === hook.id
    && read.json?.url === hookUrl,
    `getWebhookEndpoint: ${pathOf(read)} answered ${read.status}, ${read.json?.url}`);
  check(read.json !== undefined && !('secret' in read.json) && !read.text.includes('whsec_'),
    `getWebhookEndpoint shows no secret (fields: ${Object.keys(read.json ?? {}).join(', ')})`);
  const hooks = await execute('listWebhookEndpoints');
  const listedHook = hooks.json?.data?.find((e) => e.id === hook.id);
  check(hooks.status === 200 && pathOf(hooks) === `GET ${api}/webhook-endpoints` && listedHook?.url === hookUrl
    && hooks.json.data.every((e) => !('secret' in e)) && !hooks.text.includes('whsec_'),
    `listWebhookEndpoints: ${pathOf(hooks)} answered ${hooks.status}, ${hooks.json?.data?.length} endpoint(s), the new one${listedHook ? '' : ' missing'}, no secret`);

  const rotated = await execute('rotateWebhookSecret', { params: { id: hook.id } });
  const newSecret = rotated.json?.secret;
  check(rotated.status === 200 && pathOf(rotated) === `POST ${endpointPath}/secret/rotate` && rotated.json?.id === hook.id,
    `rotateWebhookSecret: ${pathOf(rotated)} answered ${rotated.status}`);
  check(typeof newSecret === 'string' && newSecret.startsWith('whsec_') && newSecret !== secret
    && rotated.text.includes(newSecret),
    `rotateWebhookSecret shows a new secret: ${hidden(newSecret)}${newSecret === secret ? ', the old one' : ''}`);

  const deliveries = await execute('listWebhookDeliveries', { params: { id: hook.id } });
  check(deliveries.status === 200 && pathOf(deliveries) === `GET ${endpointPath}/deliveries`
    && Array.isArray(deliveries.json?.data) && deliveries.json.data.length === 0,
    `listWebhookDeliveries: ${pathOf(deliveries)} answered ${deliveries.status}, ${deliveries.json?.data?.length} deliveries`);

  // The OpenAPI 3.1 webhooks, which Swagger UI shows under a "Webhooks" heading after the
  // operations: one entry for each event type an endpoint can ask for; an entry opened shows the
  // example of its request body (a CloudEvents envelope) and the envelope's schema, resolved.
  {
    const section = page.locator('.webhooks');
    const heading = section.locator('h2').first();
    check(await section.count() === 1 && (await heading.innerText()).trim() === 'Webhooks',
      'Swagger UI shows a Webhooks section');
    const shownTypes = await section.locator('.opblock-summary-path').evaluateAll(
      (paths) => paths.map((p) => p.getAttribute('data-path')));
    const eventTypes = document.components?.schemas?.CreateWebhookEndpointRequest?.properties?.event_types?.items?.enum ?? [];
    const missing = eventTypes.filter((t) => !shownTypes.includes(t));
    const others = shownTypes.filter((t) => !eventTypes.includes(t));
    check(eventTypes.length > 0 && shownTypes.includes('orderly.order.paid.v1') && missing.length === 0
      && others.length === 0 && shownTypes.length === eventTypes.length,
      `the Webhooks section lists ${shownTypes.length} event types, the ${eventTypes.length} an endpoint can ask for (missing: ${missing.join(', ') || 'none'}; others: ${others.join(', ') || 'none'})`);
    const envelopes = {
      'orderly.order.paid.v1': 'OrderEvent',
      'orderly.product.created.v1': 'ProductEvent',
      'orderly.user.registered.v1': 'UserEvent',
      'orderly.user.deleted.v1': 'UserDeletedEvent',
    };
    for (const [type, envelope] of Object.entries(envelopes)) {
      const entry = section.locator('.opblock').filter({ has: page.locator(`.opblock-summary-path[data-path="${type}"]`) });
      if (!check(await entry.count() === 1, `the webhook ${type} is shown once`)) continue;
      await expand(entry);
      const body = entry.locator('.opblock-section-request-body');
      const example = await body.getByText('specversion').first().waitFor({ timeout: 15000 }).then(() => true, () => false);
      check(example, `the webhook ${type}: its request body example is an envelope (specversion)`);
      await body.locator('button.tablinks[data-name="model"]').click();
      const schema = await body.locator('[data-name="modelPanel"]').innerText().catch(() => '');
      check(schema.includes(envelope) && schema.includes('specversion'),
        `the webhook ${type}: its request body schema is ${envelope}${schema.includes(envelope) ? '' : ` (shown: ${JSON.stringify(schema.slice(0, 80))})`}`);
      await collapse(entry);
    }
    const text = await page.locator('body').innerText();
    const errors = await page.locator('.errors-wrapper').count();
    check(!text.includes('Could not resolve reference') && !text.includes('Resolver error') && errors === 0,
      `no resolver error on the page${errors ? ` (errors shown: ${JSON.stringify((await page.locator('.errors-wrapper').first().innerText()).slice(0, 300))})` : ''}`);
  }

  // Back to the customer, for the rest.
  await authorize(email, password, 'the customer');

  // Every GET operation, executed from its own panel, must reach its own path.
  const values = {
    [`${api}/users/{id}`]: me.json?.id,
    [`${api}/users/{id}/orders`]: me.json?.id,
    [`${api}/products/{id}`]: product.id,
    [`${api}/products/{id}/reviews`]: product.id,
    [`${api}/reviews/{id}`]: review?.id,
    [`${api}/orders/{id}`]: order.id,
    [`${api}/orders/{id}/transitions`]: order.id,
    [`${api}/webhook-endpoints/{id}`]: hook.id,
    [`${api}/webhook-endpoints/{id}/deliveries`]: hook.id,
    '/problems/{slug}': 'insufficient-stock',
  };
  // What a customer gets: all of it, but the list of users and the webhook endpoints (admins only).
  const expectedStatus = {
    listUsers: 403, listWebhookEndpoints: 403, getWebhookEndpoint: 403, listWebhookDeliveries: 403,
  };
  for (const op of operations.filter((o) => o.method === 'get')) {
    const own = op.path.startsWith(`${api}/`) || UNVERSIONED.has(op.path);
    const params = {};
    const name = op.path.match(/\{(\w+)\}/)?.[1];
    if (name) {
      if (values[op.path] === undefined) { check(false, `${op.id}: no value for {${name}} in ${op.path}`); continue; }
      params[name] = values[op.path];
    }
    const expected = op.path.replace(/\{\w+\}/, values[op.path]);
    const { request, status } = await execute(op.id, { params });
    const url = new URL(request.url());
    check(own && request.method() === 'GET' && url.origin === base && url.pathname === expected,
      `${op.id}: GET ${url.pathname} (expected ${expected}${own ? '' : `, but ${op.path} is not under ${api}/`}) answered ${status}`);
    check(status === (expectedStatus[op.id] ?? 200), `${op.id}: status ${status}`);
  }

  // A reload keeps the authorization, and the definition the visitor picked.
  await page.reload();
  await page.waitForSelector('.opblock-summary', { timeout: 30000 });
  await rendered(version).catch(() => {});
  const after = await shown();
  check(after.selected === documentPath(version) && after.url === documentPath(version),
    `after a reload, Swagger UI still shows ${after.url}`);
  check(await page.locator('.btn.authorize.locked').count() > 0, 'after a reload, Swagger UI is still authorized');
  const again = await execute('getCurrentUser');
  check(again.status === 200 && again.json?.email === email
    && new URL(again.request.url()).pathname === `${api}/users/me`,
    `after a reload, getCurrentUser: GET ${new URL(again.request.url()).pathname} answered ${again.status}`);

  await page.screenshot({ path: screenshot.replace('{version}', version), fullPage: false });
}

// The visitor arrives at the front door and meets Swagger UI with v2 open.
await page.goto(`${base}/`);
await page.waitForSelector('.opblock-summary', { timeout: 30000 });
check(new URL(page.url()).pathname === '/swagger-ui/', `${base}/ leads to ${new URL(page.url()).pathname}`);
{
  const first = await shown();
  const listed = first.options.map((o) => `${o.label} ${o.value}`);
  check(JSON.stringify(listed) === JSON.stringify(VERSIONS.map((v) => `${v} ${documentPath(v)}`)),
    `the definition selector lists ${listed.join(', ')}`);
  check(first.selected === documentPath(VERSIONS[0]) && first.url === documentPath(VERSIONS[0]),
    `Swagger UI opens ${first.url} first`);
}

let previous;
for (const version of VERSIONS) {
  if (previous) {
    // Pick the version in the top bar, as a visitor would.
    prefix = '';
    await page.locator('.topbar select').selectOption({ label: version });
    try {
      await rendered(version);
      check(true, `picked ${version} in the definition selector`);
    } catch {
      check(false, `picked ${version} in the definition selector: Swagger UI did not show ${documentPath(version)}`);
      break;
    }
    check(new URL(page.url()).searchParams.get('urls.primaryName') === version,
      `the address names the definition: ${page.url()}`);
  }
  try {
    await runVersion(version, documents[version], { carriedFrom: previous });
  } catch (error) {
    check(false, `stopped: ${error.message.split('\n')[0]}`);
  }
  previous = version;
}

prefix = '';
await browser.close();
console.log(failures.length ? `e2e: ${failures.length} failed` : 'e2e: every check passed');
process.exit(failures.length ? 1 : 0);
