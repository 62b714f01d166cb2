// The image, built from the Dockerfile by `npm run image` (scripts/image.sh: podman build --isolation=chroot on a
// base assembled from the project's Node 26, since no registry is reachable here), and run as the Deployment runs it:
// uid/gid 1000, read-only root filesystem with nothing mounted writable, no capabilities, no network.
// - `sluice version` prints package.json's version and `sluice help` prints exactly what the sources print;
// - the process is uid 1000 (the image's `node` user), every write to the root filesystem fails with EROFS, and dev dependencies were pruned;
// - the chroot fallback (for machines where no container can start) runs the same image the same way.
// Needs no Kubernetes: the `image` vitest project runs this file without the integration project's global setup
// (`npm run test:image`). A cold build takes a few minutes (apt-get podman + runc, npm ci inside the build); after
// that, an image built from the same sources is reused in seconds.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { run } from '../support/command.ts';
import { REPO_ROOT } from '../support/env.ts';

const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;
/** The base is assembled from the `node` devDependency's binary. */
const NODE_VERSION = (
  JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules', 'node', 'package.json'), 'utf8')) as { version: string }
).version;
/** The Deployment's runAsUser / runAsGroup (deploy/deployment.yaml), which scripts/image.sh runs the image as. */
const UID = 1000;

/** scripts/image.sh with ARGS (build, run …, podman …). */
const imageScript = (args: readonly string[], env: Record<string, string> = {}) =>
  run('bash', ['scripts/image.sh', ...args], { env });

/** `sluice ARGS` in the image, or another program with `--entrypoint`; fails the test on a non-zero exit. */
async function inImage(args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  const result = await imageScript(['run', ...args], env);
  expect(result.code, `scripts/image.sh run ${args.join(' ')}\n${result.stderr}`).toBe(0);
  return result.stdout;
}

/** Runs a Node.js script as `node -e` in the image and parses the JSON it prints. */
async function nodeInImage(script: string, env: Record<string, string> = {}): Promise<unknown> {
  return JSON.parse(await inImage(['--entrypoint', '/usr/local/bin/node', '-e', script], env));
}

const PROBE = `
  const fs = require('node:fs');
  const writes = {};
  for (const p of ['/app/probe', '/app/dist/probe', '/tmp/probe', '/home/node/probe', '/probe']) {
    try { fs.writeFileSync(p, ''); writes[p] = 'written'; } catch (err) { writes[p] = err.code; }
  }
  const present = (p) => fs.existsSync(p);
  console.log(JSON.stringify({
    uid: process.getuid(), gid: process.getgid(), user: require('node:os').userInfo().username, cwd: process.cwd(), node: process.version,
    nodeEnv: process.env.NODE_ENV, writes,
    rootOpenToAll: (fs.statSync('/').mode & 0o005) === 0o005,
    devDependencies: ['typescript', 'vitest', 'eslint', 'node', 'prettier'].filter((d) => present('/app/node_modules/' + d)),
    runtime: ['fastify', '@kubernetes/client-node', 'amqplib'].filter((d) => present('/app/node_modules/' + d)),
    crds: fs.readdirSync('/app/crds').length > 0,
    sources: present('/app/src') || present('/app/test') || present('/app/.sluice-env'),
  }));
`;

describe('the image', () => {
  beforeAll(() => {
    // Build, or reuse the image built from the same sources; progress goes to the test's stderr.
    const build = spawnSync('bash', ['scripts/image.sh', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
    expect(build.status, 'scripts/image.sh build (its output is above)').toBe(0);
  }, 1_200_000);

  it('is built from the Dockerfile with node:26-slim as the default base and runs as the `node` user', async () => {
    expect(readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8')).toMatch(/^ARG BASE=node:26-slim$/m);
    // The image of the sources as they are (localhost/sluice:<version>-src.<hash>): the one `run` runs.
    const image = (await imageScript(['name'])).stdout.trim();
    expect(image).toMatch(/^localhost\/sluice:[^:]+-src\.[0-9a-f]{16}$/);
    expect(image).toContain(`:${PACKAGE_VERSION}-src.`);
    const inspect = await imageScript(['podman', 'image', 'inspect', '--format={{json .Config}}', image]);
    expect(inspect.code, inspect.stderr).toBe(0);
    const config = JSON.parse(inspect.stdout) as { User: string; Entrypoint: string[]; WorkingDir: string };
    expect(config).toMatchObject({ User: 'node', Entrypoint: ['node', 'dist/main.js'], WorkingDir: '/app' });
  });

  it('prints package.json version on `sluice version`', async () => {
    const result = await imageScript(['run', 'version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${PACKAGE_VERSION}\n`);
    // Which way it ran (a container, or the chroot fallback), for the log.
    console.log(result.stderr.trim());
  });

  it('prints on `sluice help` exactly what the sources print', async () => {
    const fromSources = spawnSync(process.execPath, ['src/main.ts', 'help'], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(fromSources.status).toBe(0);
    const help = await inImage(['help']);
    expect(help).toContain('sluice operator [options]');
    expect(help).toBe(fromSources.stdout);
  });

  it('runs as uid 1000 on a read-only root, with only the production dependencies', async () => {
    expect(await nodeInImage(PROBE)).toEqual({
      uid: UID,
      gid: UID,
      // The image's /etc/passwd names uid 1000 as the Dockerfile's USER.
      user: 'node',
      cwd: '/app',
      node: `v${NODE_VERSION}`,
      nodeEnv: 'production',
      // / is r-x for everyone: with a 0700 / (an earlier base) uid 1000 ran under overlay only by chance, not under vfs.
      rootOpenToAll: true,
      writes: {
        '/app/probe': 'EROFS',
        '/app/dist/probe': 'EROFS',
        '/tmp/probe': 'EROFS',
        '/home/node/probe': 'EROFS',
        '/probe': 'EROFS',
      },
      devDependencies: [],
      runtime: ['fastify', '@kubernetes/client-node', 'amqplib'],
      crds: true,
      sources: false,
    });
  });

  it('runs the same way in the chroot fallback', async () => {
    const env = { SLUICE_IMAGE_RUN: 'chroot' };
    expect(await inImage(['version'], env)).toBe(`${PACKAGE_VERSION}\n`);
    expect(await nodeInImage(PROBE, env)).toMatchObject({
      uid: UID,
      gid: UID,
      cwd: '/app',
      writes: { '/app/probe': 'EROFS', '/tmp/probe': 'EROFS', '/probe': 'EROFS' },
    });
  });
});
