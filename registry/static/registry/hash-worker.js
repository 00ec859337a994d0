/**
 * A module Web Worker that turns one photo (a File) into its eight dihedral PDQ hashes, off the
 * page's main thread. The photo is decoded here, at full resolution, and never leaves the device:
 * only the hashes and the quality are posted back.
 *
 * Decoding follows docs/pdq.md: createImageBitmap with no colour-space conversion and no
 * premultiplied alpha (Chromium then gives the same pixels as Pillow for ordinary JPEG and PNG),
 * the browser's EXIF orientation applied, drawn at its own size onto an OffscreenCanvas.
 *
 * Messages in:  {id, file}
 * Messages out: {id, stage: "decoding" | "hashing"}
 *               {id, stage: "done", hashes: [8 hex strings], quality, width, height}
 *               {id, stage: "error", code: "decode_failed" | "too_large" | "hash_failed"}
 */

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
    self.postMessage({
      id,
      stage: "done",
      hashes,
      quality,
      width: image.width,
      height: image.height,
    });
  } catch {
    self.postMessage({ id, stage: "error", code: "hash_failed" });
  }
});
