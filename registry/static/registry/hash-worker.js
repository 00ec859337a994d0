/**
 * A module Web Worker that turns one photo (a File) into its eight dihedral PDQ hashes and the
 * hashes of its derived views (derive.js: re-framed and masked versions of the same pixels), off
 * the page's main thread. The photo is decoded here, at full resolution, and never leaves the
 * device: only the hashes and the quality are posted back.
 *
 * Decoding follows the convention partners follow too (registry/pixels.py, docs/partners.md):
 * createImageBitmap with no colour-space conversion (an ICC profile is ignored) and no
 * premultiplied alpha, the browser's EXIF orientation applied, drawn at its own size onto an
 * OffscreenCanvas filled with opaque white. Transparency is thereby composited over white, as
 * round(c * a / 255) + 255 - a per channel, and 16-bit files keep their high byte: the pixels
 * Pillow gives for the same file under registry.pixels, bit for bit but for AVIF with alpha
 * (tests/browser/test_hash_formats.py).
 *
 * Messages in:  {id, file}
 * Messages out: {id, stage: "decoding" | "hashing"}
 *               {id, stage: "hashing", done, total}  (after each derived view)
 *               {id, stage: "done", hashes: [8 hex strings], quality, views: {name: hex, ...},
 *                width, height}
 *               {id, stage: "error", code: "decode_failed" | "too_large" | "hash_failed"}
 */

import { MIN_QUALITY, registeredViews } from "./derive.js";
import { pdqHashDihedral } from "./pdq.js";

async function decode(file) {
  return createImageBitmap(file, {
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
    imageOrientation: "from-image",
  });
}

function pixels(bitmap) {
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  if (!context) throw new RangeError("no 2d context for this size");
  // Without a background, transparent pixels would read back as black with their colour lost,
  // while a partner's decoder keeps whatever colour they store: the two hashes would differ.
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, width, height);
  context.drawImage(bitmap, 0, 0);
  return context.getImageData(0, 0, width, height);
}

self.addEventListener("message", async (event) => {
  const { id, file } = event.data;
  self.postMessage({ id, stage: "decoding" });
  let bitmap;
  try {
    bitmap = await decode(file);
  } catch {
    self.postMessage({ id, stage: "error", code: "decode_failed" });
    return;
  }
  let image;
  try {
    image = pixels(bitmap);
  } catch {
    self.postMessage({ id, stage: "error", code: "too_large" });
    return;
  } finally {
    bitmap.close();
  }
  self.postMessage({ id, stage: "hashing" });
  try {
    const { hashes, quality } = pdqHashDihedral(image);
    // The derived views of the same pixels, those of quality MIN_QUALITY or more. A photo under
    // that quality is refused by the page (the same minimum, registry.pdq.MIN_QUALITY), so its
    // views are not computed.
    const views = {};
    if (quality >= MIN_QUALITY) {
      const onProgress = (done, total) => self.postMessage({ id, stage: "hashing", done, total });
      for (const { view, hash } of registeredViews(image, { onProgress })) views[view] = hash;
    }
    self.postMessage({
      id,
      stage: "done",
      hashes,
      quality,
      views,
      width: image.width,
      height: image.height,
    });
  } catch {
    self.postMessage({ id, stage: "error", code: "hash_failed" });
  }
});
