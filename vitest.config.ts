import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: ['test/integration/image.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // Files share one control plane and one broker; they keep to their own namespaces and queues,
          // but running them one at a time keeps timing-sensitive scaling tests honest on 2 cores.
          fileParallelism: false,
        },
      },
      {
        // The image built and run (scripts/image.sh): needs podman, not the Kubernetes test environment, so it has no
        // global setup. A cold build (apt-get podman + runc, npm ci inside the build) takes minutes; hooks may wait.
        test: {
          name: 'image',
          include: ['test/integration/image.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 1_200_000,
        },
      },
    ],
  },
});
