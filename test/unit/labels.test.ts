import { describe, expect, it } from 'vitest';

import { formatSelector, LabelSelectorError, matches, parseSelector, type Requirement } from '../../src/labels.ts';

describe('parseSelector', () => {
  const rows: { comment: string; text: string; requirements: Requirement[]; canonical: string }[] = [
    { comment: 'empty selects everything', text: '', requirements: [], canonical: '' },
    { comment: 'only whitespace', text: '  \t ', requirements: [], canonical: '' },
    {
      comment: 'KEDA/sluice HPA selector',
      text: 'scaledobject.sluice.dev/name=my-so',
      requirements: [{ key: 'scaledobject.sluice.dev/name', operator: 'equals', values: ['my-so'] }],
      canonical: 'scaledobject.sluice.dev/name=my-so',
    },
    {
      comment: 'double equals',
      text: 'a==b',
      requirements: [{ key: 'a', operator: 'equals', values: ['b'] }],
      canonical: 'a=b',
    },
    {
      comment: 'not equals',
      text: 'a!=b',
      requirements: [{ key: 'a', operator: 'notequals', values: ['b'] }],
      canonical: 'a!=b',
    },
    {
      comment: 'empty value',
      text: 'a=',
      requirements: [{ key: 'a', operator: 'equals', values: [''] }],
      canonical: 'a=',
    },
    {
      comment: 'in, whitespace tolerant, values sorted and de-duplicated',
      text: ' env  in ( prod ,staging, prod ) ',
      requirements: [{ key: 'env', operator: 'in', values: ['prod', 'staging'] }],
      canonical: 'env in (prod,staging)',
    },
    {
      comment: 'notin',
      text: 'tier notin (cache)',
      requirements: [{ key: 'tier', operator: 'notin', values: ['cache'] }],
      canonical: 'tier notin (cache)',
    },
    {
      comment: 'empty set means the empty value',
      text: 'a in ()',
      requirements: [{ key: 'a', operator: 'in', values: [''] }],
      canonical: 'a in ()',
    },
    {
      comment: 'empty values inside a set',
      text: 'a in (,x)',
      requirements: [{ key: 'a', operator: 'in', values: ['', 'x'] }],
      canonical: 'a in (,x)',
    },
    {
      comment: 'exists',
      text: 'canary',
      requirements: [{ key: 'canary', operator: 'exists', values: [] }],
      canonical: 'canary',
    },
    {
      comment: 'does not exist, with a space after !',
      text: '! canary',
      requirements: [{ key: 'canary', operator: 'doesnotexist', values: [] }],
      canonical: '!canary',
    },
    {
      comment: 'greater than',
      text: 'replicas>3',
      requirements: [{ key: 'replicas', operator: 'gt', values: ['3'] }],
      canonical: 'replicas>3',
    },
    {
      comment: 'less than',
      text: 'replicas < 10',
      requirements: [{ key: 'replicas', operator: 'lt', values: ['10'] }],
      canonical: 'replicas<10',
    },
    {
      comment: 'several requirements are sorted by key',
      text: 'z=1, !b ,a in (x,y),m',
      requirements: [
        { key: 'a', operator: 'in', values: ['x', 'y'] },
        { key: 'b', operator: 'doesnotexist', values: [] },
        { key: 'm', operator: 'exists', values: [] },
        { key: 'z', operator: 'equals', values: ['1'] },
      ],
      canonical: 'a in (x,y),!b,m,z=1',
    },
    {
      comment: 'in and notin are only keywords after a key',
      text: 'in in (notin)',
      requirements: [{ key: 'in', operator: 'in', values: ['notin'] }],
      canonical: 'in in (notin)',
    },
    {
      comment: 'values with dots, dashes and underscores',
      text: 'version=v1.2_3-rc',
      requirements: [{ key: 'version', operator: 'equals', values: ['v1.2_3-rc'] }],
      canonical: 'version=v1.2_3-rc',
    },
  ];

  it.each(rows)('$comment: "$text"', ({ text, requirements, canonical }) => {
    const selector = parseSelector(text);
    expect(selector.requirements).toEqual(requirements);
    expect(formatSelector(selector)).toBe(canonical);
    // The canonical form parses back to the same requirements.
    expect(parseSelector(canonical).requirements).toEqual(requirements);
  });

  it('reads the query the aggregator re-encodes (%2F, %3D, + as space)', () => {
    const params = new URLSearchParams('labelSelector=scaledobject.sluice.dev%2Fname%3Dmy-so');
    expect(parseSelector(params.get('labelSelector') ?? '').requirements).toEqual([
      { key: 'scaledobject.sluice.dev/name', operator: 'equals', values: ['my-so'] },
    ]);
    const withSet = new URLSearchParams('labelSelector=env+in+%28prod%2Cstaging%29%2C%21canary');
    expect(formatSelector(parseSelector(withSet.get('labelSelector') ?? ''))).toBe('!canary,env in (prod,staging)');
  });
});

describe('parseSelector errors', () => {
  const rows: { comment: string; text: string; position: number; message: RegExp }[] = [
    { comment: 'missing key', text: '=b', position: 0, message: /found '=', expected a key/ },
    { comment: 'trailing comma', text: 'a=b,', position: 4, message: /expected a key or '!' after ','/ },
    { comment: 'double comma', text: 'a,,b', position: 2, message: /expected a key or '!' after ','/ },
    { comment: 'two values', text: 'a=b c', position: 4, message: /found 'c', expected ',' or end of string/ },
    { comment: 'unknown operator word', text: 'a within (b)', position: 2, message: /found 'within' after key "a"/ },
    { comment: 'in without parentheses', text: 'a in b', position: 5, message: /found 'b', expected '\('/ },
    { comment: 'unclosed set', text: 'a in (b', position: 7, message: /found 'end of string', expected ',' or '\)'/ },
    { comment: 'values not separated', text: 'a in (b c)', position: 8, message: /found 'c', expected ',' or '\)'/ },
    { comment: 'operator after !key', text: '!a=b', position: 2, message: /found '=', expected ',' or end of string/ },
    { comment: 'value that is an operator', text: 'a==(', position: 3, message: /found '\(', expected a value/ },
    { comment: 'non-integer for >', text: 'a>b', position: 2, message: /value "b" for '>' must be an integer/ },
    { comment: 'missing value for <', text: 'a<', position: 2, message: /value "" for '<' must be an integer/ },
    {
      comment: 'upper-case key prefix',
      text: 'Example.com/name=x',
      position: 0,
      message: /key prefix "Example.com" must be a lowercase DNS subdomain/,
    },
    { comment: 'two slashes in a key', text: 'a/b/c=x', position: 0, message: /has more than one '\/'/ },
    { comment: 'empty prefix', text: '/name=x', position: 0, message: /empty prefix/ },
    { comment: 'empty name after prefix', text: 'example.com/=x', position: 0, message: /empty name/ },
    { comment: 'key name too long', text: `${'k'.repeat(64)}=x`, position: 0, message: /longer than 63 characters/ },
    {
      comment: 'key name ending in a dash',
      text: 'name-=x',
      position: 0,
      message: /start and end with an alphanumeric/,
    },
    { comment: 'value with a slash', text: 'a=b/c', position: 2, message: /value "b\/c" must be empty or consist/ },
    { comment: 'value too long', text: `a=${'v'.repeat(64)}`, position: 2, message: /value "v+" is longer than 63/ },
    { comment: 'invalid value in a set', text: 'a in (ok, -bad)', position: 10, message: /value "-bad"/ },
  ];

  it.each(rows)('$comment: "$text"', ({ text, position, message }) => {
    let caught: unknown;
    try {
      parseSelector(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(LabelSelectorError);
    const error = caught as LabelSelectorError;
    expect(error.message).toMatch(message);
    expect(error.message).toContain(JSON.stringify(text));
    expect(error.position).toBe(position);
    expect(error.code).toBe('INVALID_SELECTOR');
  });
});

describe('matches', () => {
  const labels = { app: 'worker', env: 'prod', replicas: '5', 'scaledobject.sluice.dev/name': 'my-so' };
  const rows: { comment: string; selector: string; want: boolean }[] = [
    { comment: 'empty selector matches', selector: '', want: true },
    { comment: 'equals, match', selector: 'scaledobject.sluice.dev/name=my-so', want: true },
    { comment: 'equals, other value', selector: 'scaledobject.sluice.dev/name=other', want: false },
    { comment: 'equals, missing key', selector: 'team=a', want: false },
    { comment: 'equals empty value does not match a missing key', selector: 'team=', want: false },
    { comment: 'not equals, other value', selector: 'env!=dev', want: true },
    { comment: 'not equals, same value', selector: 'env!=prod', want: false },
    { comment: 'not equals, missing key matches', selector: 'team!=a', want: true },
    { comment: 'in, member', selector: 'env in (dev,prod)', want: true },
    { comment: 'in, not a member', selector: 'env in (dev,qa)', want: false },
    { comment: 'notin, member', selector: 'env notin (prod)', want: false },
    { comment: 'notin, missing key matches', selector: 'team notin (a)', want: true },
    { comment: 'exists', selector: 'app', want: true },
    { comment: 'exists, missing', selector: 'team', want: false },
    { comment: 'does not exist, missing', selector: '!team', want: true },
    { comment: 'does not exist, present', selector: '!app', want: false },
    { comment: 'greater than, true', selector: 'replicas>4', want: true },
    { comment: 'greater than, equal is false', selector: 'replicas>5', want: false },
    { comment: 'less than, true', selector: 'replicas<6', want: true },
    { comment: 'greater than on a non-integer label', selector: 'app>1', want: false },
    { comment: 'greater than on a missing label', selector: 'team>1', want: false },
    { comment: 'all requirements must hold', selector: 'app=worker,env=dev', want: false },
    { comment: 'all requirements hold', selector: 'app=worker,env in (prod),!team', want: true },
    { comment: 'keys are case-sensitive', selector: 'App=worker', want: false },
  ];

  it.each(rows)('$comment: "$selector"', ({ selector, want }) => {
    expect(matches(parseSelector(selector), labels)).toBe(want);
  });

  it('does not see inherited properties as labels', () => {
    expect(matches(parseSelector('toString'), {})).toBe(false);
    expect(matches(parseSelector('!constructor'), {})).toBe(true);
  });
});
