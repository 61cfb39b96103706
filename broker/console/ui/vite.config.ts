import { defineConfig } from "vite";

// Preact's JSX through esbuild directly: no framework plugin needed.
// `npm run dev` proxies the API to a broker's admin listener (SHARDLINE_ADMIN).
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", emptyOutDir: true, assetsDir: "assets", chunkSizeWarningLimit: 400 },
  server: {
    proxy: { "/api": process.env.SHARDLINE_ADMIN ?? "http://127.0.0.1:9644" },
  },
});
