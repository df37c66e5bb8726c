import { defineConfig } from 'vite';

// `npm run example` serves this page on :5174 and passes the API and Socket.IO through to a running
// `switchyard serve` (SWITCHYARD_URL, default http://localhost:3000), so the page sees one origin.
// `npm run build:example` builds it into example/dist with relative paths (servable under any path).
const server = process.env.SWITCHYARD_URL ?? 'http://localhost:3000';

export default defineConfig({
  base: './',
  server: {
    port: 5174,
    proxy: {
      '/api': server,
      '/socket.io': { target: server, ws: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
});
