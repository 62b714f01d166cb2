/**
 * Kubernetes `metav1.Status` error bodies and JSON replies with exactly `Content-Type: application/json`
 * (the HPA asks for protobuf first, then anything; client-go decodes by the response type).
 */
import type { FastifyReply } from 'fastify';

export interface StatusDetails {
  readonly name?: string;
  readonly group?: string;
  readonly kind?: string;
  readonly causes?: readonly { readonly message: string }[];
}

/** A failure `metav1.Status`; field order as the apiserver writes it. */
export interface Status {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Readonly<Record<string, never>>;
  readonly status: 'Failure';
  readonly message: string;
  readonly reason?: string;
  readonly details?: StatusDetails;
  readonly code: number;
}

/** `metav1.StatusReason` for the codes this server answers. */
const REASONS: Readonly<Record<number, string>> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/** The Kubernetes reason for an HTTP code; `undefined` for codes without one. */
export function reasonFor(code: number): string | undefined {
  return REASONS[code];
}

export function failureStatus(
  code: number,
  message: string,
  options: { readonly reason?: string | null; readonly details?: StatusDetails } = {},
): Status {
  // `reason: null` asks for no reason (apiserver's ErrorToAPIStatus for plain errors); undefined means "by code".
  const reason = options.reason === null ? undefined : (options.reason ?? reasonFor(code));
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    ...(reason === undefined ? {} : { reason }),
    ...(options.details === undefined ? {} : { details: options.details }),
    code,
  };
}

/** Sends `body` as JSON with `Content-Type: application/json` (no charset parameter, like the apiserver). */
export function sendJson(reply: FastifyReply, code: number, body: unknown): FastifyReply {
  return reply.code(code).type('application/json').serializer(JSON.stringify).send(body);
}

export function sendStatus(reply: FastifyReply, status: Status): FastifyReply {
  return sendJson(reply, status.code, status);
}

/** The apiserver's answer to a request no authenticator accepted. */
export const UNAUTHORIZED: Status = failureStatus(401, 'Unauthorized');

/** The generic-apiserver answer for a path nothing serves. */
export const NOT_FOUND: Status = failureStatus(404, 'the server could not find the requested resource', {
  details: {},
});

/** What every unexpected 5xx says; the details go to the log only. */
export const INTERNAL_ERROR: Status = failureStatus(500, 'Internal error occurred: the request could not be served');
