/**
 * A module Web Worker, the sibling of hash-worker.js for videos: it hashes the frames the page
 * takes from a video (video.js seeks a <video> element, which only a page can hold, and
 * transfers each frame here) and computes the MD5 of the file in chunks. The pixels are hashed
 * here, off the page's main thread, and only the hashes go back.
 *
 * Pixels as the reference hasher sees them: `vpdq` converts each decoded frame to RGB with
 * FFmpeg's swscale, as BT.601 (limited range, or full range for full-range streams) whatever
 * colour space the file declares, at the frame's stored size, and ignores rotation metadata.
 * A browser's own drawing honours the declared colour space (BT.709 on phones' videos), which
 * moves a colourful frame's hash by up to 16 bits. So a frame that arrives as a VideoFrame in an
 * 8-bit YUV layout (I420, NV12) is converted here the way swscale does it: BT.601 coefficients,
 * each chroma sample covering its 2x2 block of pixels. Any other frame (an ImageBitmap from an
 * older browser, a 10-bit or RGB frame) is drawn on an OffscreenCanvas by the browser instead.
 * Each frame is hashed once with pdq.js's `pdqHash` (no dihedral variants, as vPDQ does).
 *
 * Messages in:  {id, type: "frame", frame, index}   (a VideoFrame or an ImageBitmap,
 *                                                     transferred, and closed here)
 *               {id, type: "md5", file}
 * Messages out: {id, type: "frame", index, hash, quality}
 *               {id, type: "md5", md5}
 *               {id, type: "error", code: "decode_failed" | "hash_failed"}
 */

import { md5File } from "./md5.js";
import { pdqHash } from "./pdq.js";

let canvas = null;
let context = null;
let rgba = new Uint8ClampedArray(0);
let planes = new Uint8Array(0);

// swscale's BT.601 coefficients (ff_yuv2rgb_coeffs, SWS_CS_DEFAULT): V to red, U to blue,
// U and V to green; for limited range the luma is stretched by 255/219 from 16.
const LIMITED = { y: 255 / 219, offset: 16, crv: 1.596, cbu: 2.017, cgu: 0.392, cgv: 0.813 };
const FULL = { y: 1, offset: 0, crv: 1.402, cbu: 1.772, cgu: 0.344, cgv: 0.714 };

function drawn(source) {
  const width = source.displayWidth || source.width;
  const height = source.displayHeight || source.height;
  if (!canvas || canvas.width !== width || canvas.height !== height) {
    canvas = new OffscreenCanvas(width, height);
    context = canvas.getContext("2d", { willReadFrequently: true });
    if (!context) throw new RangeError("no 2d context for this size");
  }
  context.drawImage(source, 0, 0, width, height);
  return context.getImageData(0, 0, width, height);
}

/** An 8-bit I420 or NV12 VideoFrame as RGBA, converted as swscale converts it; else null. */
async function converted(frame) {
  if (typeof VideoFrame === "undefined" || !(frame instanceof VideoFrame)) return null;
  const format = frame.format;
  if (format !== "I420" && format !== "I420A" && format !== "NV12") return null;
  const { width, height } = frame.visibleRect;
  const size = frame.allocationSize();
  if (planes.length < size) planes = new Uint8Array(size);
  const layout = await frame.copyTo(planes);
  if (rgba.length !== 4 * width * height) rgba = new Uint8ClampedArray(4 * width * height);
  const c = frame.colorSpace && frame.colorSpace.fullRange ? FULL : LIMITED;
  const [luma, first, second] = layout;
  const interleaved = format === "NV12";
  for (let row = 0; row < height; row++) {
    const yRow = luma.offset + row * luma.stride;
    const uRow = first.offset + (row >> 1) * first.stride;
    const vRow = interleaved ? uRow + 1 : second.offset + (row >> 1) * second.stride;
    let out = 4 * row * width;
    for (let col = 0; col < width; col++) {
      const chroma = interleaved ? 2 * (col >> 1) : col >> 1;
      const y = c.y * (planes[yRow + col] - c.offset);
      const u = planes[uRow + chroma] - 128;
      const v = planes[vRow + chroma] - 128;
      // Uint8ClampedArray rounds and clips, as swscale's tables do.
      rgba[out] = y + c.crv * v;
      rgba[out + 1] = y - c.cgu * u - c.cgv * v;
      rgba[out + 2] = y + c.cbu * u;
      rgba[out + 3] = 255;
      out += 4;
    }
  }
  return { data: rgba, width, height };
}

self.addEventListener("message", async (event) => {
  const { id, type } = event.data;
  if (type === "md5") {
    try {
      self.postMessage({ id, type, md5: await md5File(event.data.file) });
    } catch {
      self.postMessage({ id, type: "error", code: "decode_failed" });
    }
    return;
  }
  const { frame, index } = event.data;
  try {
    const image = (await converted(frame)) || drawn(frame);
    const { hash, quality } = pdqHash(image);
    self.postMessage({ id, type, index, hash, quality });
  } catch {
    self.postMessage({ id, type: "error", code: "hash_failed" });
  } finally {
    frame.close();
  }
});
