// The peer (node-oidc-provider, installed by ../shared/bench/peer-oidc-provider/setup.sh
// into /tmp/peer-oidc) configured like ../shared/bench/peer-oidc-provider/server.mjs,
// plus what the load shapes of tests/load/shapes.sh need:
//   EXTRA_CLIENTS=N  N more client_secret_basic clients (shape 5: many clients)
//   PKJWT_JWKS=file  private_key_jwt clients `bench-pkjwt-0` .. `bench-pkjwt-15` with that
//                    public JWK set (shape 6; DPoP is always on in oidc-provider 9), with
//                    oidc-provider's in-memory replay store
//   TLS_CERT_FILE / TLS_KEY_FILE  https with node's TLS (as server.mjs)
// Copied next to node_modules by shapes.sh and started from there.
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import Provider, { errors } from 'oidc-provider';

const PORT = Number(process.env.PORT || 4010);
const HOST = '127.0.0.1';
const TLS = process.env.TLS_CERT_FILE && process.env.TLS_KEY_FILE
  ? { cert: readFileSync(process.env.TLS_CERT_FILE), key: readFileSync(process.env.TLS_KEY_FILE) } : null;
const ISSUER = `${TLS ? 'https' : 'http'}://${HOST}:${PORT}`;
const SIGN_ALG = process.env.SIGN_ALG || 'ES256';
const RESOURCE = 'https://api.example.test';
const AT_TTL = 300;
const SCOPES = 'invoices:read invoices:write';
const jwks = JSON.parse(readFileSync(process.env.JWKS_FILE || './jwks.private.json', 'utf8'));

const base = { grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: SCOPES };
const clients = [{ ...base, client_id: 'bench-client', client_secret: 'bench-secret-change-me',
  token_endpoint_auth_method: 'client_secret_basic' }];
for (let i = 0; i < Number(process.env.EXTRA_CLIENTS || 0); i++) {
  clients.push({ ...base, client_id: `filler-${i}`, client_secret: `filler-secret-${i}-change-me`,
    token_endpoint_auth_method: 'client_secret_basic' });
}
if (process.env.PKJWT_JWKS) {
  const keys = JSON.parse(readFileSync(process.env.PKJWT_JWKS, 'utf8'));
  for (let i = 0; i < 16; i++) {
    clients.push({ ...base, client_id: `bench-pkjwt-${i}`, token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256', jwks: keys });
  }
}

const provider = new Provider(ISSUER, {
  clients,
  scopes: ['openid', 'offline_access', 'invoices:read', 'invoices:write'],
  jwks,
  cookies: { keys: ['peer-cookie-key-not-used-by-cc-grant'] },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    userinfo: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf || RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return { scope: SCOPES, audience: RESOURCE, accessTokenTTL: AT_TTL, accessTokenFormat: 'jwt',
          jwt: { sign: { alg: SIGN_ALG } } };
      },
    },
  },
  findAccount: async () => undefined,
  renderError: async (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
});
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const server = TLS ? https.createServer(TLS, provider.callback()) : http.createServer(provider.callback());
server.keepAliveTimeout = 65_000;
server.listen(PORT, HOST, () => console.log(`peer ${ISSUER} pid=${process.pid} clients=${clients.length}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
