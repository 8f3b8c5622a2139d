/** PNG output: image grids of grey or colour images (pngjs). */
import { PNG } from "pngjs";
import { writeFileAtomic } from "../numerics/safetensors.ts";

/**
 * Layout of an image grid: `rows × cols` images of `height × width`, `pad` pixels apart, upscaled
 * by `zoom`; `channels` 1 (grey, the default) or 3 (RGB, each image's channels one after another).
 */
export type GridLayout = { rows: number; cols: number; height: number; width: number; channels?: 1 | 3; pad?: number; zoom?: number };

/**
 * Writes `rows × cols` images (pixels [n·c·h·w] in [0, 1], row-major, image i at row floor(i/cols))
 * as one PNG with `pad` black pixels between images, each image upscaled by `zoom`.
 */
export function writeImageGrid(path: string, pixels: Float32Array, o: GridLayout): void {
  writeImagePanels(path, [pixels], o);
}

/** Gap between panels, in pixels, drawn mid-grey so the panels read as separate grids. */
const PANEL_GAP = 10;

/**
 * Writes several grids of the same layout side by side (left to right in `panels` order), so
 * samples of the same prompts and noises can be compared image by image along a row.
 */
export function writeImagePanels(path: string, panels: readonly Float32Array[], o: GridLayout): void {
  const pad = o.pad ?? 2, zoom = o.zoom ?? 2;
  const h = o.height * zoom, w = o.width * zoom;
  const gridW = o.cols * (w + pad) + pad, H = o.rows * (h + pad) + pad;
  const W = panels.length * gridW + (panels.length - 1) * PANEL_GAP;
  const png = new PNG({ width: W, height: H });
  png.data.fill(0);
  for (let i = 3; i < png.data.length; i += 4) png.data[i] = 255;
  panels.forEach((pixels, p) => {
    const x0 = p * (gridW + PANEL_GAP);
    if (p > 0) for (let y = 0; y < H; y++) for (let x = x0 - PANEL_GAP; x < x0; x++) {
      const at = 4 * (y * W + x);
      png.data[at] = png.data[at + 1] = png.data[at + 2] = 128;
    }
    const C = o.channels ?? 1, plane = o.height * o.width;
    const n = Math.min(o.rows * o.cols, Math.floor(pixels.length / (C * plane)));
    const byte = (v: number) => Math.round(255 * Math.min(1, Math.max(0, v)));
    for (let i = 0; i < n; i++) {
      const top = pad + Math.floor(i / o.cols) * (h + pad), left = x0 + pad + (i % o.cols) * (w + pad);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        const src = i * C * plane + Math.floor(y / zoom) * o.width + Math.floor(x / zoom);
        const at = 4 * ((top + y) * W + left + x);
        for (let k = 0; k < 3; k++) png.data[at + k] = byte(pixels[src + (C === 3 ? k * plane : 0)]);
      }
    }
  });
  writeFileAtomic(path, PNG.sync.write(png));
}

/** Reads a PNG's grey values (red channel) in [0, 1] with its size. */
export function readGrey(bytes: Buffer): { width: number; height: number; pixels: Float32Array } {
  const png = PNG.sync.read(bytes);
  const pixels = new Float32Array(png.width * png.height);
  for (let i = 0; i < pixels.length; i++) pixels[i] = png.data[4 * i] / 255;
  return { width: png.width, height: png.height, pixels };
}
