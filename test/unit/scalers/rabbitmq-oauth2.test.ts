// OAuth2 client credentials for the rabbitmq scaler's management API: the metadata (accepted and rejected rows, no
// secret in any message), the token source (src/scalers/oauth2.ts) against an in-process token endpoint (request
// shape, client authentication and its fallback, the expiry margin, single flight, errors), and the whole read path
// against that endpoint and an in-process management API that only answers a bearer token it issued (the token is
// sent, shared, refreshed, and dropped once on a 401).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BackendError, ValidationError, describeError } from '../../../src/errors.ts';
import {
  MIN_DROP_INTERVAL_MS,
  TokenEndpointError,
  TokenSource,
  openTokenSource,
  type OAuth2ClientCredentials,
  type TokenPost,
  type TokenSourceLease,
} from '../../../src/scalers/oauth2.ts';
import { createRabbitMqScaler, parseRabbitMqConfig } from '../../../src/scalers/rabbitmq.ts';
import { SharedPool } from '../../../src/scalers/shared.ts';
import { standalone, triggerInput, type StandaloneScaler } from '../../support/trigger.ts';
import { pinnedAddress } from '../../support/pinned-address.ts';

const SECRET = 'cl1ent-S3CRET-never-shown';
const m = 'spec.triggers[0].metadata';
const authRef = 'spec.triggers[0].authenticationRef';
const oauthAuth = { oauthTokenURI: 'https://idp.example/oauth2/token', clientID: 'sluice', clientSecret: SECRET };

function parse(metadata: Record<string, string>, authParams: Record<string, string>) {
  // The host is the TriggerAuthentication's when it supplies credentials (test/support/pinned-address.ts).
  return parseRabbitMqConfig(
    triggerInput({ type: 'rabbitmq', ...pinnedAddress('host', 'move', metadata, authParams) }),
  );
}

describe('rabbitmq OAuth2 metadata', () => {
  const accepted: {
    comment: string;
    metadata?: Record<string, string>;
    authParams: Record<string, string>;
    expect: { tokenUrl: string; clientId?: string; scopes?: string[]; endpointParams?: [string, string][] };
  }[] = [
    {
      comment: 'token URI, client ID and secret from the TriggerAuthentication; no scopes, no extra fields',
      authParams: oauthAuth,
      expect: { tokenUrl: 'https://idp.example/oauth2/token', clientId: 'sluice', scopes: [], endpointParams: [] },
    },
    {
      comment: 'scopes: a comma list, trimmed, empty entries ignored',
      authParams: { ...oauthAuth, scopes: 'rabbitmq.read:*/*, rabbitmq.tag:monitoring ,,' },
      expect: {
        tokenUrl: 'https://idp.example/oauth2/token',
        scopes: ['rabbitmq.read:*/*', 'rabbitmq.tag:monitoring'],
      },
    },
    {
      comment: '"scope" as an alias',
      authParams: { ...oauthAuth, scope: 'api://rabbitmq/.default' },
      expect: { tokenUrl: 'https://idp.example/oauth2/token', scopes: ['api://rabbitmq/.default'] },
    },
    {
      comment: 'endpointParams: URL-encoded extra form fields, in order',
      authParams: { ...oauthAuth, endpointParams: 'audience=rabbitmq&resource=api%3A%2F%2Frabbit+mq&flag' },
      expect: {
        tokenUrl: 'https://idp.example/oauth2/token',
        endpointParams: [
          ['audience', 'rabbitmq'],
          ['resource', 'api://rabbit mq'],
          ['flag', ''],
        ],
      },
    },
    {
      comment:
        'client ID and scopes in trigger metadata (not secrets); the secret and the token URI it goes to from the TriggerAuthentication',
      metadata: { clientID: 'meta-client', scopes: 'a' },
      authParams: { clientSecret: SECRET, oauthTokenURI: 'https://idp.example/t?tenant=x' },
      expect: { tokenUrl: 'https://idp.example/t?tenant=x', clientId: 'meta-client', scopes: ['a'] },
    },
    {
      comment: 'plain http on a loopback host (127.0.0.0/8)',
      authParams: { ...oauthAuth, oauthTokenURI: 'http://127.0.0.2:8080/token' },
      expect: { tokenUrl: 'http://127.0.0.2:8080/token' },
    },
    {
      comment: 'plain http on localhost and [::1]',
      authParams: { ...oauthAuth, oauthTokenURI: 'http://[::1]:9/token' },
      expect: { tokenUrl: 'http://[::1]:9/token' },
    },
  ];
  it.each(accepted)('accepts: $comment', ({ metadata, authParams, expect: expected }) => {
    const config = parse({ host: 'https://broker:15671/vh', queueName: 'q', ...metadata }, authParams);
    expect(config.credentials).toBeUndefined();
    expect(config.vhost).toBe('vh');
    const oauth = config.oauth;
    expect(oauth?.tokenUrl.href).toBe(expected.tokenUrl);
    expect(oauth?.clientSecret).toBe(SECRET);
    expect(oauth).toMatchObject({ ...expected, tokenUrl: oauth?.tokenUrl });
  });

  it('http://localhost is loopback too; no OAuth2 parameter means no OAuth2', () => {
    expect(
      parse({ host: 'http://b/', queueName: 'q' }, { ...oauthAuth, oauthTokenURI: 'http://localhost/t' }).oauth,
    ).toBeDefined();
    expect(parse({ host: 'http://u:p@b/', queueName: 'q' }, {}).oauth).toBeUndefined();
  });

  const rejected: {
    comment: string;
    metadata?: Record<string, string>;
    authParams: Record<string, string>;
    host?: string;
    field: string;
    message: RegExp;
  }[] = [
    {
      comment: 'an amqp host (KEDA: OAuth2 is for the management API only)',
      host: 'amqp://broker:5672/',
      authParams: oauthAuth,
      field: authRef,
      message: /"oauthTokenURI" \(OAuth2\) needs the management API/,
    },
    {
      comment: 'an amqp host, clientID in trigger metadata',
      host: 'amqps://broker:5671/',
      metadata: { clientID: 'sluice' },
      authParams: { clientSecret: SECRET },
      field: `${m}.clientID`,
      message: /"clientID" \(OAuth2\) needs the management API/,
    },
    {
      comment: 'username and password too (KEDA: basic and oauth2 are exclusive)',
      authParams: { ...oauthAuth, username: 'guest', password: 'guest-password' },
      field: authRef,
      message: /basic and oauth2 are exclusive: "username" and "password" are given/,
    },
    {
      comment: 'credentials in the host URL too (never quoted)',
      host: 'http://guest:url-password@broker:15672/',
      authParams: oauthAuth,
      field: `${m}.host`,
      message: /basic and oauth2 are exclusive: the host URL has credentials/,
    },
    {
      comment: 'no clientSecret',
      authParams: { oauthTokenURI: 'https://idp/t', clientID: 'sluice' },
      field: authRef,
      message: /OAuth2 needs "clientSecret" too \(given: "oauthTokenURI", "clientID"\) in the TriggerAuthentication/,
    },
    {
      comment: 'no oauthTokenURI',
      authParams: { clientID: 'sluice', clientSecret: SECRET },
      field: authRef,
      message: /OAuth2 needs "oauthTokenURI" too/,
    },
    {
      comment: 'scopes alone',
      metadata: { scopes: 'a' },
      authParams: {},
      field: `${m}.scopes`,
      message: /OAuth2 needs "oauthTokenURI" too \(given: "scopes"\)/,
    },
    {
      comment: 'clientSecret written in trigger metadata',
      metadata: { clientSecret: SECRET },
      authParams: { oauthTokenURI: 'https://idp/t', clientID: 'sluice' },
      field: `${m}.clientSecret`,
      message: /must come from a TriggerAuthentication/,
    },
    {
      comment: 'both scopes and scope',
      authParams: { ...oauthAuth, scopes: 'a', scope: 'b' },
      field: authRef,
      message: /"scope" is an alias of "scopes"/,
    },
    {
      comment: 'a scope with a space (scopes are comma-separated)',
      authParams: { ...oauthAuth, scopes: 'read write' },
      field: authRef,
      message: /scope "read write" contains a space/,
    },
    {
      comment: 'endpointParams setting client_secret (never quoted)',
      authParams: { ...oauthAuth, endpointParams: `audience=x&client_secret=${SECRET}` },
      field: authRef,
      message: /"client_secret" is set by sluice/,
    },
    {
      comment: 'endpointParams setting grant_type',
      metadata: { endpointParams: 'grant_type=password' },
      authParams: oauthAuth,
      field: `${m}.endpointParams`,
      message: /"grant_type" is set by sluice/,
    },
    {
      comment: 'endpointParams that are not valid percent-encoding (never quoted)',
      authParams: { ...oauthAuth, endpointParams: `audience=${SECRET}%zz` },
      field: authRef,
      message: /pair 1 is not valid percent-encoding/,
    },
    {
      comment: 'endpointParams with an empty key',
      authParams: { ...oauthAuth, endpointParams: `a=1&=${SECRET}` },
      field: authRef,
      message: /pair 2 has no key/,
    },
    {
      comment: 'a plain http token URI on another host (the secret would travel in clear)',
      authParams: { ...oauthAuth, oauthTokenURI: 'http://idp.example/token' },
      field: authRef,
      message: /must be https .* not idp\.example/,
    },
    {
      comment: 'a token URI that is not a URL',
      authParams: { ...oauthAuth, oauthTokenURI: 'idp/token' },
      field: authRef,
      message: /not a valid URL/,
    },
    {
      comment: 'a token URI with credentials (never quoted)',
      authParams: { oauthTokenURI: `https://sluice:${SECRET}@idp/token`, clientID: 'sluice', clientSecret: SECRET },
      field: authRef,
      message: /must not contain credentials/,
    },
    {
      comment: 'a token URI with another scheme',
      authParams: { ...oauthAuth, oauthTokenURI: 'ftp://idp/token' },
      field: authRef,
      message: /must be an http or https URL/,
    },
  ];
  it.each(rejected)('rejects: $comment', ({ metadata, authParams, host, field, message }) => {
    let caught: unknown;
    try {
      parse({ host: host ?? 'http://broker:15672/', queueName: 'q', ...metadata }, authParams);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const err = caught as ValidationError;
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
    const everything = describeError(err);
    for (const secret of [SECRET, 'url-password', 'guest-password']) expect(everything).not.toContain(secret);
  });

  it('the OAuth2 client is part of the source and backend: other client, other reader; no secret in keys', () => {
    const key = (authParams: Record<string, string>) =>
      createRabbitMqScaler(
        triggerInput({
          type: 'rabbitmq',
          ...pinnedAddress('host', 'move', { host: 'http://b/', queueName: 'q' }, authParams),
        }),
      ).sourceKey;
    const keys = [
      key(oauthAuth),
      key({ ...oauthAuth, clientSecret: 'another-secret' }),
      key({ ...oauthAuth, scopes: 'a' }),
      key({ ...oauthAuth, oauthTokenURI: 'https://other-idp/token' }),
      key({ username: 'u', password: 'p' }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(key(oauthAuth)).toBe(keys[0]);
    for (const k of keys) expect(k).not.toContain(SECRET);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// An in-process token endpoint and management API

interface TokenRequest {
  readonly method: string;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly form: URLSearchParams;
}

interface Idp {
  requests: TokenRequest[];
  /** Answers one request; the default issues tok-1, tok-2, … valid for an hour, to Basic or body credentials. */
  answer: (req: TokenRequest, res: ServerResponse, n: number) => void | Promise<void>;
  issued: number;
}

const idp: Idp = { requests: [], answer: () => undefined, issued: 0 };
let idpServer: Server;
let idpUrl: string;

function issue(res: ServerResponse, extra: Record<string, unknown> = {}): string {
  idp.issued++;
  const token = `tok-${idp.issued}`;
  res
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 3600, ...extra }));
  return token;
}

function oauthError(res: ServerResponse, status: number, error: string): void {
  // What some endpoints do: echo what they were sent. None of it may reach a message.
  res
    .writeHead(status, { 'content-type': 'application/json' })
    .end(JSON.stringify({ error, error_description: `bad client sluice / ${SECRET}` }));
}

/** The credentials a request authenticated with, by either style; undefined when it has none. */
function clientOf(req: TokenRequest): { id: string; secret: string; style: 'header' | 'params' } | undefined {
  const basic = /^Basic (.+)$/.exec(req.authorization ?? '')?.[1];
  if (basic !== undefined) {
    const [id = '', secret = ''] = Buffer.from(basic, 'base64').toString().split(':');
    const decode = (s: string) => decodeURIComponent(s.replaceAll('+', ' '));
    return { id: decode(id), secret: decode(secret), style: 'header' };
  }
  const id = req.form.get('client_id');
  const secret = req.form.get('client_secret');
  return id === null || secret === null ? undefined : { id, secret, style: 'params' };
}

beforeAll(async () => {
  idpServer = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request: TokenRequest = {
        method: req.method ?? '',
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        form: new URLSearchParams(Buffer.concat(chunks).toString()),
      };
      idp.requests.push(request);
      void idp.answer(request, res, idp.requests.length);
    });
  });
  await new Promise<void>((resolve) => idpServer.listen(0, '127.0.0.1', resolve));
  idpUrl = `http://127.0.0.1:${(idpServer.address() as AddressInfo).port}/oauth2/token`;
});
afterAll(async () => {
  idpServer.closeAllConnections();
  await new Promise((resolve) => idpServer.close(resolve));
});
beforeEach(() => {
  idp.requests = [];
  idp.issued = 0;
  idp.answer = (req, res) => {
    const client = clientOf(req);
    if (client?.id === 'sluice' && client.secret === SECRET) issue(res);
    else oauthError(res, 401, 'invalid_client');
  };
});

function credentials(overrides: Partial<OAuth2ClientCredentials> = {}): OAuth2ClientCredentials {
  return {
    tokenUrl: new URL(`${idpUrl}?tenant=t1`),
    clientId: 'sluice',
    clientSecret: SECRET,
    scopes: [],
    endpointParams: [],
    ...overrides,
  };
}

const leases: TokenSourceLease[] = [];
afterAll(() => {
  for (const lease of leases) lease.release();
});
/** A token source over the shared HTTP transport, in a pool of its own. */
function source(overrides: Partial<OAuth2ClientCredentials> = {}): TokenSource {
  const lease = openTokenSource(new SharedPool(), credentials(overrides), { unsafeSsl: false });
  leases.push(lease);
  return lease.source;
}
const signal = () => AbortSignal.timeout(5000);

async function tokenError(promise: Promise<unknown>): Promise<TokenEndpointError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(TokenEndpointError);
    expect(err).toBeInstanceOf(BackendError);
    const everything = `${describeError(err)} ${String((err as Error).stack)}`;
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain('tenant=t1');
    return err as TokenEndpointError;
  }
  throw new Error('expected a TokenEndpointError');
}

describe('the OAuth2 token source against an in-process token endpoint', () => {
  it('POSTs grant_type=client_credentials with HTTP Basic client authentication, scopes and extra fields', async () => {
    idp.answer = (req, res) => {
      const client = clientOf(req);
      if (client?.id === 'my client:1' && client.secret === `${SECRET}/+ é`) issue(res);
      else oauthError(res, 401, 'invalid_client');
    };
    const s = source({
      clientId: 'my client:1',
      clientSecret: `${SECRET}/+ é`,
      scopes: ['rabbitmq.read:*/*', 'rabbitmq.tag:monitoring'],
      endpointParams: [['audience', 'rabbit mq']],
    });
    expect(await s.token(signal())).toBe('tok-1');
    expect(idp.requests).toHaveLength(1);
    const [req] = idp.requests;
    expect(req?.method).toBe('POST');
    expect(req?.contentType).toBe('application/x-www-form-urlencoded');
    // RFC 6749 §2.3.1: each form-urlencoded, then base64 of "id:secret" (so a ":" in the ID survives).
    const expected = `${new URLSearchParams({ a: 'my client:1' }).toString().slice(2)}:${new URLSearchParams({ a: `${SECRET}/+ é` }).toString().slice(2)}`;
    expect(req?.authorization).toBe(`Basic ${Buffer.from(expected).toString('base64')}`);
    expect(Object.fromEntries(req?.form ?? [])).toEqual({
      grant_type: 'client_credentials',
      scope: 'rabbitmq.read:*/* rabbitmq.tag:monitoring',
      audience: 'rabbit mq',
    });
    expect(s.authStyle).toBe('header');
  });

  it('falls back to client_id / client_secret in the body after a 401, once, and remembers it', async () => {
    let clock = 0;
    idp.answer = (req, res) => {
      const client = clientOf(req);
      if (client?.style === 'params' && client.secret === SECRET) issue(res, { expires_in: 100 });
      else oauthError(res, 401, 'invalid_client');
    };
    const s = new TokenSource({ credentials: credentials(), post: httpPost, now: () => clock });
    expect(await s.token(signal())).toBe('tok-1');
    expect(idp.requests.map((r) => clientOf(r)?.style)).toEqual(['header', 'params']);
    expect(idp.requests[1]?.authorization).toBeUndefined();
    expect(s.authStyle).toBe('params');
    clock += 100_000; // expired: the next token is asked for in the style that worked, once
    expect(await s.token(signal())).toBe('tok-2');
    expect(idp.requests.map((r) => clientOf(r)?.style)).toEqual(['header', 'params', 'params']);
  });

  it('a 400 also triggers the fallback; a 500 does not', async () => {
    idp.answer = (req, res) => {
      if (clientOf(req)?.style === 'header') oauthError(res, 400, 'invalid_request');
      else issue(res);
    };
    expect(await source().token(signal())).toBe('tok-1');
    expect(idp.requests).toHaveLength(2);

    idp.requests = [];
    idp.answer = (_req, res) => {
      res.writeHead(500).end(`internal error for ${SECRET}`);
    };
    const err = await tokenError(source().token(signal()));
    expect(err.message).toBe(`the OAuth2 token endpoint ${idpUrl} answered 500`);
    expect(idp.requests).toHaveLength(1);
  });

  it('wrong client credentials: a BackendError naming the endpoint (no query string) and the OAuth2 error code', async () => {
    const err = await tokenError(source({ clientSecret: 'wrong-secret' }).token(signal()));
    expect(err.message).toBe(`the OAuth2 token endpoint ${idpUrl} answered 401 (invalid_client)`);
    expect(describeError(err)).not.toContain('wrong-secret');
    expect(describeError(err)).not.toContain('bad client'); // the body is never quoted
    expect(idp.requests).toHaveLength(2); // header, then body credentials
  });

  const unusable = [
    {
      comment: 'no access_token',
      body: { token_type: 'Bearer' },
      expected: /answered 200 without a usable access_token/,
    },
    {
      comment: 'a token with a line break',
      body: { access_token: 'a\r\nb', token_type: 'Bearer' },
      expected: /without a usable access_token/,
    },
    {
      comment: 'a token that is not a bearer token',
      body: { access_token: 'x', token_type: 'mac' },
      expected: /issued a token whose token_type is not "Bearer"$/,
    },
    { comment: 'not JSON', body: '<html>', expected: /without a usable access_token/ },
  ];
  it.each(unusable)('$comment is an error', async ({ body, expected }) => {
    idp.answer = (_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const err = await tokenError(source().token(signal()));
    expect(err.message).toMatch(expected);
  });

  it('a form-encoded answer (some endpoints send one) is read too', async () => {
    idp.answer = (_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/x-www-form-urlencoded' })
        .end('access_token=form-token&token_type=bearer&expires_in=60');
    };
    expect(await source().token(signal())).toBe('form-token');
  });

  it('a redirect is not followed', async () => {
    idp.answer = (_req, res) => {
      res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
    };
    const err = await tokenError(source().token(signal()));
    expect(err.message).toBe(
      `the OAuth2 token endpoint ${idpUrl} answered 302 (a redirect; redirects are not followed)`,
    );
    expect(idp.requests).toHaveLength(1);
  });

  it('an unreachable endpoint', async () => {
    const err = await tokenError(source({ tokenUrl: new URL('http://127.0.0.1:1/token?tenant=t1') }).token(signal()));
    expect(err.message).toBe('cannot reach the OAuth2 token endpoint http://127.0.0.1:1/token');
  });

  it('concurrent askers share one request (single flight); a caller that gives up does not cancel it', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    idp.answer = async (_req, res) => {
      await gate;
      issue(res);
    };
    const s = source();
    const impatient = new AbortController();
    const gaveUp = s.token(impatient.signal);
    const waiting = [s.token(signal()), s.token(signal()), s.token(signal())];
    impatient.abort(new DOMException('the read timed out', 'TimeoutError'));
    const err = await tokenError(gaveUp);
    expect(err.message).toBe(`waiting for a token from the OAuth2 token endpoint ${idpUrl} timed out`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    expect(await Promise.all(waiting)).toEqual(['tok-1', 'tok-1', 'tok-1']);
    expect(idp.requests).toHaveLength(1);
    expect(await s.token(signal())).toBe('tok-1'); // cached
    expect(idp.requests).toHaveLength(1);
  });
});

/** A real POST over fetch (for TokenSources built with a test clock). */
const httpPost: TokenPost = async (url, headers, body, sig) => {
  const response = await fetch(url, { method: 'POST', headers, body, signal: sig, redirect: 'manual' });
  return {
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    body: await response.text(),
  };
};

describe('the token cache (a stub endpoint and a test clock)', () => {
  function stub(answer: () => Record<string, unknown>) {
    const clock = { now: 1_000_000 };
    let issued = 0;
    const post: TokenPost = () => {
      issued++;
      return Promise.resolve({
        status: 200,
        contentType: 'application/json',
        body: JSON.stringify({ access_token: `t${issued}`, token_type: 'bearer', ...answer() }),
      });
    };
    const s = new TokenSource({ credentials: credentials(), post, now: () => clock.now });
    return { s, clock, issued: () => issued };
  }

  const margins = [
    { comment: 'expires_in 3600: renewed 60 s early (the cap)', expiresIn: 3600, usedFor: 3_540_000 },
    { comment: 'expires_in 100: renewed 10 % early', expiresIn: 100, usedFor: 90_000 },
    { comment: 'expires_in as a string', expiresIn: '100', usedFor: 90_000 },
    { comment: 'no expires_in: 5 minutes', expiresIn: undefined, usedFor: 300_000 },
    { comment: 'expires_in 0 (no expiry): 5 minutes', expiresIn: 0, usedFor: 300_000 },
  ];
  it.each(margins)('$comment', async ({ expiresIn, usedFor }) => {
    const { s, clock, issued } = stub(() => (expiresIn === undefined ? {} : { expires_in: expiresIn }));
    expect(await s.token(signal())).toBe('t1');
    clock.now += usedFor - 1;
    expect(await s.token(signal())).toBe('t1');
    clock.now += 1;
    expect(await s.token(signal())).toBe('t2');
    expect(issued()).toBe(2);
  });

  it('invalidate drops the refused token once; more drops wait MIN_DROP_INTERVAL_MS', async () => {
    const { s, clock, issued } = stub(() => ({ expires_in: 3600 }));
    expect(await s.token(signal())).toBe('t1');
    expect(s.invalidate('t1')).toBe(true);
    expect(await s.token(signal())).toBe('t2');
    // A 401 for the old token after the new one is cached: retry with the new one, drop nothing.
    expect(s.invalidate('t1')).toBe(true);
    expect(await s.token(signal())).toBe('t2');
    // The new one refused at once: not dropped again so soon (a backend refusing every token costs no request a read).
    expect(s.invalidate('t2')).toBe(false);
    expect(await s.token(signal())).toBe('t2');
    clock.now += MIN_DROP_INTERVAL_MS;
    expect(s.invalidate('t2')).toBe(true);
    expect(await s.token(signal())).toBe('t3');
    expect(issued()).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The read path: scaler → token source → management API

interface Api {
  /** Tokens the API accepts now. */
  accepted: Set<string>;
  seen: string[];
  refused: number;
}
const api: Api = { accepted: new Set(), seen: [], refused: 0 };
let apiServer: Server;
let apiPort: number;

beforeAll(async () => {
  apiServer = createServer((req, res) => {
    const authorization = req.headers.authorization ?? '';
    api.seen.push(authorization);
    const token = /^Bearer (.+)$/.exec(authorization)?.[1];
    if (token === undefined || !api.accepted.has(token)) {
      api.refused++;
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"not_authorized"}');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const name = decodeURIComponent(url.pathname.split('/').at(-1) ?? '');
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ name, messages: name.length, messages_ready: name.length }));
  });
  await new Promise<void>((resolve) => apiServer.listen(0, '127.0.0.1', resolve));
  apiPort = (apiServer.address() as AddressInfo).port;
});
afterAll(async () => {
  apiServer.closeAllConnections();
  await new Promise((resolve) => apiServer.close(resolve));
  await Promise.all(scalers.map((s) => s.close()));
});
beforeEach(() => {
  api.accepted = new Set(['tok-1', 'tok-2', 'tok-3', 'tok-4']);
  api.seen = [];
  api.refused = 0;
});

const scalers: StandaloneScaler[] = [];
function scaler(queueName: string, pool: SharedPool, authParams: Record<string, string> = {}): StandaloneScaler {
  const s = standalone(
    createRabbitMqScaler(
      triggerInput({
        type: 'rabbitmq',
        metadata: { queueName },
        authParams: {
          host: `http://127.0.0.1:${apiPort}/`,
          oauthTokenURI: idpUrl,
          clientID: 'sluice',
          clientSecret: SECRET,
          ...authParams,
        },
      }),
    ),
    pool,
  );
  scalers.push(s);
  return s;
}

describe('the rabbitmq scaler with OAuth2, against an in-process management API', () => {
  it('sends the bearer token it got, shared by every reader of the same client', async () => {
    const pool = new SharedPool();
    const one = scaler('queue-a', pool);
    const two = scaler('queue-bb', pool);
    expect(await one.sample(signal())).toEqual({ value: 7, active: true });
    expect(await two.sample(signal())).toEqual({ value: 8, active: true });
    expect(idp.requests).toHaveLength(1);
    expect(api.seen).toEqual(['Bearer tok-1', 'Bearer tok-1']);
    // The token source and the pools are leased: the last reader's close releases them all.
    expect([...pool.held().keys()].some((k) => k.startsWith('oauth2-token|'))).toBe(true);
    await Promise.all([one.close(), two.close()]);
    expect(pool.held().size).toBe(0);
  });

  it('a 401 from the API drops the token once: one new token, the read succeeds with it', async () => {
    const s = scaler('queue-a', new SharedPool());
    expect((await s.sample(signal())).value).toBe(7);
    api.accepted.delete('tok-1'); // revoked
    expect((await s.sample(signal())).value).toBe(7);
    expect(api.seen).toEqual(['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-2']);
    expect(idp.requests).toHaveLength(2);
  });

  it('an API that refuses every token: an error, and no token request storm', async () => {
    api.accepted.clear();
    const s = scaler('queue-a', new SharedPool());
    for (let i = 0; i < 3; i++) {
      const err = await s.sample(signal()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(BackendError);
      expect((err as Error).message).toMatch(/refused the credentials \(401\)/);
    }
    // The first read retried once with a new token; later reads within 10 s do not drop it again.
    expect(idp.requests).toHaveLength(2);
    expect(api.seen).toEqual(['Bearer tok-1', 'Bearer tok-2', 'Bearer tok-2', 'Bearer tok-2']);
  });

  it('a token endpoint failure is the read failing, naming the token endpoint; the API is not asked', async () => {
    idp.answer = (_req, res) => {
      res.writeHead(503).end();
    };
    const s = scaler('queue-a', new SharedPool());
    const err = await s.sample(signal()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toBe(`the OAuth2 token endpoint ${idpUrl} answered 503`);
    expect(describeError(err)).not.toContain(SECRET);
    expect(api.seen).toEqual([]);
  });

  it('renews the token shortly before expires_in runs out', async () => {
    idp.answer = (_req, res) => {
      issue(res, { expires_in: 1 }); // used for 0.9 s
    };
    const s = scaler('queue-a', new SharedPool());
    await s.sample(signal());
    await s.sample(signal());
    expect(idp.requests).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await s.sample(signal());
    expect(idp.requests).toHaveLength(2);
    expect(api.seen).toEqual(['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-2']);
  });
});
