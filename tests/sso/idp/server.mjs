// A real OpenID provider for the SSO tests: oidc-provider (OpenID-certified), run by Node.js.
//
//   node server.mjs <port> <state.json>
//
// state.json names the client and the accounts; it is read again at every lookup, so a test
// changes a user's claims (groups, email_verified...) between two sign-ins by rewriting it:
//   {"client": {"client_id", "client_secret", "redirect_uris": [...]},
//    "accounts": {"<id>": {"email", "email_verified", "name", "groups": [...], "amr": [...]}}}
// The sign-in page asks only for the account id (no password): what the tests check is the
// relying party's side. Consent is granted by the provider itself (a first-party client).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.OIDC_PROVIDER_MODULES + '/');
const { default: Provider } = await import(require.resolve('oidc-provider'));

const [port, statePath] = process.argv.slice(2);
const state = () => JSON.parse(readFileSync(statePath, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;
const { client } = state();

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const provider = new Provider(issuer, {
  clients: [{ ...client, grant_types: ['authorization_code'], response_types: ['code'] }],
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub', 'amr', 'acr'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups', 'department'],
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['orgplane-test-idp-cookie-key'] },
  async findAccount(ctx, id) {
    const account = state().accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        const { amr, acr, ...claims } = account;
        return { sub: id, ...claims };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
});

async function form(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = `<!doctype html><html lang="en"><title>Test IdP</title><main><h1>Test IdP sign-in</h1>
<form method="post" action="/interaction/${escape(details.uid)}">
<label for="login">Account</label> <input id="login" name="login" autofocus>
<button type="submit">Continue</button></form></main></html>`;
    return undefined;
  }
  const login = (await form(ctx.req)).get('login') || '';
  const account = state().accounts[login];
  const result = account
    ? { login: { accountId: login, amr: account.amr || ['pwd'], acr: account.acr } }
    : { error: 'access_denied', error_description: 'unknown account' };
  const to = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(to);
  return undefined;
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
