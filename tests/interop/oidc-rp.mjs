// A web app that signs its users in through Gatehouse's OpenID Connect provider, as an
// integrator writes one: a small HTTP server on loopback whose relying party is panva's
// openid-client (v6, OpenID-certified) or oauth4webapi. Shared by
// tests/browser/oidc-rp.test.mjs, which drives it with chromium (openid-client and
// oauth4webapi are packages of tests/interop, so the app lives here).
//
// Routes of the app (its own session cookie, `rp`, holds the flow's state):
//   GET /login[?prompt=…]  a new session; the authorization URL (PKCE S256, state,
//                          nonce; scope openid email offline_access): 302 there
//   GET /callback          the library checks the response (state, RFC 9207's iss),
//                          exchanges the code, validates the ID token (signature
//                          against the JWKS, issuer, audience, nonce, the registered
//                          alg), calls UserInfo and refreshes: 200 with what it got
//                          as JSON; an error answer (login_required …): 401 with it
//   GET /logout            RP-initiated logout: 302 to end_session_endpoint with
//                          id_token_hint, post_logout_redirect_uri and a new state
//   GET /logged-out        the post-logout redirect URI: the state must be the one
//                          sent; 200 {"signed_out":true,"state"}
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';

const SCOPE = 'openid email offline_access';

/** openid-client's relying party (discovery, the non-repudiation check on). */
async function openidClient({ issuer, clientId, clientSecret, alg, redirectUri }) {
  const config = await client.discovery(new URL(issuer), clientId,
    { client_secret: clientSecret, id_token_signed_response_alg: alg },
    client.ClientSecretBasic(clientSecret),
    // Off by default in openid-client (the token endpoint is trusted by TLS): with it
    // the ID token's signature is checked against the provider's JWKS.
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] });
  return {
    name: 'openid-client',
    metadata: config.serverMetadata(),
    authorizationUrl: ({ state, nonce, challenge, prompt }) => client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri, scope: SCOPE, state, nonce,
      code_challenge: challenge, code_challenge_method: 'S256', ...(prompt ? { prompt } : {}),
    }),
    async callback(currentUrl, { verifier, state, nonce }) {
      const tokens = await client.authorizationCodeGrant(config, currentUrl,
        { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
      return { tokens, claims: tokens.claims() };
    },
    userinfo: (accessToken, sub) => client.fetchUserInfo(config, accessToken, sub),
    refresh: (refreshToken) => client.refreshTokenGrant(config, refreshToken),
    introspect: (token) => client.tokenIntrospection(config, token),
    endSessionUrl: (params) => client.buildEndSessionUrl(config, params),
  };
}

/** oauth4webapi's relying party: every request and check spelled out. */
async function oauth4webapi({ issuer, clientId, clientSecret, alg, redirectUri }) {
  const url = new URL(issuer);
  const options = { [oauth.allowInsecureRequests]: true };
  const as = await oauth.processDiscoveryResponse(url,
    await oauth.discoveryRequest(url, { algorithm: 'oidc', ...options }));
  const c = { client_id: clientId, id_token_signed_response_alg: alg };
  const auth = oauth.ClientSecretBasic(clientSecret);
  return {
    name: 'oauth4webapi',
    metadata: as,
    authorizationUrl({ state, nonce, challenge, prompt }) {
      const u = new URL(as.authorization_endpoint);
      const params = {
        client_id: clientId, redirect_uri: redirectUri, response_type: 'code', scope: SCOPE,
        state, nonce, code_challenge: challenge, code_challenge_method: 'S256', ...(prompt ? { prompt } : {}),
      };
      for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
      return u;
    },
    async callback(currentUrl, { verifier, state, nonce }) {
      // State and RFC 9207's iss (the document says it is sent); an error answer throws.
      const params = oauth.validateAuthResponse(as, c, currentUrl, state);
      const res = await oauth.authorizationCodeGrantRequest(as, c, auth, params, redirectUri, verifier, options);
      const tokens = await oauth.processAuthorizationCodeResponse(as, c, res, { expectedNonce: nonce, requireIdToken: true });
      await oauth.validateApplicationLevelSignature(as, res, options);
      return { tokens, claims: oauth.getValidatedIdTokenClaims(tokens) };
    },
    userinfo: async (accessToken, sub) =>
      oauth.processUserInfoResponse(as, c, sub, await oauth.userInfoRequest(as, c, accessToken, options)),
    refresh: async (refreshToken) =>
      oauth.processRefreshTokenResponse(as, c, await oauth.refreshTokenGrantRequest(as, c, auth, refreshToken, options)),
    introspect: async (token) =>
      oauth.processIntrospectionResponse(as, c, await oauth.introspectionRequest(as, c, auth, token, options)),
    endSessionUrl(params) {
      const u = new URL(as.end_session_endpoint);
      for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
      return u;
    },
  };
}

const LIBRARIES = { 'openid-client': openidClient, oauth4webapi };

/** A port free on loopback now. */
export async function freePort() {
  const s = createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** The app's URIs on `port`, for registering it before it starts. */
export function appUris(port) {
  const origin = `http://127.0.0.1:${port}`;
  return { origin, redirectUri: `${origin}/callback`, postLogoutRedirectUri: `${origin}/logged-out` };
}

/**
 * Starts the app on 127.0.0.1:`port` with `library` ('openid-client' or
 * 'oauth4webapi') as the relying party of `issuer` for the registered client. Returns
 * its origin, the library's relying party (`rp`), `sessions` (by cookie: the flow's
 * state, the tokens, what each route saw) and `stop()`.
 */
export async function startApp({ library, port, issuer, clientId, clientSecret, alg }) {
  const { origin, redirectUri, postLogoutRedirectUri } = appUris(port);
  const rp = await LIBRARIES[library]({ issuer, clientId, clientSecret, alg, redirectUri });
  const sessions = new Map();
  const json = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(JSON.stringify(body));
  };
  const sessionOf = (req) => {
    const id = /(?:^|;\s*)rp=([0-9a-f]+)/.exec(req.headers.cookie ?? '')?.[1];
    return id ? sessions.get(id) : undefined;
  };
  const handle = async (req, res) => {
    const here = new URL(req.url, origin);
    if (req.method !== 'GET') return json(res, 405, { error: 'method not allowed' });
    switch (here.pathname) {
      case '/login': {
        const id = randomBytes(16).toString('hex');
        const verifier = client.randomPKCECodeVerifier();
        const session = { verifier, state: client.randomState(), nonce: client.randomNonce() };
        sessions.set(id, session);
        const to = rp.authorizationUrl({
          state: session.state, nonce: session.nonce,
          challenge: await client.calculatePKCECodeChallenge(verifier),
          prompt: here.searchParams.get('prompt') ?? undefined,
        });
        session.authorizationUrl = to.href;
        res.writeHead(302, { location: to.href, 'set-cookie': `rp=${id}; HttpOnly; SameSite=Lax; Path=/` });
        return res.end();
      }
      case '/callback': {
        const session = sessionOf(req);
        if (!session?.verifier) return json(res, 400, { error: 'no sign-in under way' });
        const { verifier, state, nonce } = session;
        // One use: a reload of the callback starts over.
        session.verifier = undefined;
        session.callback = here.href;
        let result;
        try {
          result = await rp.callback(here, { verifier, state, nonce });
        } catch (e) {
          if (e instanceof oauth.AuthorizationResponseError) {
            session.refused = { error: e.error, error_description: e.error_description };
            return json(res, 401, session.refused);
          }
          throw e;
        }
        const { tokens, claims } = result;
        const userinfo = await rp.userinfo(tokens.access_token, claims.sub);
        const refreshed = await rp.refresh(tokens.refresh_token);
        Object.assign(session, {
          claims, idToken: tokens.id_token, first: tokens,
          accessToken: refreshed.access_token, refreshToken: refreshed.refresh_token,
        });
        return json(res, 200, {
          library: rp.name,
          sub: claims.sub, email: claims.email, sid: claims.sid, aud: claims.aud, iss: claims.iss,
          nonce_matches: claims.nonce === nonce,
          alg: JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')).alg,
          userinfo: { sub: userinfo.sub, email: userinfo.email },
          refresh_rotated: Boolean(refreshed.refresh_token) && refreshed.refresh_token !== tokens.refresh_token,
        });
      }
      case '/logout': {
        const session = sessionOf(req);
        if (!session?.idToken) return json(res, 400, { error: 'not signed in' });
        session.logoutState = client.randomState();
        const to = rp.endSessionUrl({
          id_token_hint: session.idToken, post_logout_redirect_uri: postLogoutRedirectUri, state: session.logoutState,
        });
        res.writeHead(302, { location: to.href });
        return res.end();
      }
      case '/logged-out': {
        const session = sessionOf(req);
        const state = here.searchParams.get('state');
        if (!session?.logoutState || state !== session.logoutState) {
          return json(res, 400, { error: 'unexpected state', state });
        }
        session.logoutState = undefined;
        session.signedOut = true;
        return json(res, 200, { signed_out: true, state });
      }
      default:
        return json(res, 404, { error: 'not found' });
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      console.error('the app failed:', e);
      json(res, 500, { error: String(e?.message ?? e), code: e?.code, cause: e?.error });
    });
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    origin, redirectUri, postLogoutRedirectUri, clientId, rp, sessions,
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
