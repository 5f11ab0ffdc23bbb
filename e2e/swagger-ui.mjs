// Drives Swagger UI like a person: register, authorize with the OAuth2 password flow, place an order.
import { chromium } from 'playwright-core';

const base = process.env.BASE ?? 'http://127.0.0.1:3000';
const productId = process.env.PRODUCT_ID;
const email = `swagger-${Date.now()}@example.com`;
const password = 'correct horse battery';

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } });
page.on('console', (m) => { if (m.type() === 'error') console.log('console error:', m.text()); });
await page.goto(`${base}/swagger-ui/`);
await page.waitForSelector('.opblock-summary', { timeout: 30000 });

async function tryOut(opId, body) {
  const op = page.locator(`#operations-${opId}`);
  await op.locator('.opblock-summary').first().click();
  await op.locator('.try-out__btn').click();
  if (body !== undefined) {
    const textarea = op.locator('textarea.body-param__text');
    await textarea.fill(JSON.stringify(body));
  }
  await op.locator('button.execute').click();
  const status = op.locator('.live-responses-table tbody .response-col_status').first();
  await status.waitFor({ timeout: 15000 });
  const code = (await status.innerText()).trim();
  const text = await op.locator('.live-responses-table .response-col_description pre').first().innerText();
  return { code, text };
}

const registered = await tryOut('users-register', { email, password, name: 'Swagger User' });
console.log('register:', registered.code);

await page.locator('.btn.authorize').first().click();
await page.waitForSelector('.modal-ux');
const oauth = page.locator('.modal-ux .auth-container').filter({ hasText: 'oauth2' });
await oauth.locator('#oauth_username').fill(email);
await oauth.locator('#oauth_password').fill(password);
await oauth.locator('button.authorize').click();
await page.waitForTimeout(1500);
const authorizedText = await oauth.innerText();
console.log('authorize:', /Logout/.test(authorizedText) ? 'logged in' : authorizedText.slice(0, 300));
await page.locator('.modal-ux .btn-done, .modal-ux button.close-modal').first().click();

const placed = await tryOut('orders-place', { items: [{ product_id: productId, quantity: 1 }] });
console.log('place order:', placed.code);
console.log(placed.text.slice(0, 200));
await page.screenshot({ path: process.env.SCREENSHOT ?? 'swagger-ui.png', fullPage: false });
await browser.close();
if (registered.code !== '201' || placed.code !== '201') process.exit(1);
