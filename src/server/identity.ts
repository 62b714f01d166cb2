/**
 * Who is calling and what they may do: the contracts between the routes, the front-proxy authenticator and the
 * SubjectAccessReview authorizer. Plain function types, so tests can inject an identity without TLS.
 */
import type { FastifyRequest } from 'fastify';

/** The user kube-apiserver's aggregator vouches for (Kubernetes `user.Info`). */
export interface UserInfo {
  readonly username: string;
  readonly uid?: string;
  readonly groups: readonly string[];
  /** Extra attributes, keys lowercased and unescaped (e.g. `authentication.kubernetes.io/credential-id`). */
  readonly extra: Readonly<Record<string, readonly string[]>>;
}

/** Returns the authenticated user, or undefined when the request is not authenticated. Never throws for bad input. */
export type Authenticate = (request: FastifyRequest) => UserInfo | undefined;

/** The request attributes a SubjectAccessReview is asked about (Kubernetes `authorizer.Attributes`, resource form). */
export interface ResourceAttributes {
  readonly namespace: string;
  readonly verb: string;
  readonly group: string;
  readonly version: string;
  readonly resource: string;
}

export interface AuthorizationDecision {
  readonly allowed: boolean;
  /** The authorizer's reason, possibly empty; appended to the 403 message. */
  readonly reason: string;
}

/** Decides whether `user` may act on `attributes`. Rejects when no decision could be made (never allows then). */
export type Authorize = (user: UserInfo, attributes: ResourceAttributes) => Promise<AuthorizationDecision>;
