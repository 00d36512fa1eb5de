// Vite build of the TwinEngine web UI: writes index.html + hashed assets/ into the
// Python package (src/twinengine/web), which `twin serve` serves at "/".
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";

const outDir = fileURLToPath(new URL("../src/twinengine/web", import.meta.url));
const swaggerDist = fileURLToPath(new URL("./node_modules/swagger-ui-dist", import.meta.url));

// Swagger UI's files for the server's /docs page, served from the server itself (no CDN)
function swaggerAssets(): Plugin {
  return {
    name: "swagger-ui-assets",
    closeBundle() {
      mkdirSync(`${outDir}/swagger`, { recursive: true });
      for (const file of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"]) {
        copyFileSync(`${swaggerDist}/${file}`, `${outDir}/swagger/${file}`);
      }
    },
  };
}

export default defineConfig(({ command }) => {
  if (command === "build") {
    // remove only what a previous build wrote (other files in web/ are left alone)
    rmSync(`${outDir}/assets`, { recursive: true, force: true });
    rmSync(`${outDir}/index.html`, { force: true });
    rmSync(`${outDir}/swagger`, { recursive: true, force: true });
  }
  return {
    base: "/",
    plugins: [react(), swaggerAssets()],
    build: {
      outDir,
      emptyOutDir: false,
      assetsDir: "assets",
      sourcemap: false,
      chunkSizeWarningLimit: 600,
    },
    server: {
      proxy: {
        "/api": "http://127.0.0.1:8321",
        "/health": "http://127.0.0.1:8321",
      },
    },
  };
});
