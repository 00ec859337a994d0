/**
 * A video's vPDQ hash, computed on the person's device: one PDQ hash a second of video, as
 * Meta's reference hasher (`vpdq.computeHash`) takes them, with each frame's quality and time,
 * and the MD5 of the file. The video is never uploaded: only this frame list is sent.
 *
 * The page decodes the file with a <video> element (the browser's own decoders: MP4/H.264,
 * WebM/VP8-VP9, MOV where it can), seeks it to each frame to hash and hands the frame, as a
 * transferred VideoFrame (or ImageBitmap), to video-worker.js, which converts it to RGB as the
 * reference does and hashes it with pdq.js, off the main thread.
 *
 * Which frames: vPDQ hashes the frames whose number is a multiple of round-down(fps x 1 s),
 * at timestamp frame_number / fps. The frame rate is measured from the video itself (frames'
 * presentation times, requestVideoFrameCallback's mediaTime, see frameRate), and each frame is
 * reached by seeking half a frame past its start.
 *
 * Which frames are sent: each frame unless its hash is within PRUNE_DISTANCE bits of the last
 * frame kept (registry.videos.prune_frames), so a still section costs one frame.
 */

import { hammingDistance } from "./pdq.js";

// registry.videos: FRAME_QUALITY_MIN, PRUNE_DISTANCE, SECONDS_PER_FRAME.
export const FRAME_QUALITY_MIN = 50;
export const PRUNE_DISTANCE = 2;
const SECONDS_PER_FRAME = 1;
// registry.pdq's bounds on the bits a real PDQ hash has set: outside them a hash is degenerate
// (a flat frame), kept in the list but never compared, as the registry does.
const MIN_BITS_SET = 96;
const MAX_BITS_SET = 128;
// At most this many frames travel to the worker at once (a 1080p frame is 3 to 8 MB).
const IN_FLIGHT = 2;
const LOAD_TIMEOUT_MS = 20_000;
const SEEK_TIMEOUT_MS = 20_000;
// After a seek, wait this long for the frame callback before reading the frame anyway (a
// hidden tab paints no frames; a seek that lands on the frame already shown paints none).
const FRAME_CALLBACK_GRACE_MS = 250;

// The frame rate assumed when a video is too short to measure it (one frame).
const DEFAULT_RATE = 25;

const VIDEO_EXTENSIONS = /\.(mp4|m4v|mov|webm|mkv|ogv|avi|3gp)$/i;

/** Whether a chosen file is meant as a video (by its type, or its name when it has none). */
export function isVideoFile(file) {
  if (file.type) return file.type.startsWith("video/");
  return VIDEO_EXTENSIONS.test(file.name || "");
}

/** A video the registry could not take, with the code of the reason and its details. */
export class VideoRefused extends Error {
  constructor(code, details = {}) {
    super(code);
    this.code = code;
    this.details = details;
  }
}

function bitsSet(hex) {
  let count = 0;
  for (const digit of hex) {
    let value = Number.parseInt(digit, 16);
    for (; value; value >>= 1) count += value & 1;
  }
  return count;
}

function comparable(hash) {
  const bits = bitsSet(hash);
  return bits >= MIN_BITS_SET && bits <= MAX_BITS_SET;
}

/** registry.videos.prune_frames: drop a frame within PRUNE_DISTANCE bits of the last kept. */
export function pruneFrames(frames) {
  const kept = [];
  for (const frame of frames) {
    const last = kept[kept.length - 1];
    if (
      last &&
      comparable(frame.hash) &&
      comparable(last.hash) &&
      hammingDistance(frame.hash, last.hash) <= PRUNE_DISTANCE
    ) {
      continue;
    }
    kept.push(frame);
  }
  return kept;
}

/** A measured frame rate, put back on the rate it stands for (25, 30, 30000/1001...). */
export function snapFrameRate(rate) {
  const whole = Math.round(rate);
  if (Math.abs(rate - whole) < 0.01) return whole;
  const ntsc = Math.round(rate * 1.001) / 1.001;
  if (Math.abs(rate - ntsc) < 0.01) return ntsc;
  return rate;
}

function waitFor(target, type, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(reject, new VideoRefused("decode_failed")), timeoutMs);
    const onEvent = () => finish(resolve);
    const onError = () => finish(reject, new VideoRefused("decode_failed"));
    function finish(settle, value) {
      clearTimeout(timer);
      target.removeEventListener(type, onEvent);
      target.removeEventListener("error", onError);
      settle(value);
    }
    target.addEventListener(type, onEvent);
    target.addEventListener("error", onError);
  });
}

/** Seek to `time`; resolve with the presentation time of the frame shown, when known. */
function seek(video, time) {
  return new Promise((resolve, reject) => {
    let grace = null;
    const timer = setTimeout(() => finish(reject, new VideoRefused("decode_failed")), SEEK_TIMEOUT_MS);
    const onSeeked = () => {
      grace = setTimeout(() => finish(resolve, null), FRAME_CALLBACK_GRACE_MS);
    };
    const onError = () => finish(reject, new VideoRefused("decode_failed"));
    let done = false;
    function finish(settle, value) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(grace);
      video.removeEventListener("seeked", onSeeked);
      video.removeEventListener("error", onError);
      settle(value);
    }
    if (typeof video.requestVideoFrameCallback === "function") {
      video.requestVideoFrameCallback((_now, metadata) => finish(resolve, metadata.mediaTime));
    }
    video.addEventListener("seeked", onSeeked);
    video.addEventListener("error", onError);
    video.currentTime = time;
  });
}

/** The length of a video whose file does not say it (a recording's WebM): seek to the end. */
async function knownDuration(video) {
  if (Number.isFinite(video.duration)) return video.duration;
  const changed = waitFor(video, "durationchange", LOAD_TIMEOUT_MS);
  video.currentTime = Number.MAX_SAFE_INTEGER;
  await changed;
  if (!Number.isFinite(video.duration)) throw new VideoRefused("decode_failed");
  return video.duration;
}

/**
 * The frame rate: first from two neighbouring frames' presentation times, then refined by
 * counting the frames to later frames' starts (a WebM stores times to the millisecond, so one
 * frame's length alone is off by up to 3%).
 */
async function frameRate(video, duration) {
  const first = await seek(video, Math.min(0.5, duration / 2));
  if (first === null || first <= 0) return DEFAULT_RATE;
  const before = await seek(video, Math.max(0, first - 0.0001));
  if (before === null || before >= first) return DEFAULT_RATE;
  let rate = 1 / (first - before);
  rate = Math.round(first * rate) / first;
  for (let probe = first * 4; probe < duration - 1 / rate; probe *= 4) {
    const start = await seek(video, probe);
    if (start === null || start <= 0) break;
    rate = Math.round(start * rate) / start;
  }
  return snapFrameRate(rate);
}

/**
 * The frame shown, to transfer to the worker: a VideoFrame (its YUV planes, which the worker
 * converts as the reference does), or an ImageBitmap where WebCodecs is missing.
 */
async function grab(video) {
  if (typeof VideoFrame === "function") {
    try {
      return new VideoFrame(video);
    } catch {
      // Fall back on the browser's own drawing below.
    }
  }
  try {
    return await createImageBitmap(video);
  } catch {
    throw new VideoRefused("decode_failed");
  }
}

class WorkerCalls {
  constructor(url) {
    this.worker = new Worker(url, { type: "module" });
    this.pending = new Map();
    this.nextId = 1;
    this.worker.addEventListener("message", (event) => {
      const call = this.pending.get(event.data.id);
      if (!call) return;
      this.pending.delete(event.data.id);
      if (event.data.type === "error") call.reject(new VideoRefused(event.data.code));
      else call.resolve(event.data);
    });
    this.worker.addEventListener("error", () => {
      for (const call of this.pending.values()) call.reject(new VideoRefused("worker_failed"));
      this.pending.clear();
    });
  }

  call(message, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  close() {
    this.worker.terminate();
  }
}

/**
 * Hash `file` as vPDQ does. `onProgress({done, total, secondsLeft})` follows the frames;
 * `onPoster(video)` is called once the first frame is shown (for a preview in the page).
 * Resolves with `{frames: [{hash, quality, timestamp}], md5, duration}` (pruned frames, unless
 * `prune` is false: the tests compare every frame with the reference);
 * rejects with a VideoRefused: `decode_failed` (the browser cannot read it as a video),
 * `too_long` (over `maxSeconds`), `low_quality` (no frame of quality FRAME_QUALITY_MIN or
 * more), `worker_failed`.
 */
export async function hashVideo(
  file,
  { workerUrl, maxSeconds, onProgress = () => {}, onPoster = () => {}, prune = true },
) {
  const url = URL.createObjectURL(file);
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.preload = "auto";
  let worker = null;
  try {
    const loaded = waitFor(video, "loadeddata", LOAD_TIMEOUT_MS);
    video.src = url;
    await loaded;
    if (!video.videoWidth || !video.videoHeight) throw new VideoRefused("decode_failed");
    const duration = await knownDuration(video);
    if (duration > maxSeconds) throw new VideoRefused("too_long", { duration });
    try {
      worker = new WorkerCalls(workerUrl);
    } catch {
      throw new VideoRefused("worker_failed");
    }
    const md5 = worker.call({ type: "md5", file });
    const fps = await frameRate(video, duration);
    const step = Math.max(1, Math.floor(SECONDS_PER_FRAME * fps + 1e-9));
    const indices = [];
    for (let index = 0; index === 0 || (index + 0.5) / fps < duration; index += step) {
      indices.push(index);
    }
    const started = performance.now();
    const results = [];
    const inFlight = [];
    let done = 0;
    for (const index of indices) {
      await seek(video, Math.min((index + 0.5) / fps, duration));
      if (index === 0) onPoster(video);
      const frame = await grab(video);
      const hashed = worker.call({ type: "frame", frame, index }, [frame]).then((answer) => {
        results.push(answer);
        done += 1;
        const perFrame = (performance.now() - started) / done;
        onProgress({
          done,
          total: indices.length,
          secondsLeft: Math.round((perFrame * (indices.length - done)) / 1000),
        });
      });
      hashed.catch(() => {}); // Awaited below; this only keeps an early failure from going unhandled.
      inFlight.push(hashed);
      if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
    }
    await Promise.all(inFlight);
    results.sort((a, b) => a.index - b.index);
    const frames = results.map(({ hash, quality, index }) => ({
      hash,
      quality,
      timestamp: Math.round((index / fps) * 1e6) / 1e6,
    }));
    if (!frames.some((frame) => frame.quality >= FRAME_QUALITY_MIN && comparable(frame.hash))) {
      throw new VideoRefused("low_quality");
    }
    return {
      frames: prune ? pruneFrames(frames) : frames,
      md5: (await md5).md5,
      duration: Math.round(duration * 1000) / 1000,
    };
  } finally {
    if (worker) worker.close();
    video.removeAttribute("src");
    video.load();
    URL.revokeObjectURL(url);
  }
}
