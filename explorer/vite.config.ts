import { defineConfig } from "vite";

// The node serves dist/ at `/` and falls back to index.html for the app's own routes, so
// assets are referenced from the root. `npm run dev` proxies the API to a running node
// (SIETCH_API, default the devnet's buyer at 127.0.0.1:7077), under the node's own address as
// `Host`: the node answers only to the names it is bound to.
export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 200 },
  server: {
    proxy: { "/api": { target: process.env.SIETCH_API ?? "http://127.0.0.1:7077", changeOrigin: true } },
  },
});
