/**
 * The photo picker: choose or drop photos and videos, see the photos as local previews, and hash
 * them one by one, photos in a Web Worker (hash-worker.js), videos by video.js and its worker
 * (one PDQ hash a second, video-worker.js), with a progress indicator for each.
 *
 * Previews are blob: URLs of the files, shown only in this page; the files themselves are never
 * uploaded, and nothing but the hashes (the eight dihedral ones and those of the derived views)
 * and the quality of the photos that can be protected is handed to the page's script. Photos
 * below the minimum quality are refused here, with an explanation, and so are duplicates. A
 * video leaves only its frame list (hashes, qualities, timestamps), its MD5 and its length.
 */

import { format, readMessages } from "./common.js";
import { hashVideo, isVideoFile } from "./video.js";

const PROGRESS = { queued: 5, decoding: 30, hashing: 70, done: 100 };
// While the derived views are hashed, the bar moves from PROGRESS.hashing up to this.
const VIEWS_PROGRESS_END = 95;
const HEX_HASH = /^[0-9a-f]{64}$/;
const MIN_BITS_SET = 96;
const MAX_BITS_SET = 128;

function bitsSet(hex) {
  let count = 0;
  for (const digit of hex) {
    let value = Number.parseInt(digit, 16);
    while (value) {
      count += value & 1;
      value >>= 1;
    }
  }
  return count;
}

function looksLikeOnePdq(hash) {
  if (typeof hash !== "string" || !HEX_HASH.test(hash)) return false;
  const bits = bitsSet(hash);
  return bits >= MIN_BITS_SET && bits <= MAX_BITS_SET;
}

function looksLikePdq(hashes) {
  return Array.isArray(hashes) && hashes.length === 8 && hashes.every(looksLikeOnePdq);
}

/**
 * The derived views' hashes as the registry takes them, {name: hex}. A view whose hash the
 * registry would refuse (too few bits set: a degenerate view) is left out, so that one view
 * never costs the photo its registration.
 */
function validViews(views) {
  const valid = {};
  if (views === null || typeof views !== "object") return valid;
  for (const [name, hash] of Object.entries(views)) {
    if (looksLikeOnePdq(hash)) valid[name] = hash;
  }
  return valid;
}

/** A length in seconds as the pages write it: "42 s", "3 min 05 s". */
function duration(seconds) {
  const whole = Math.max(0, Math.round(seconds));
  const minutes = Math.floor(whole / 60);
  const rest = whole % 60;
  return minutes ? `${minutes} min ${String(rest).padStart(2, "0")} s` : `${rest} s`;
}

export class PhotoPicker {
  constructor(root) {
    this.root = root;
    this.input = root.querySelector("input[type=file]");
    this.dropzone = root.querySelector("[data-dropzone]");
    this.list = root.querySelector("[data-photo-list]");
    this.summary = root.querySelector("[data-picker-summary]");
    this.template = root.querySelector("template[data-photo-template]");
    this.messages = readMessages(root);
    this.maxImages = Number(root.dataset.maxImages) || 50;
    this.minQuality = Number(root.dataset.minQuality) || 50;
    this.workerUrl = root.dataset.workerUrl;
    this.videoWorkerUrl = root.dataset.videoWorkerUrl;
    this.maxVideoSeconds = Number(root.dataset.maxVideoSeconds) || 1800;
    this.maxVideoFrames = Number(root.dataset.maxVideoFrames) || 3600;
    this.photos = new Map();
    this.queue = [];
    this.current = null;
    this.worker = null;
    this.nextId = 1;
    this.listeners = [];
    this.notice = "";

    // The input looks like a button: let Enter open the chooser too, as Space does.
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.input.click();
      }
    });
    this.input.addEventListener("change", () => {
      this.addFiles(this.input.files);
      this.input.value = "";
    });
    this.dropzone.addEventListener("dragover", (event) => {
      if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      this.dropzone.classList.add("dragover");
    });
    this.dropzone.addEventListener("dragleave", (event) => {
      if (!this.dropzone.contains(event.relatedTarget)) this.dropzone.classList.remove("dragover");
    });
    this.dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      this.dropzone.classList.remove("dragover");
      if (event.dataTransfer) this.addFiles(event.dataTransfer.files);
    });
    // A photo dropped beside the zone must not make the browser open it instead of the page.
    for (const type of ["dragover", "drop"]) {
      window.addEventListener(type, (event) => {
        if (event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) {
          event.preventDefault();
        }
      });
    }
    // Photos chosen while the page was still loading its scripts.
    if (this.input.files && this.input.files.length) {
      this.addFiles(this.input.files);
      this.input.value = "";
    }
    root.dataset.ready = "true";
  }

  /** Call `listener` whenever a photo is added, removed or changes state. */
  onChange(listener) {
    this.listeners.push(listener);
  }

  /** The photos ready to send: [{hashes, quality, views}], in the order they were chosen. */
  readyImages() {
    return Array.from(this.photos.values())
      .filter((photo) => photo.state === "ready" && !photo.video)
      .map((photo) => ({ hashes: photo.hashes, quality: photo.quality, views: photo.views }));
  }

  /** The videos ready to send: [{frames, md5, duration}], in the order they were chosen. */
  readyVideos() {
    return Array.from(this.photos.values())
      .filter((photo) => photo.state === "ready" && photo.video)
      .map((photo) => photo.video);
  }

  /** How many frames the videos ready to send hold together. */
  get videoFrames() {
    return this.readyVideos().reduce((sum, video) => sum + video.frames.length, 0);
  }

  /** How many photos are still waiting or being hashed. */
  get working() {
    return Array.from(this.photos.values()).filter((photo) =>
      ["queued", "decoding", "hashing"].includes(photo.state),
    ).length;
  }

  get counts() {
    let ready = 0;
    let videos = 0;
    let refused = 0;
    for (const photo of this.photos.values()) {
      if (photo.state === "ready") ready += 1;
      if (photo.state === "ready" && photo.video) videos += 1;
      if (photo.state === "refused") refused += 1;
    }
    return { ready, photos: ready - videos, videos, refused, working: this.working };
  }

  addFiles(files) {
    this.notice = "";
    for (const file of Array.from(files || [])) {
      const video = isVideoFile(file);
      const accepted = Array.from(this.photos.values()).filter(
        (p) => p.state !== "refused" && p.isVideo === video,
      );
      if (!video && accepted.length >= this.maxImages) {
        this.notice = format(this.messages.too_many, { max: this.maxImages });
        break;
      }
      const photo = this.createPhoto(file, video);
      if (!video && file.type && !file.type.startsWith("image/")) {
        this.refuse(photo, this.messages.not_media || this.messages.not_image);
        continue;
      }
      this.queue.push(photo.id);
    }
    this.pump();
    this.changed();
  }

  createPhoto(file, isVideo = false) {
    const id = this.nextId++;
    const item = this.template.content.firstElementChild.cloneNode(true);
    const photo = {
      id,
      file,
      item,
      state: "queued",
      url: null,
      hashes: null,
      quality: null,
      views: null,
      isVideo,
      video: null,
    };
    const name = file.name || "photo";
    const nameId = `photo-name-${this.root.id || "p"}-${id}`;
    item.querySelector(".photo-name").textContent = name;
    item.querySelector(".photo-name").id = nameId;
    const progress = item.querySelector(".photo-progress");
    progress.setAttribute("aria-label", format(this.messages.progress_label, { name }));
    const remove = item.querySelector(".photo-remove");
    remove.textContent = this.messages.remove;
    remove.setAttribute("aria-label", format(this.messages.remove_label, { name }));
    remove.addEventListener("click", () => this.remove(id));
    if (isVideo) {
      item.classList.add("video");
      item.querySelector(".photo-thumb").removeAttribute("src");
    } else if (!file.type || file.type.startsWith("image/")) {
      photo.url = URL.createObjectURL(file);
      const thumb = item.querySelector(".photo-thumb");
      thumb.src = photo.url;
      thumb.addEventListener("error", () => thumb.removeAttribute("src"), { once: true });
    }
    this.photos.set(id, photo);
    this.list.append(item);
    this.setState(photo, "queued", this.messages.queued);
    return photo;
  }

  setState(photo, state, text) {
    photo.state = state;
    photo.item.className = `photo ${state}${photo.isVideo ? " video" : ""}`;
    const progress = photo.item.querySelector(".photo-progress");
    progress.value = PROGRESS[state] ?? 100;
    photo.item.querySelector(".photo-state").textContent = text;
  }

  refuse(photo, text) {
    this.setState(photo, "refused", text);
  }

  remove(id) {
    const photo = this.photos.get(id);
    if (!photo) return;
    this.photos.delete(id);
    this.queue = this.queue.filter((queued) => queued !== id);
    if (photo.url) URL.revokeObjectURL(photo.url);
    const next = photo.item.nextElementSibling || photo.item.previousElementSibling;
    photo.item.remove();
    const focusTarget = next ? next.querySelector(".photo-remove") : this.input;
    focusTarget.focus();
    this.changed();
  }

  /** Hash the next queued photo; close the worker when there is none, to free its memory. */
  pump() {
    if (this.current !== null) return;
    const id = this.queue.shift();
    if (id === undefined) {
      if (this.worker) {
        this.worker.terminate();
        this.worker = null;
      }
      return;
    }
    const photo = this.photos.get(id);
    if (!photo) {
      this.pump();
      return;
    }
    if (photo.isVideo) {
      this.current = id;
      this.hashOneVideo(photo);
      return;
    }
    if (!this.worker) {
      try {
        this.worker = new Worker(this.workerUrl, { type: "module" });
      } catch {
        this.failAll();
        return;
      }
      this.worker.addEventListener("message", (event) => this.onResult(event.data));
      this.worker.addEventListener("error", () => this.failAll());
    }
    this.current = id;
    this.worker.postMessage({ id, file: photo.file });
  }

  onResult(message) {
    const photo = this.photos.get(message.id);
    if (message.stage === "hashing" && message.total > 0) {
      // A derived view is done: move the bar, leave the state and its text as they are.
      if (photo && photo.state === "hashing") {
        const share = Math.min(1, message.done / message.total);
        photo.item.querySelector(".photo-progress").value =
          PROGRESS.hashing + Math.round(share * (VIEWS_PROGRESS_END - PROGRESS.hashing));
      }
      return;
    }
    if (message.stage === "decoding" || message.stage === "hashing") {
      if (photo) this.setState(photo, message.stage, this.messages[message.stage]);
      return;
    }
    this.current = null;
    if (photo) {
      if (message.stage === "error") {
        this.refuse(photo, this.messages[message.code] || this.messages.decode_failed);
      } else if (message.quality < this.minQuality) {
        this.refuse(photo, format(this.messages.low_quality, { quality: message.quality }));
      } else if (!looksLikePdq(message.hashes)) {
        this.refuse(photo, this.messages.decode_failed);
      } else if (this.isDuplicate(message.hashes[0])) {
        this.refuse(photo, this.messages.duplicate);
      } else {
        photo.hashes = message.hashes;
        photo.quality = message.quality;
        photo.views = validViews(message.views);
        this.setState(photo, "ready", format(this.messages.ready, { quality: message.quality }));
      }
    }
    this.pump();
    this.changed();
  }

  /** Hash a video (video.js), then take it, or refuse it with the reason, and go on. */
  async hashOneVideo(photo) {
    const name = photo.file.name || "video";
    this.setState(photo, "decoding", this.messages.video_decoding);
    try {
      const video = await hashVideo(photo.file, {
        workerUrl: this.videoWorkerUrl,
        maxSeconds: this.maxVideoSeconds,
        onPoster: (element) => this.poster(photo, element),
        onProgress: ({ done, total, secondsLeft }) => {
          if (!this.photos.has(photo.id)) return;
          if (photo.state !== "hashing") photo.state = "hashing";
          photo.item.className = "photo hashing video";
          const bar = photo.item.querySelector(".photo-progress");
          bar.value = PROGRESS.queued + Math.round((done / total) * (95 - PROGRESS.queued));
          photo.item.querySelector(".photo-state").textContent = format(
            this.messages.video_hashing,
            { done, total, left: duration(secondsLeft) },
          );
        },
      });
      if (!this.photos.has(photo.id)) return;
      const frames = this.videoFrames + video.frames.length;
      if (this.isDuplicateVideo(video.md5)) {
        this.refuse(photo, this.messages.video_duplicate);
      } else if (frames > this.maxVideoFrames) {
        this.refuse(photo, format(this.messages.video_too_many_frames, {
          frames,
          max: this.maxVideoFrames,
        }));
      } else {
        photo.video = video;
        this.setState(photo, "ready", format(this.messages.video_ready, {
          frames: video.frames.length,
          duration: duration(video.duration),
        }));
      }
    } catch (error) {
      if (this.photos.has(photo.id)) this.refuse(photo, this.videoRefusal(error, name));
    } finally {
      if (this.current === photo.id) this.current = null;
      this.pump();
      this.changed();
    }
  }

  /** A small still of the video's first frame as its preview, drawn in this page only. */
  poster(photo, element) {
    const scale = Math.min(1, 144 / Math.max(element.videoWidth, element.videoHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(element.videoWidth * scale));
    canvas.height = Math.max(1, Math.round(element.videoHeight * scale));
    const context = canvas.getContext("2d");
    if (!context) return;
    context.drawImage(element, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => {
      if (!blob || !this.photos.has(photo.id)) return;
      photo.url = URL.createObjectURL(blob);
      photo.item.querySelector(".photo-thumb").src = photo.url;
    });
  }

  videoRefusal(error, name) {
    const messages = this.messages;
    switch (error && error.code) {
      case "too_long":
        return format(messages.video_too_long, { max: Math.round(this.maxVideoSeconds / 60) });
      case "low_quality":
        return messages.video_low_quality;
      case "worker_failed":
        return messages.worker_failed;
      default:
        return format(messages.video_decode_failed, { name });
    }
  }

  isDuplicateVideo(md5) {
    return this.readyVideos().some((video) => video.md5 === md5);
  }

  isDuplicate(original) {
    return Array.from(this.photos.values()).some(
      (photo) => photo.state === "ready" && photo.hashes && photo.hashes[0] === original,
    );
  }

  /** The worker could not start (an old browser): explain, on every photo not yet hashed. */
  failAll() {
    if (this.worker) this.worker.terminate();
    this.worker = null;
    this.current = null;
    this.queue = [];
    for (const photo of this.photos.values()) {
      if (["queued", "decoding", "hashing"].includes(photo.state)) {
        this.refuse(photo, this.messages.worker_failed);
      }
    }
    this.changed();
  }

  changed() {
    const { ready, refused, working } = this.counts;
    const parts = [];
    if (this.photos.size) parts.push(format(this.messages.summary, { ready, working, refused }));
    if (this.notice) parts.push(this.notice);
    const text = parts.join(" ");
    if (this.summary.textContent !== text) this.summary.textContent = text;
    for (const listener of this.listeners) listener(this);
  }
}
