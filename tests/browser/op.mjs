// A loopback OpenID Provider (npm oidc-provider 9, dev interactions: any login, any password)
// for the `oidc` identity mode. The login name becomes `sub` (= the PINFL claim); `name` comes
// from the table below. Started by tests/iframe_browser.rs:
//   PORT=0 REDIRECT_URI=http://127.0.0.1:<p>/oneid/callback node op.mjs  → prints "listening <issuer>"
import Provider from 'oidc-provider';
import http from 'node:http';

const NAMES = {
  '31211831270024': 'RASULOV BEKZOD BAXODIROVICH',
  '30504721260051': 'QODIROV ANVAR AKMALOVICH',
};
const redirect = process.env.REDIRECT_URI;
if (!redirect) { console.error('REDIRECT_URI is required'); process.exit(2); }

const server = http.createServer();
await new Promise((ok) => server.listen(Number(process.env.PORT || 0), '127.0.0.1', ok));
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'signing-iframe', client_secret: 'test-secret',
    redirect_uris: [redirect], grant_types: ['authorization_code'], response_types: ['code'],
  }],
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['test-only-cookie-key'] },
  claims: { openid: ['sub'], profile: ['name'] },
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub, name: NAMES[sub] || `USER ${sub}` }; } };
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
server.on('request', provider.callback());
console.log(`listening ${issuer}`);
