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
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // Files share one control plane and one broker; they keep to their own namespaces and queues,
          // but running them one at a time keeps timing-sensitive scaling tests honest on 2 cores.
          fileParallelism: false,
        },
      },
    ],
  },
});
