import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

// `npm run dev` serves the app on :5173 and passes the API and Socket.IO through to a running
// `switchyard serve` (SWITCHYARD_URL, default http://localhost:3000), so the app sees one origin.
const server = process.env.SWITCHYARD_URL ?? 'http://localhost:3000';

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/api': server,
      '/socket.io': { target: server, ws: true },
    },
  },
  // the end-to-end encryption worker (src/e2ee/worker.ts) is an ES module worker bundle of its own
  worker: { format: 'es' },
  build: {
    outDir: 'dist',
    sourcemap: true,
    chunkSizeWarningLimit: 1000,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
