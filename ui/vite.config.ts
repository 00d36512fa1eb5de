// Vite build of the TwinEngine web UI: writes index.html + hashed assets/ into the
// Python package (src/twinengine/web), which `twin serve` serves at "/".
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const outDir = fileURLToPath(new URL("../src/twinengine/web", import.meta.url));

export default defineConfig(({ command }) => {
  if (command === "build") {
    // remove only what a previous build wrote (other files in web/ are left alone)
    rmSync(`${outDir}/assets`, { recursive: true, force: true });
    rmSync(`${outDir}/index.html`, { force: true });
  }
  return {
    base: "/",
    plugins: [react()],
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
