import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vite';

// `npm run example` serves this page on http://localhost:5174/sdk-example.html and passes the API and
// Socket.IO through to a running `switchyard serve` (SWITCHYARD_URL, default http://localhost:3000),
// so the page sees one origin. `npm run build:example` (part of the web build) puts it beside the
// app in web/dist (sdk-example.html, its script under assets/), so `switchyard serve` serves it at
// /sdk-example.html: run after the app's build, which empties web/dist.
const server = process.env.SWITCHYARD_URL ?? 'http://localhost:3000';

export default defineConfig({
  base: '/',
  server: {
    port: 5174,
    proxy: {
      '/api': server,
      '/socket.io': { target: server, ws: true },
    },
  },
  build: {
    outDir: fileURLToPath(new URL('../../../dist', import.meta.url)),
    emptyOutDir: false,
    rollupOptions: {
      input: fileURLToPath(new URL('./sdk-example.html', import.meta.url)),
    },
  },
});
