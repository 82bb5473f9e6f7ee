// An OpenID Connect provider we did not write (panva's certified oidc-provider), for
// tests/api/test_oidc_interop.py: does Sightline's sign-in work with someone else's idea
// of the protocol? Only the parts a real deployment configures are ours: one confidential
// client (client_secret_basic, PKCE S256 required), RS256 keys made at start, the people
// (from OP_USERS) and a login page that asks for a user name and nothing else.
//
//   node server.mjs PORT   with env OP_CLIENT_ID, OP_CLIENT_SECRET, OP_REDIRECT_URI,
//                          OP_USERS = {"sub": {"name", "badge_number", "groups", "amr"}}
//
// Prints "ready ISSUER" on stdout once it listens; its own errors go to stderr.
// oidc-provider 8.x: 9.x says "Unsupported runtime" on Node.js 20 (it wants 22 or later).
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? process.env.OP_PORT);
const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
if (!Number.isInteger(port) || port <= 0) throw new Error('usage: node server.mjs PORT');
const issuer = `http://127.0.0.1:${port}`;
const users = JSON.parse(need('OP_USERS'));

// A fresh signing key each start: a restart on the same port is a key rotation.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: need('OP_CLIENT_ID'),
    client_secret: need('OP_CLIENT_SECRET'),
    redirect_uris: [need('OP_REDIRECT_URI')],
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true, methods: ['S256'] },
  responseTypes: ['code'],
  // The provider's defaults: "amr", the name, badge and groups reach an ID token only when
  // the client asks for them with the claims parameter (OpenID Connect Core 5.5), which the
  // gateway does (gateway/identity/oidc.py wanted_claims); nothing here lists them for it.
  claims: {
    acr: null, amr: null, sid: null, auth_time: null, iss: null,
    openid: ['sub'], profile: ['name', 'badge_number', 'groups'],
  },
  features: { devInteractions: { enabled: false }, claimsParameter: { enabled: true } },
  async findAccount(ctx, sub) {
    const user = users[sub];
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: user.name, badge_number: user.badge_number, groups: user.groups };
      },
    };
  },
  // The agency's own application: consent is implied, as for a first-party client.
  async loadExistingGrant(ctx) {
    const { client, session } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ accountId: session.accountId, clientId: client.clientId });
    grant.addOIDCScope('openid profile');
    // and the claims the client asked for by name (the claims parameter)
    grant.addOIDCClaims(Array.from(ctx.oidc.requestParamClaims || []));
    await grant.save();
    session.grantIdFor(client.clientId, grant.jti);
    return grant;
  },
  ttl: {
    AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 600, Grant: 600,
  },
});

async function form(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

// The login page: a user name (the password and second factor are make-believe; what the
// provider says it checked is each user's "amr").
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (match[1] !== details.uid) ctx.throw(400, 'interaction mismatch');
  if (ctx.method === 'GET' && !match[2]) {
    ctx.type = 'html';
    ctx.body = `<form method="post" action="/interaction/${details.uid}/login">`
      + '<input name="login"><button>Sign in</button></form>';
    return undefined;
  }
  if (ctx.method !== 'POST' || !match[2]) ctx.throw(405);
  const login = (await form(ctx.req)).get('login') ?? '';
  const result = users[login]
    ? { login: { accountId: login, amr: users[login].amr } }
    : { error: 'access_denied', error_description: 'no such user' };
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(to);
  return undefined;
});

provider.on('server_error', (ctx, error) => console.error('server_error', error));

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
